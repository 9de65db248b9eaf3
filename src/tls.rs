//! TLS in the node: with `--tls-cert` and `--tls-key` one node serves `https://` and
//! `wss://` itself, no proxy in front. The certificate is read from its PEM files at start
//! and again on SIGHUP: [`Certificates`] answers every handshake with the pair it holds
//! now, so a renewed certificate is served to new connections at once while open sockets
//! (already past their handshake) are untouched. A pair that fails to load on reload is
//! logged and the old one kept: a botched renewal never takes a node down.
//!
//! The crypto is rustls with `ring` (no C toolchain needed), pinned here rather than
//! taken from a process-wide default so nothing else in the process can change it.
//!
//! Handshakes are bounded three ways ([`Serving`]), so connections that never send a
//! ClientHello cannot keep real clients out: each has `--tls-handshake-timeout` to finish,
//! the node runs up to `--tls-max-handshakes` at once (actix-tls's own default, 256 per
//! worker thread, let 1,500 silent connections hold every slot for the whole timeout), and
//! one TCP peer (an IPv4 address, an IPv6 /64) may have `--tls-handshakes-per-peer` in
//! progress: past that its new connections are closed before any TLS state is made.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_http::Protocol;
use actix_service::{apply_fn_factory, Service, ServiceFactory, ServiceFactoryExt};
use actix_tls::accept::rustls_0_23::{Acceptor, AcceptorService, TlsStream};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::clients::sockets::SocketsPerClient;
use crate::clients::ClientKey;
use crate::config::Config;

/// Why a certificate pair could not be loaded. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read --tls-cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read --tls-key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("--tls-key {key} does not fit --tls-cert {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The certificate pair a node serves, reloadable from its files.
#[derive(Debug)]
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

/// SHA-256 of a certificate's DER, as `openssl x509 -noout -fingerprint -sha256` prints it
/// (colon-separated upper-case hex): the log names which certificate is served.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

impl Certificates {
    /// Loads the pair from `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = read_pair(cert, key, &provider)?;
        Ok(Arc::new(Self {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            provider,
            current: ArcSwap::from_pointee(pair),
        }))
    }

    /// Reads the files again and serves the new pair from the next handshake on. On error
    /// the pair served so far stays. Returns the new leaf's fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let pair = read_pair(&self.cert_path, &self.key_path, &self.provider)?;
        let served = self.fingerprint();
        self.current.store(Arc::new(pair));
        let now = self.fingerprint();
        if served == now {
            tracing::info!(fingerprint = %now, "certificate reloaded: the files hold the same one");
        }
        Ok(now)
    }

    /// Fingerprint of the leaf certificate served now.
    pub fn fingerprint(&self) -> String {
        self.current
            .load()
            .cert
            .first()
            .map(|c| fingerprint(c))
            .unwrap_or_default()
    }

    /// The server configuration: TLS 1.2 and 1.3, no client certificates, and every
    /// handshake asking `self` for the certificate. ([`Serving`] sets the ALPN protocol
    /// `http/1.1`.)
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

/// How a node serves TLS connections: the certificate's server configuration and the
/// bounds on handshakes (see the module doc). Cloned into each worker thread's service.
#[derive(Clone)]
pub struct Serving {
    config: rustls::ServerConfig,
    timeout: Duration,
    capacity: usize,
    /// Handshakes in progress per TCP peer; `None` with `--tls-handshakes-per-peer 0`.
    per_peer: Option<Arc<SocketsPerClient>>,
}

/// The error a TLS connection ends with (logged by nobody: a failed handshake is the
/// client's business, and a flood must not flood the log).
pub type ConnectionError<E> = actix_tls::accept::TlsError<std::io::Error, E>;

impl Serving {
    /// The serving side of `certificates` with the handshake bounds of `config`.
    pub fn new(certificates: &Arc<Certificates>, config: &Config) -> Result<Self, TlsError> {
        let mut server = certificates.server_config()?;
        // WebSockets ride HTTP/1.1 upgrades, and actix-web is built without HTTP/2.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: server,
            timeout: config.tls_handshake_timeout,
            capacity: config.tls_max_handshakes,
            per_peer: NonZeroUsize::new(config.tls_handshakes_per_peer).map(|max| Arc::new(SocketsPerClient::new(max))),
        })
    }

    /// Shares `--tls-max-handshakes` among `workers` threads. actix-tls keeps the limit
    /// per worker thread in a process-wide setting read when a worker starts: call this
    /// before the server runs. (Nodes in one process, as in tests, share the last value.)
    pub fn share_capacity(&self, workers: usize) {
        actix_tls::accept::max_concurrent_tls_connect(self.capacity.div_ceil(workers.max(1)).max(1));
    }

    /// The service of one worker thread: a connection from a peer at its cap is closed;
    /// any other is handshaken (within the timeout and the worker's share of the
    /// capacity), its peer's count given back once the handshake ends either way, and
    /// then served by `http`.
    pub fn serve<H>(
        &self,
        http: H,
    ) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = ConnectionError<H::Error>, InitError = ()>
    where
        H: ServiceFactory<(TlsStream<TcpStream>, Protocol, Option<std::net::SocketAddr>), Config = (), Response = ()>,
        H::InitError: std::fmt::Debug,
    {
        let mut acceptor = Acceptor::new(self.config.clone());
        acceptor.set_handshake_timeout(self.timeout);
        let per_peer = self.per_peer.clone();
        let gated = apply_fn_factory::<Acceptor, Acceptor, _, _, TcpStream, TcpStream, _, _>(
            acceptor,
            move |tcp: TcpStream, accept: &AcceptorService| {
                let pass = match (&per_peer, tcp.peer_addr()) {
                    (None, _) => Some(None),
                    (Some(table), Ok(peer)) => table.try_take(ClientKey::of(peer.ip())).map(Some),
                    (Some(_), Err(_)) => None,
                };
                // A refused stream is dropped here, which closes it: no TLS state was made.
                let handshake = pass.map(|pass| (pass, Service::<TcpStream>::call(accept, tcp)));
                async move {
                    let (pass, handshake) = handshake.ok_or_else(refused)?;
                    let tls = handshake.await;
                    drop(pass);
                    tls
                }
            },
        );
        gated
            .map_err(actix_tls::accept::TlsError::into_service_error)
            .and_then(|tls: TlsStream<TcpStream>| async move {
                let peer = tls.get_ref().0.peer_addr().ok();
                Ok((tls, Protocol::Http1, peer))
            })
            .and_then(
                http.map_err(actix_tls::accept::TlsError::Service)
                    .map_init_err(|e| tracing::error!(error = ?e, "HTTP service did not start")),
            )
    }
}

/// A connection refused for its peer's pending handshakes.
fn refused() -> actix_tls::accept::TlsError<std::io::Error, std::convert::Infallible> {
    actix_tls::accept::TlsError::Tls(std::io::Error::other(
        "too many TLS handshakes in progress from this peer",
    ))
}

/// Reloads `certificates` on every SIGHUP until `stop`, logging the outcome either way.
/// Without TLS a SIGHUP is logged and ignored (rather than ending the process, the signal's
/// default), so `systemctl reload` is always safe. The handler is installed before this
/// returns (a SIGHUP right after the node says "listening" must not end it); the returned
/// future serves it.
pub fn reload_on_sighup(
    certificates: Option<Arc<Certificates>>,
    stop: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    let Some(certificates) = &certificates else {
                        tracing::info!("SIGHUP: nothing to reload (no --tls-cert)");
                        continue;
                    };
                    match certificates.reload() {
                        Ok(fingerprint) => tracing::info!(%fingerprint, "SIGHUP: serving the reloaded certificate"),
                        Err(e) => tracing::error!(
                            error = %e,
                            fingerprint = %certificates.fingerprint(),
                            "SIGHUP: certificate not reloaded; still serving the previous one"
                        ),
                    }
                }
            }
        }
    })
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reads and checks a pair: at least one certificate, one private key, and the key is the
/// certificate's (a renewal that replaced one file but not the other is caught here).
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
            e => e.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for `localhost` written to `dir`.
    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, signing_key.serialize_pem()).unwrap();
        (c, k, cert.der().to_vec())
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("livetally-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reload_swaps_a_good_pair_and_keeps_the_old_one_on_a_bad_one() {
        let dir = temp_dir("reload");
        let (cert, key, first) = write_pair(&dir, "served");
        let certs = Certificates::load(&cert, &key).unwrap();
        assert_eq!(certs.fingerprint(), fingerprint(&first));

        // A renewal that wrote the certificate but not yet its key: refused, old one kept.
        let (other_cert, _, _) = write_pair(&dir, "other");
        std::fs::copy(&other_cert, &cert).unwrap();
        let err = certs.reload().unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert_eq!(certs.fingerprint(), fingerprint(&first));

        // Garbage in the key file: named as the key's fault.
        std::fs::write(&key, "not a key").unwrap();
        let err = certs.reload().unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        assert_eq!(certs.fingerprint(), fingerprint(&first));

        // A complete new pair: served from now on.
        let (_, _, renewed) = write_pair(&dir, "served");
        assert_eq!(certs.reload().unwrap(), fingerprint(&renewed));
        assert_eq!(certs.fingerprint(), fingerprint(&renewed));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_empty_certificate_file_is_named() {
        let dir = temp_dir("missing");
        let (_, key, _) = write_pair(&dir, "k");
        let err = Certificates::load(&dir.join("absent.crt"), &key).unwrap_err();
        assert!(err.to_string().starts_with("cannot read --tls-cert"), "{err}");
        let empty = dir.join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let err = Certificates::load(&empty, &key).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Certificates made at test time (rcgen) and clients that trust them: a test CA signs
//! leaf certificates for `localhost` and `127.0.0.1`, written as PEM files a node reads
//! with `--tls-cert` and `--tls-key`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SerialNumber};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::node::{Ws, PATIENCE};

/// A CA of the test's own, and the directory its files live in (removed on drop).
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub dir: PathBuf,
}

/// A leaf certificate's files and its DER.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("livetally-tls-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "livetally test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), issuer.pem()).unwrap();
        TestCa { issuer, dir }
    }

    /// The CA's PEM file (for `livetally load --ca-file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Signs a leaf for localhost and 127.0.0.1 with `serial`, written to `name.crt` and
    /// `name.key` (overwriting them: a renewal in place).
    pub fn leaf(&self, name: &str, serial: u64) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// A client configuration trusting this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// An HTTPS client trusting this CA (and closing each connection, as the node tests do).
    pub fn https(&self) -> reqwest::Client {
        let close = [(
            reqwest::header::CONNECTION,
            reqwest::header::HeaderValue::from_static("close"),
        )];
        reqwest::Client::builder()
            .use_preconfigured_tls((*self.client_config()).clone())
            .default_headers(close.into_iter().collect())
            .build()
            .unwrap()
    }

    /// The leaf certificate a TLS handshake with `addr` presents now.
    pub async fn served(&self, addr: std::net::SocketAddr) -> Vec<u8> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(
            PATIENCE,
            tokio_rustls::TlsConnector::from(self.client_config()).connect(name, tcp),
        )
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake");
        let (_, conn) = tls.get_ref();
        let chain: &[CertificateDer<'_>] = conn.peer_certificates().expect("a peer certificate");
        chain[0].to_vec()
    }

    /// Opens a `wss://` socket trusting this CA; on refusal returns the HTTP status.
    pub async fn wss(&self, url: &str) -> Result<Ws, u16> {
        let req = url.into_client_request().unwrap();
        let connector = tokio_tungstenite::Connector::Rustls(self.client_config());
        let connect = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector));
        match tokio::time::timeout(PATIENCE, connect)
            .await
            .unwrap_or_else(|_| panic!("wss connect to {url} timed out"))
        {
            Ok((stream, _)) => Ok(Ws { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("wss connect to {url} failed: {e}"),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The flags that make a node serve `leaf`.
pub fn flags(leaf: &Leaf) -> [String; 4] {
    [
        "--tls-cert".into(),
        leaf.cert.display().to_string(),
        "--tls-key".into(),
        leaf.key.display().to_string(),
    ]
}

/// Where a file of the test's CA directory is, as a string for flags.
pub fn path(p: &Path) -> String {
    p.display().to_string()
}

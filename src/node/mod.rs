//! Wires a node together and runs it until shutdown: store, tallies, flusher, broadcaster,
//! HTTP server. `run(listener, config, shutdown)` takes its listener and its stop signal
//! from the caller, so tests can bind port 0 and stop the node on demand.

pub mod builder;

use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::{h1, HttpService, KeepAlive, Request};
use actix_service::{fn_factory, fn_service, map_config, ServiceFactory};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{random_id, Auth};
use crate::config::Config;
use crate::http::Api;
use crate::store::memory::MemoryStore;
use crate::store::Store;
use crate::tally::flusher::FlushNow;
use crate::tls::Certificates;
use crate::webhooks::{Timing, Webhooks};
use crate::ws::handshake::Upgraded;
use crate::ws::Sockets;
pub use builder::Builder;

/// File descriptors kept back from `--max-connections` for the store, logs, listeners and
/// the HTTP API's short-lived connections.
pub const FD_RESERVE: u64 = 256;

/// How long shutdown waits for sockets to take their 1001 close before moving on.
pub const SOCKET_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP server: actix-web for the routes, and actix-http's upgrade hook for WebSocket
/// upgrades, which leave actix for a leaner socket layer (see `ws::handshake`). Built from
/// actix-server and actix-http because actix-web's `HttpServer` does not expose the hook.
/// With `tls`, every connection is TLS (https:// and wss://) and the upgraded socket keeps
/// its TLS stream.
fn http_server(
    api: Arc<Api>,
    sockets: Arc<Sockets>,
    listener: std::net::TcpListener,
    max_connections: usize,
    tls: Option<crate::tls::Serving>,
) -> std::io::Result<actix_server::Server> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let addr = listener.local_addr()?;
    let metrics = web::Data::from(api.metrics.clone());
    let api = web::Data::from(api);
    let sockets_data = web::Data::from(sockets.clone());
    let secure = tls.is_some();
    // One HTTP service over connections of whatever type the upgrade hook gets (a TCP or
    // a TLS stream): the routes, the upgrade hook and the timeouts are the same for both.
    // `$finish`: `h1` for TCP; `finish` for TLS, whose builder takes a handshake timeout.
    macro_rules! http_service {
        ($finish:ident) => {{
            let app = App::new()
                .app_data(api.clone())
                .app_data(sockets_data.clone())
                .app_data(metrics.clone())
                .wrap(actix_web::middleware::from_fn(crate::metrics::time_http))
                .configure(crate::http::routes);
            let mut builder = HttpService::build()
                .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr);
            if secure {
                builder = builder.secure();
            }
            builder
                .upgrade(upgrade_hook(sockets.clone()))
                .$finish(map_config(app, move |_| AppConfig::default()))
        }};
    }
    let server = actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(max_connections + FD_RESERVE as usize)
        .disable_signals()
        .shutdown_timeout(2);
    let server = match tls {
        None => server.listen("livetally", listener, move || http_service!(h1).tcp())?,
        Some(tls) => {
            tls.share_capacity(workers);
            server.listen("livetally", listener, move || tls.serve(http_service!(finish)))?
        }
    };
    Ok(server.run())
}

/// actix-http's upgrade hook: every request asking to switch protocols goes to
/// `ws::handshake::accept` with its connection, a TCP or a TLS stream.
fn upgrade_hook<T: Upgraded>(
    sockets: Arc<Sockets>,
) -> impl ServiceFactory<(Request, Framed<T, h1::Codec>), Config = (), Response = (), Error = actix_web::Error, InitError = ()>
{
    fn_factory(move || {
        let sockets = sockets.clone();
        async move {
            Ok::<_, ()>(fn_service(move |(req, framed)| {
                crate::ws::handshake::accept(sockets.clone(), req, framed)
            }))
        }
    })
}

/// Connects the store named by the config.
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    // Every node queues events while the deployment has receivers (the store knows).
    let max = config.webhook_queue_max;
    if let Some(url) = &config.redis {
        let s = crate::store::redis::RedisStore::connect_standalone(url)
            .await
            .with_context(|| "connecting --redis")?;
        return Ok(Arc::new(s.with_session_ttl(config.session_ttl).with_queue_max(max)));
    }
    if !config.redis_cluster.is_empty() {
        let s = crate::store::redis::RedisStore::connect_cluster(&config.redis_cluster)
            .await
            .with_context(|| "connecting --redis-cluster")?;
        return Ok(Arc::new(s.with_session_ttl(config.session_ttl).with_queue_max(max)));
    }
    Ok(Arc::new(
        MemoryStore::new()
            .with_session_ttl(config.session_ttl)
            .with_queue_max(max),
    ))
}

/// The Redis store the flags name, for the commands that are no node (`upgrade-store`,
/// `token`); `None` without store flags.
async fn connect_redis(config: &Config) -> anyhow::Result<Option<crate::store::redis::RedisStore>> {
    use crate::store::redis::RedisStore;
    if let Some(url) = &config.redis {
        return Ok(Some(
            RedisStore::connect_standalone(url)
                .await
                .with_context(|| "connecting --redis")?,
        ));
    }
    if !config.redis_cluster.is_empty() {
        return Ok(Some(
            RedisStore::connect_cluster(&config.redis_cluster)
                .await
                .with_context(|| "connecting --redis-cluster")?,
        ));
    }
    Ok(None)
}

/// `livetally upgrade-store`: finishes a node-by-node upgrade once the last older node has
/// stopped: makes the deployment's join key (nodes switch to it within
/// [`JOIN_KEY_RECHECK`], refusing join tokens signed with the derived key from then on),
/// then marks the schema (see `RedisStore::finish_upgrade` and docs/operations.md).
pub async fn finish_upgrade(config: &Config) -> anyhow::Result<()> {
    use crate::store::redis::{FINISH_WAIT, SCHEMA_VERSION};
    use crate::store::Secrets;
    let Some(store) = connect_redis(config).await? else {
        anyhow::bail!("upgrade-store needs --redis or --redis-cluster (the embedded store has nothing to upgrade)");
    };
    let had_key = store.join_key().await?.is_some();
    store.create_join_key().await?;
    if !had_key {
        tracing::info!(
            "made the deployment's join key: join tokens signed with the key derived from the operator \
             token are refused once every node has noticed (within 5 s)"
        );
    }
    tracing::info!(
        schema = SCHEMA_VERSION,
        wait_s = FINISH_WAIT.as_secs(),
        "marking the upgrade finished; waiting for running nodes to notice"
    );
    let store = store.with_session_ttl(config.session_ttl);
    // A v1.1 deployment's receivers were its flags: they land in the store.
    if let Some(secret) = &config.webhook_secret {
        let seed = crate::webhooks::receivers::from_flags(&config.webhook_url, secret);
        if !seed.is_empty() {
            use crate::store::Outbox;
            let seeded = store.seed_receivers(&seed).await?;
            tracing::info!(seeded, receivers = seed.len(), "webhook receivers from --webhook-url");
        }
    }
    let campaigns = store.finish_upgrade(FINISH_WAIT).await?;
    tracing::info!(
        campaigns,
        "upgrade finished: v1 session keys expire within two session TTLs"
    );
    Ok(())
}

/// What the store of `config` holds for the join key, for `livetally token`: `None`
/// without store flags (a memory store's key lives and dies with its node).
pub async fn stored_join_key(config: &Config) -> anyhow::Result<Option<crate::auth::mint::StoredJoinKey>> {
    use crate::auth::mint::StoredJoinKey;
    use crate::store::Secrets;
    let Some(store) = connect_redis(config).await? else {
        return Ok(None);
    };
    Ok(Some(match store.join_key().await? {
        Some(key) => StoredJoinKey::Key(key),
        None => StoredJoinKey::NotYet,
    }))
}

/// Runs a node on `listener` until `shutdown` is cancelled, then drains it: stop
/// accepting, close sockets with 1001, flush the last counts, leave presence, exit.
pub async fn run(listener: std::net::TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.validate()?;
    // Before the store connects, so a bad certificate fails the start at once.
    let certificates = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Certificates::load(cert, key)?),
        _ => None,
    };
    let fd_limit = crate::util::fd::raise_fd_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| fd_limit.saturating_sub(FD_RESERVE).max(1) as usize);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let store = connect_store(&config).await?;
    let keys = StoredKeys::read(store.as_ref()).await?;
    let builder = build(&config, store, max_connections, keys);
    // Read before the first request: until then every id would be "cannot tell yet".
    if let Err(e) = builder.index.refresh().await {
        tracing::warn!(error = %e, "campaign index not read at start; the first tick tries again");
    }
    let addr = listener.local_addr()?;
    let node = start(&builder, &config, listener, certificates.as_ref())?;
    tracing::info!(
        %addr,
        node = %builder.node_id,
        store = builder.store.kind(),
        max_connections,
        fd_limit,
        tls = certificates.is_some(),
        "listening"
    );
    if let Some(certificates) = &certificates {
        tracing::info!(
            fingerprint = %certificates.fingerprint(),
            "serving https:// and wss:// (SIGHUP reloads --tls-cert and --tls-key)"
        );
    }
    shutdown.cancelled().await;
    node.drain(config.drain_period).await;
    tracing::info!("stopped");
    Ok(())
}

/// What the store holds for this deployment's secrets, read once at start.
struct StoredKeys {
    /// `None` while older nodes may run (no `upgrade-store` since they did).
    join: Option<Vec<u8>>,
    ticket: Vec<u8>,
}

impl StoredKeys {
    async fn read(store: &dyn Store) -> anyhow::Result<StoredKeys> {
        let context = "reading the deployment's keys from the store";
        Ok(StoredKeys {
            join: store.join_key().await.context(context)?,
            ticket: store.ticket_key().await.context(context)?,
        })
    }
}

/// How often a node that signs with the derived join key looks for the stored one: the
/// window in which nodes disagree after `upgrade-store` (run it between campaigns).
pub const JOIN_KEY_RECHECK: Duration = Duration::from_secs(5);

/// Until the store has a join key (`livetally upgrade-store`), looks for it every
/// [`JOIN_KEY_RECHECK`]; then signs and verifies with it alone.
async fn watch_join_key(auth: Arc<Auth>, store: Arc<dyn Store>, stop: CancellationToken) {
    while auth.join_source() == crate::auth::JoinKeySource::Derived {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(JOIN_KEY_RECHECK) => {}
        }
        if let Ok(Some(key)) = store.join_key().await {
            auth.use_stored_join_key(&key);
            tracing::info!("the store has its join key now: join tokens signed with the derived key are refused");
        }
    }
}

/// The parts' builder from the flags: the operator tokens (one generated if none was
/// given), the keys, the connection limit, and the metrics that show both.
fn build(config: &Config, store: Arc<dyn Store>, max_connections: usize, keys: StoredKeys) -> Builder {
    let operator_tokens = if config.operator_token.is_empty() {
        let t = random_id(24);
        tracing::warn!(operator_token = %t, "no --operator-token given; generated one for this run (shown once)");
        vec![t]
    } else {
        config.operator_token.clone()
    };
    let mut builder = Builder::from_config(config, store);
    let auth = Auth::new(&operator_tokens, &config.join_secret).with_ticket_key(keys.ticket);
    if let Some(join) = &keys.join {
        auth.use_stored_join_key(join);
    } else if config.join_secret.is_empty() {
        tracing::warn!(
            "the store has no join key yet: signing join tokens with the key derived from the operator \
             token, as older nodes do; run `livetally upgrade-store` once none is left (docs/operations.md)"
        );
    }
    builder.auth = Arc::new(auth);
    builder.max_connections = max_connections;
    let metrics = &builder.metrics;
    metrics.max_connections.set(max_connections as i64);
    metrics.store_pending_limit.set(config.max_pending as i64);
    // connect_store succeeded before this: the store answered.
    metrics.store_up.set(1);
    builder
}

/// A node's running tasks, and how to stop each at shutdown.
struct Running {
    sockets: Arc<Sockets>,
    /// Cancelled after the last flush's acks went out: every socket closes with 1001.
    close_sockets: CancellationToken,
    server: actix_server::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    stop_reload: CancellationToken,
    flush_now: FlushNow,
    stop_flusher: CancellationToken,
    flusher: JoinHandle<()>,
    stop_ticker: CancellationToken,
    ticker: JoinHandle<()>,
    stop_webhooks: CancellationToken,
    webhooks: Option<JoinHandle<()>>,
}

/// Starts the HTTP server, the certificate reloader, the flusher, the broadcaster and the
/// webhook deliverer.
fn start(
    builder: &Builder,
    config: &Config,
    listener: std::net::TcpListener,
    certificates: Option<&Arc<Certificates>>,
) -> anyhow::Result<Running> {
    let sockets = Arc::new(builder.sockets());
    let tls = certificates.map(|c| crate::tls::Serving::new(c, config)).transpose()?;
    let server = http_server(
        Arc::new(builder.api()),
        sockets.clone(),
        listener,
        builder.max_connections,
        tls,
    )?;
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    let stop_reload = CancellationToken::new();
    match crate::tls::reload_on_sighup(certificates.cloned(), stop_reload.clone()) {
        Ok(reloader) => drop(tokio::spawn(reloader)),
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler: the certificate will not be reloaded")
        }
    }
    let stop_flusher = CancellationToken::new();
    let (flush_now, flusher) = builder.spawn_flusher(stop_flusher.clone());
    let stop_ticker = CancellationToken::new();
    let ticker = tokio::spawn(builder.broadcaster().run(stop_ticker.clone()));
    drop(tokio::spawn(watch_join_key(
        builder.auth.clone(),
        builder.store.clone(),
        stop_ticker.clone(),
    )));
    let stop_webhooks = CancellationToken::new();
    let webhooks = spawn_webhooks(builder, config, stop_webhooks.clone())?;
    Ok(Running {
        sockets,
        close_sockets: builder.close_sockets.clone(),
        server: handle,
        server_task,
        stop_reload,
        flush_now,
        stop_flusher,
        flusher,
        stop_ticker,
        ticker,
        stop_webhooks,
        webhooks,
    })
}

/// The webhook deliverer: on every node, whatever its flags (the receivers are a setting
/// in the store; `--webhook-url` only seeds it).
fn spawn_webhooks(
    builder: &Builder,
    config: &Config,
    stop: CancellationToken,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let seed = match &config.webhook_secret {
        Some(secret) => crate::webhooks::receivers::from_flags(&config.webhook_url, secret),
        None => vec![],
    };
    let timing = Timing::new(config.webhook_retry_base, config.webhook_timeout, config.webhook_poll);
    let w = Webhooks::new(
        builder.store.clone(),
        builder.metrics.clone(),
        builder.node_id.clone(),
        seed,
        timing,
    )?;
    Ok(Some(tokio::spawn(Arc::new(w).run(stop))))
}

impl Running {
    /// Shutdown: flush what the sockets sent, close them with 1001 (spread over
    /// `drain`), stop the tasks, the last flush leaving presence, then the server.
    async fn drain(self, drain: Duration) {
        tracing::info!(
            drain_period_ms = drain.as_millis() as u64,
            "shutting down: flushing, then closing sockets with 1001"
        );
        // With a drain period the listener stays open while sockets close one by one: new
        // sockets and /readyz get a quick 503 (so a proxy retries another node) instead of
        // waiting in the accept queue.
        if drain.is_zero() {
            self.server.pause().await;
        }
        // Flush while the sockets are still open, so what they sent so far is acked.
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.flush_now.send(tx).await.is_ok() {
            let _ = tokio::time::timeout(SOCKET_DRAIN_TIMEOUT, rx).await;
        }
        self.close_sockets.cancel();
        let tracker = &self.sockets.tracker;
        tracker.close();
        if tokio::time::timeout(SOCKET_DRAIN_TIMEOUT + drain, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(left = tracker.len(), "some sockets did not close in time");
        }
        self.stop_reload.cancel();
        self.stop_ticker.cancel();
        let _ = self.ticker.await;
        self.stop_webhooks.cancel();
        if let Some(w) = self.webhooks {
            let _ = w.await;
        }
        self.stop_flusher.cancel();
        let _ = self.flusher.await;
        self.server.stop(true).await;
        let _ = self.server_task.await;
    }
}

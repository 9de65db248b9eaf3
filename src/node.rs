//! Wires a node together and runs it until shutdown: store, tallies, flusher, broadcaster,
//! HTTP server. `run(listener, config, shutdown)` takes its listener and its stop signal
//! from the caller, so tests can bind port 0 and stop the node on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive};
use actix_service::{fn_factory, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{random_id, Auth};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::memory::MemoryStore;
use crate::store::Store;
use crate::tally::Tallies;

/// File descriptors kept back from `--max-connections` for the store, logs, listeners and
/// the HTTP API's short-lived connections.
pub const FD_RESERVE: u64 = 256;

/// How long shutdown waits for sockets to take their 1001 close before moving on.
pub const SOCKET_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the tasks of a node share.
pub struct NodeCtx {
    pub config: Config,
    pub node_id: String,
    /// `node_id/run id`: tells the store which process sent a batch (see `Batch::origin`).
    pub origin: String,
    /// Last batch number handed out (see `Batch::number`), increasing for the process life.
    pub batch_numbers: AtomicU64,
    pub store: Arc<dyn Store>,
    pub tallies: Tallies,
    pub metrics: Metrics,
    pub auth: Auth,
    /// Interactions taken by sockets and not yet in the store.
    pub pending: AtomicU64,
    /// Open sockets (viewers and operators).
    pub connections: AtomicUsize,
    pub max_connections: usize,
    /// Cancelled at shutdown: every socket closes with 1001.
    pub shutdown: CancellationToken,
    /// Socket tasks, awaited at shutdown before the last flush.
    pub tracker: TaskTracker,
    /// The clock of every socket's rate limiter, made once: building one per socket
    /// calibrated it per connect, 5% of a connect storm's CPU (measured with perf).
    pub clock: governor::clock::DefaultClock,
}

/// Raises the soft open-file limit to the hard one and returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let target = lim.maximum.or(lim.current).unwrap_or(1024);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}

/// Binds the listener with a deep accept backlog (connect storms) and, with
/// `--reuse-port`, SO_REUSEPORT so several nodes on one host share the port.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    let listener = socket.listen(8192)?;
    listener.into_std()
}

/// The HTTP server: actix-web for the routes, and actix-http's upgrade hook for WebSocket
/// upgrades, which leave actix for a leaner socket layer (see `ws::handshake`). Built from
/// actix-server and actix-http because actix-web's `HttpServer` does not expose the hook.
fn http_server(
    ctx: Arc<NodeCtx>,
    listener: std::net::TcpListener,
    max_connections: usize,
) -> std::io::Result<actix_server::Server> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let addr = listener.local_addr()?;
    let data = web::Data::from(ctx.clone());
    Ok(actix_server::Server::build()
        .workers(workers)
        .max_concurrent_connections(max_connections + FD_RESERVE as usize)
        .disable_signals()
        .shutdown_timeout(2)
        .listen("livetally", listener, move || {
            let app = App::new()
                .app_data(data.clone())
                .wrap(actix_web::middleware::from_fn(crate::metrics::time_http))
                .configure(crate::http::routes);
            let ctx = ctx.clone();
            let upgrade = fn_factory(move || {
                let ctx = ctx.clone();
                async move {
                    Ok::<_, ()>(fn_service(move |(req, framed)| {
                        crate::ws::handshake::accept(ctx.clone(), req, framed)
                    }))
                }
            });
            HttpService::build()
                .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .upgrade(upgrade)
                .h1(map_config(app, move |_| AppConfig::default()))
                .tcp()
        })?
        .run())
}

/// Connects the store named by the config.
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.redis {
        let s = crate::store::redis::RedisStore::connect_standalone(url)
            .await
            .with_context(|| "connecting --redis")?;
        return Ok(Arc::new(s));
    }
    if !config.redis_cluster.is_empty() {
        let s = crate::store::redis::RedisStore::connect_cluster(&config.redis_cluster)
            .await
            .with_context(|| "connecting --redis-cluster")?;
        return Ok(Arc::new(s));
    }
    Ok(Arc::new(MemoryStore::new()))
}

/// Runs a node on `listener` until `shutdown` is cancelled, then drains it: stop
/// accepting, close sockets with 1001, flush the last counts, leave presence, exit.
pub async fn run(listener: std::net::TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.validate()?;
    let fd_limit = raise_fd_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| fd_limit.saturating_sub(FD_RESERVE).max(1) as usize);
    let store = connect_store(&config).await?;
    let operator_token = match &config.operator_token {
        Some(t) => t.clone(),
        None => {
            let t = random_id(24);
            tracing::warn!(operator_token = %t, "no --operator-token given; generated one for this run (shown once)");
            t
        }
    };
    let node_id = config.node_id();
    let auth = Auth::new(operator_token, config.join_secret.as_deref());
    let metrics = Metrics::new();
    metrics.max_connections.set(max_connections as i64);
    metrics.store_pending_limit.set(config.max_pending as i64);
    // connect_store succeeded above: the store answered.
    metrics.store_up.set(1);
    let addr = listener.local_addr()?;
    let ctx = Arc::new(NodeCtx {
        origin: format!("{node_id}/{}", random_id(6)),
        batch_numbers: AtomicU64::new(0),
        node_id: node_id.clone(),
        store,
        tallies: Tallies::default(),
        metrics,
        auth,
        pending: AtomicU64::new(0),
        connections: AtomicUsize::new(0),
        max_connections,
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        clock: governor::clock::DefaultClock::default(),
        config,
    });

    let server = http_server(ctx.clone(), listener, max_connections)?;
    let handle = server.handle();
    let server_task = tokio::spawn(server);

    let stop_flusher = CancellationToken::new();
    let (flush_now, flush_requests) = tokio::sync::mpsc::channel(1);
    let flush_now: crate::tally::flusher::FlushNow = flush_now;
    let flusher = tokio::spawn(crate::tally::flusher::run(
        ctx.clone(),
        stop_flusher.clone(),
        flush_requests,
    ));
    let stop_ticker = CancellationToken::new();
    let ticker = tokio::spawn(crate::broadcast::run(ctx.clone(), stop_ticker.clone()));

    tracing::info!(
        %addr,
        node = %node_id,
        store = ctx.store.kind(),
        max_connections,
        fd_limit,
        "listening"
    );

    shutdown.cancelled().await;
    let drain = ctx.config.drain_period;
    tracing::info!(
        drain_period_ms = drain.as_millis() as u64,
        "shutting down: flushing, then closing sockets with 1001"
    );
    // With a drain period the listener stays open while sockets close one by one: new
    // sockets and /readyz get a quick 503 (so a proxy retries another node) instead of
    // waiting in the accept queue.
    if drain.is_zero() {
        handle.pause().await;
    }
    // Flush while the sockets are still open, so what they sent so far is acked.
    let (tx, rx) = tokio::sync::oneshot::channel();
    if flush_now.send(tx).await.is_ok() {
        let _ = tokio::time::timeout(SOCKET_DRAIN_TIMEOUT, rx).await;
    }
    ctx.shutdown.cancel();
    ctx.tracker.close();
    if tokio::time::timeout(SOCKET_DRAIN_TIMEOUT + drain, ctx.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(left = ctx.tracker.len(), "some sockets did not close in time");
    }
    stop_ticker.cancel();
    let _ = ticker.await;
    stop_flusher.cancel();
    let _ = flusher.await;
    handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("stopped");
    Ok(())
}

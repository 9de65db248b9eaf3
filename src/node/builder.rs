//! The one place a node's parts are wired together. The binary (`node::run`), the
//! simulator's virtual nodes and the unit tests of the socket layer and the flusher all
//! build their parts here, so a part that gains a field is wired in one place, and a test
//! wires its parts exactly as the node does, changing only the values it is about.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{random_id, Auth};
use crate::broadcast::index::CampaignIndex;
use crate::broadcast::unit_views::UnitViews;
use crate::broadcast::Broadcaster;
use crate::clients::auth_failures::AuthFailures;
use crate::clients::connects::ConnectBudget;
use crate::clients::sockets::SocketsPerClient;
use crate::clients::writes::PublicWrites;
use crate::clients::TrustedProxies;
use crate::config::{defaults, Config};
use crate::http::Api;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tally::flusher::{FlushNow, FlushTiming, Flusher};
use crate::tally::Tallies;
use crate::ws::admission::{Admission, Connections};
use crate::ws::connection::SocketEnv;
use crate::ws::Sockets;

/// What a node's parts share and the values they are built with: the flags' defaults
/// ([`Builder::new`]) or the flags ([`Builder::from_config`]). Fields are public so a
/// test or the simulator changes the one value it is about before building.
pub struct Builder {
    pub store: Arc<dyn Store>,
    /// The campaigns and their public stats as this node knows them (refreshed each tick).
    pub index: Arc<CampaignIndex>,
    pub tallies: Arc<Tallies>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Auth>,
    /// This node's name in presence.
    pub node_id: String,
    /// `node_id/run id`: tells the store which process sent a batch (see `Batch::origin`).
    pub origin: String,
    pub timing: FlushTiming,
    /// Cancelled after the last flush's acks went out: every socket closes with 1001.
    pub close_sockets: CancellationToken,
    pub max_connections: usize,
    pub max_interactions_per_sec: u32,
    pub drain_period: Duration,
    /// `--claim-wait`: how long admission waits for a session's claim.
    pub claim_wait: Duration,
    /// Origins allowed to open sockets and read the public routes (empty: any).
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: TrustedProxies,
    pub region_header: Option<actix_http::header::HeaderName>,
    /// The per-client limits (0 turns one off).
    pub max_sockets_per_client: usize,
    pub max_public_writes_per_client: u32,
    pub max_connects_per_client: u32,
    /// Failed operator logins, counted on the socket and the HTTP side alike.
    pub auth_failures: Arc<AuthFailures>,
}

impl Builder {
    /// The flags' defaults on `store`, as node `node_id`; no per-client limits, no
    /// operator token, room for any number of sockets, every viewer unique at once.
    pub fn new(store: Arc<dyn Store>, node_id: impl Into<String>) -> Self {
        let node_id = node_id.into();
        Self {
            index: Arc::new(CampaignIndex::new(store.clone())),
            tallies: Arc::new(Tallies::new(defaults::MAX_PENDING).with_orgs(store.clone(), defaults::UNIT_PEAK_DEPTH)),
            store,
            metrics: Arc::new(Metrics::new()),
            auth: Arc::new(Auth::new(&[], &[])),
            origin: format!("{node_id}/{}", random_id(6)),
            node_id,
            timing: FlushTiming {
                flush_interval: defaults::FLUSH_INTERVAL.value,
                tick: defaults::TICK.value,
                presence_ttl: defaults::PRESENCE_TTL.value,
                session_ttl: defaults::SESSION_TTL.value,
            },
            close_sockets: CancellationToken::new(),
            max_connections: usize::MAX,
            max_interactions_per_sec: defaults::MAX_INTERACTIONS_PER_SEC,
            drain_period: defaults::DRAIN_PERIOD.value,
            claim_wait: defaults::CLAIM_WAIT.value,
            allowed_origins: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            region_header: None,
            max_sockets_per_client: 0,
            max_public_writes_per_client: 0,
            max_connects_per_client: 0,
            auth_failures: Arc::default(),
        }
    }

    /// The values of `config`'s flags. The operator tokens and the connection limit are
    /// decided at start (a generated token, the open-file limit): set `auth` and
    /// `max_connections` after this.
    pub fn from_config(config: &Config, store: Arc<dyn Store>) -> Self {
        let mut b = Self::new(store.clone(), config.node_id());
        b.tallies = Arc::new(
            Tallies::new(config.max_pending)
                .with_max_share_channels(config.max_share_channels)
                .with_unique_after(config.unique_after)
                .with_orgs(store.clone(), config.unit_peak_depth),
        );
        b.timing = FlushTiming {
            flush_interval: config.flush_interval,
            tick: config.tick,
            presence_ttl: config.presence_ttl,
            session_ttl: config.session_ttl,
        };
        b.max_interactions_per_sec = config.max_interactions_per_sec;
        b.drain_period = config.drain_period;
        b.claim_wait = config.claim_wait;
        b.allowed_origins = config.allowed_origins.clone();
        b.trusted_proxies = TrustedProxies::new(config.trusted_proxies.clone());
        b.region_header = config.region_header.clone();
        b.max_sockets_per_client = config.max_sockets_per_client;
        b.max_public_writes_per_client = config.max_public_writes_per_client;
        b.max_connects_per_client = config.max_connects_per_client;
        b.auth_failures = Arc::new(AuthFailures::new(config.max_auth_failures_per_client));
        b
    }

    /// Step three's task: the tallies' batches into the store, every flush interval.
    pub fn flusher(&self) -> Flusher {
        Flusher::new(
            self.tallies.clone(),
            self.store.clone(),
            self.metrics.clone(),
            self.node_id.clone(),
            self.origin.clone(),
            self.timing,
        )
        .with_units(self.store.clone())
    }

    /// Spawns [`Builder::flusher`] until `stop`; the sender asks it for an immediate flush
    /// (dropped, no one does).
    pub fn spawn_flusher(&self, stop: CancellationToken) -> (FlushNow, JoinHandle<()>) {
        let (flush_now, requests) = tokio::sync::mpsc::channel(1);
        (flush_now, tokio::spawn(self.flusher().run(stop, requests)))
    }

    /// Step four's task: stats from the store into one frame per campaign, every tick.
    pub fn broadcaster(&self) -> Broadcaster {
        Broadcaster {
            tallies: self.tallies.clone(),
            store: self.store.clone(),
            index: self.index.clone(),
            metrics: self.metrics.clone(),
            tick: self.timing.tick,
        }
    }

    /// What every socket loop shares.
    pub fn socket_env(&self) -> SocketEnv {
        SocketEnv {
            metrics: self.metrics.clone(),
            pending: self.tallies.pending().clone(),
            per_sec: NonZeroU32::new(self.max_interactions_per_sec).unwrap_or(NonZeroU32::MIN),
            drain_period: self.drain_period,
            shutdown: self.close_sockets.clone(),
            units: Some(self.unit_views()),
        }
    }

    /// The checks and the admission of a socket.
    pub fn admission(&self) -> Admission {
        Admission {
            tallies: self.tallies.clone(),
            store: self.store.clone(),
            index: self.index.clone(),
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
            connections: Arc::new(Connections::new(self.max_connections)),
            allowed_origins: self.allowed_origins.clone(),
            tick: self.timing.tick,
            node_id: self.node_id.clone(),
            lease: self.timing.presence_ttl,
            claim_wait: self.claim_wait,
            claim_retry: self.timing.flush_interval,
            shutdown: self.close_sockets.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            region_header: self.region_header.clone(),
            sockets_per_client: NonZeroUsize::new(self.max_sockets_per_client)
                .map(|max| Arc::new(SocketsPerClient::new(max))),
            auth_failures: self.auth_failures.clone(),
            connects: NonZeroU32::new(self.max_connects_per_client).map(|n| Arc::new(ConnectBudget::per_minute(n))),
        }
    }

    /// The socket layer: admission, the loops' environment, the tracker of their tasks.
    pub fn sockets(&self) -> Sockets {
        Sockets {
            admission: self.admission(),
            env: Arc::new(self.socket_env()),
            tracker: TaskTracker::new(),
        }
    }

    /// The HTTP routes' state.
    pub fn api(&self) -> Api {
        Api {
            store: self.store.clone(),
            index: self.index.clone(),
            tallies: self.tallies.clone(),
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
            node_id: self.node_id.clone(),
            tick: self.timing.tick,
            shutdown: self.close_sockets.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            allowed_origins: crate::http::cors::AllowedOrigins::new(self.allowed_origins.clone()),
            public_writes: NonZeroU32::new(self.max_public_writes_per_client).map(PublicWrites::per_minute),
            auth_failures: self.auth_failures.clone(),
            units: self.unit_views(),
        }
    }

    /// The units reads, for the route and the operator sockets.
    pub fn unit_views(&self) -> Arc<UnitViews> {
        Arc::new(UnitViews {
            store: self.store.clone(),
            index: self.index.clone(),
            tallies: self.tallies.clone(),
        })
    }
}

#[cfg(test)]
impl Builder {
    /// The unit tests' node `n1` (run `n1/run`): at most 1,000 interactions pending, and
    /// sessions kept a minute.
    pub fn for_tests(store: Arc<dyn Store>) -> Self {
        let mut b = Self::new(store, "n1");
        b.origin = "n1/run".into();
        b.tallies = Arc::new(Tallies::new(1_000));
        b.timing.session_ttl = Duration::from_secs(60);
        b
    }
}

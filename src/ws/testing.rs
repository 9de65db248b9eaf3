//! A socket layer on the memory store for unit tests: admission and the socket
//! environment wired as the node wires them, without a node.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::admission::{Admission, Connections};
use super::connection::SocketEnv;
use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::store::flaky::{campaign, Flaky};
use crate::store::Store;
use crate::tally::Tallies;

/// The operator token of [`rig`].
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789";

pub struct Rig {
    pub env: Arc<SocketEnv>,
    pub admission: Admission,
    pub store: Arc<Flaky>,
    pub tallies: Arc<Tallies>,
}

/// A live public campaign `launch`, room for `max_connections` sockets.
pub async fn rig_with(max_connections: usize) -> Rig {
    let store = Arc::new(Flaky::default());
    store.create_campaign(&campaign("launch")).await.unwrap();
    let tallies = Arc::new(Tallies::new(1_000));
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let env = Arc::new(SocketEnv {
        metrics: metrics.clone(),
        pending: tallies.pending().clone(),
        per_sec: NonZeroU32::new(20).unwrap(),
        drain_period: Duration::ZERO,
        shutdown: shutdown.clone(),
        clock: Default::default(),
    });
    let admission = Admission {
        tallies: tallies.clone(),
        store: store.clone(),
        auth: Arc::new(Auth::new(&[OPERATOR_TOKEN.into()], None)),
        metrics,
        connections: Arc::new(Connections::new(max_connections)),
        allowed_origins: vec![],
        tick: Duration::from_secs(1),
        node_id: "n1".into(),
        lease: Duration::from_secs(10),
        shutdown,
        trusted_proxies: Default::default(),
        region_header: None,
        sockets_per_client: None,
        auth_failures: Default::default(),
    };
    Rig {
        env,
        admission,
        store,
        tallies,
    }
}

pub async fn rig() -> Rig {
    rig_with(10).await
}

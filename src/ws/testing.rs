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
use crate::tally::flusher::{FlushTiming, Flusher};
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

impl Rig {
    /// Admits a socket with `query` over a real loopback TCP connection, served as the node
    /// serves it (the broadcaster may write into it); returns the client end, whose receive
    /// buffer is as small as the kernel allows so a test can fill the path.
    pub async fn connect_tcp(
        &self,
        query: &str,
    ) -> (
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        tokio::task::JoinHandle<()>,
    ) {
        self.connect_tcp_after(query, || {}).await
    }

    /// [`Rig::connect_tcp`], running `between` after the socket was admitted (its welcome
    /// built) and before its task starts.
    pub async fn connect_tcp_after(
        &self,
        query: &str,
        between: impl FnOnce(),
    ) -> (
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        tokio::task::JoinHandle<()>,
    ) {
        use tokio_tungstenite::tungstenite::protocol::Role;
        let client = crate::clients::ClientKey::of([198, 51, 100, 1].into());
        let checked = self.admission.check("launch", query, None, None, client).await.unwrap();
        let admitted = self.admission.admit(checked).await.unwrap();
        between();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1).unwrap();
        let (client, server) = tokio::join!(socket.connect(listener.local_addr().unwrap()), listener.accept());
        let server = server.unwrap().0;
        // As the handshake does: without it a small frame written in real microseconds after
        // another waits for the client's delayed ACK (real milliseconds), while paused time
        // races ahead to the next timer.
        server.set_nodelay(true).unwrap();
        let transport = super::transport::Transport::direct(server, vec![]).await;
        let task = tokio::spawn(super::connection::run(self.env.clone(), admitted, transport));
        let client = tokio_tungstenite::WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, None).await;
        (client, task)
    }
}

impl Rig {
    /// Runs the flusher (100 ms) until the returned token is cancelled: acks go out.
    pub fn flusher(&self) -> CancellationToken {
        let timing = FlushTiming {
            flush_interval: Duration::from_millis(100),
            tick: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(10),
            session_ttl: Duration::from_secs(60),
        };
        let f = Flusher::new(
            self.tallies.clone(),
            self.store.clone(),
            self.env.metrics.clone(),
            "n1".into(),
            "n1/run".into(),
            timing,
        );
        let stop = CancellationToken::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(f.run(stop.clone(), rx));
        stop
    }

    /// Sockets closed with `reason` (the label of `livetally_connections_closed_total`).
    pub fn closed(&self, reason: &str) -> u64 {
        self.env.metrics.connections_closed.with_label_values(&[reason]).get()
    }
}

/// The next text message a test client got, as JSON (pings skipped).
pub async fn next_json<S>(c: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match c.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

//! A socket layer on the memory store for unit tests: admission and the socket
//! environment wired as the node wires them, without a node.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::admission::Admission;
use super::connection::SocketEnv;
use crate::auth::Auth;
use crate::node::Builder;
use crate::store::flaky::{campaign, Flaky};
use crate::store::Campaigns;
use crate::tally::Tallies;

/// The operator token of [`rig`].
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789";

pub struct Rig {
    pub env: Arc<SocketEnv>,
    pub admission: Admission,
    pub store: Arc<Flaky>,
    pub tallies: Arc<Tallies>,
    builder: Builder,
}

/// A live public campaign `launch`, room for `max_connections` sockets.
pub async fn rig_with(max_connections: usize) -> Rig {
    let store = Arc::new(Flaky::default());
    store.create_campaign(&campaign("launch")).await.unwrap();
    let mut builder = Builder::for_tests(store.clone());
    builder.auth = Arc::new(Auth::new(&[OPERATOR_TOKEN.into()], &[]));
    builder.max_connections = max_connections;
    // As the node does before it serves: the campaign index read once.
    builder.index.refresh().await.unwrap();
    Rig {
        env: Arc::new(builder.socket_env()),
        admission: builder.admission(),
        store,
        tallies: builder.tallies.clone(),
        builder,
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
        let stop = CancellationToken::new();
        drop(self.builder.spawn_flusher(stop.clone()));
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

//! Binding the node's listener.

use std::net::SocketAddr;

/// Connections the kernel queues before the node accepts them: deep enough that a connect
/// storm of tens of thousands queues instead of being refused.
pub const ACCEPT_BACKLOG: u32 = 8192;

/// Binds the listener with a deep accept backlog (connect storms) and, with
/// `reuse_port`, SO_REUSEPORT so several nodes on one host share the port.
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
    let listener = socket.listen(ACCEPT_BACKLOG)?;
    listener.into_std()
}

//! Sockets and threads (implementation owned by the HTTP-layer work).
use super::{Handler, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;

/// The server entry point.
pub struct Server;

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` (with `SO_REUSEADDR`) and starts acceptor, workers, rejecter and pinger threads.
    pub fn bind(addr: SocketAddr, _cfg: ServerConfig, _handler: Arc<dyn Handler>) -> std::io::Result<ServerHandle> {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, format!("server not built yet ({addr})")))
    }
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// Stops accepting, lets in-flight requests finish, joins the threads.
    pub fn shutdown(self) {}
    /// Blocks until the server stops (after `shutdown` from another thread or a signal).
    pub fn wait(&self) {}
}

use std::net::{SocketAddr, TcpListener};

/// A loopback address with a port that was free a moment ago (the OS picks it).
pub fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

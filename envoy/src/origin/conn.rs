//! Connections the handlers can abort: how `reset_rate` closes a connection without an
//! answer.
//!
//! [`AbortableListener`] wraps the TCP listener for `axum::serve`. Each accepted stream is
//! an [`AbortableStream`] sharing an [`AbortSwitch`] that the handlers get through
//! `ConnectInfo<AbortSwitch>`. A handler that wants to reset flips the switch and returns;
//! from then on every read, write, flush and shutdown on the stream fails, so hyper writes
//! nothing and drops the connection. The switch also sets `SO_LINGER` to zero, so the
//! close is a TCP RST, as when a real backend dies mid-request.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Shared between a connection and the handlers serving its requests.
#[derive(Debug, Clone, Default)]
pub struct AbortSwitch(Arc<AtomicBool>);

impl AbortSwitch {
    /// Makes the connection fail from now on; it closes without a further byte written.
    pub fn abort(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`AbortSwitch::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A TCP stream that fails every operation once its [`AbortSwitch`] is flipped.
#[derive(Debug)]
pub struct AbortableStream {
    inner: TcpStream,
    switch: AbortSwitch,
    lingering_off: bool,
}

impl AbortableStream {
    fn check(&mut self) -> io::Result<()> {
        if !self.switch.is_aborted() {
            return Ok(());
        }
        if !self.lingering_off {
            self.lingering_off = true;
            // Best effort: without it the close is a FIN instead of a RST.
            let _ = self.inner.set_zero_linger();
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection reset by fault injection",
        ))
    }
}

impl AsyncRead for AbortableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`AbortableStream`]s.
#[derive(Debug)]
pub struct AbortableListener(TcpListener);

impl AbortableListener {
    pub fn new(listener: TcpListener) -> AbortableListener {
        AbortableListener(listener)
    }
}

impl Listener for AbortableListener {
    type Io = AbortableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = AbortableStream {
                        inner: stream,
                        switch: AbortSwitch::default(),
                        lingering_off: false,
                    };
                    return (io, addr);
                }
                // Errors of one connection: try the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                // Resource errors (e.g. out of file descriptors): back off a little.
                Err(e) => {
                    eprintln!("demo-origin: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, AbortableListener>> for AbortSwitch {
    fn connect_info(stream: IncomingStream<'_, AbortableListener>) -> Self {
        stream.io().switch.clone()
    }
}

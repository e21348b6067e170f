//! Running an origin on a background thread with its own tokio runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::config::OriginConfig;
use super::conn::{AbortSwitch, AbortableListener};
use super::router::router;
use super::state::OriginState;

/// A running demo origin. Dropping it stops the server: the listener closes and every
/// open connection is dropped.
#[derive(Debug)]
pub struct OriginHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OriginHandle {
    /// Binds `listen` (port 0 picks a free port) and serves on a background thread with its
    /// own tokio runtime. Fails if the config is invalid (`InvalidInput`) or binding fails.
    pub fn start(listen: SocketAddr, config: OriginConfig) -> io::Result<OriginHandle> {
        let state = OriginState::new(&config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("demo-origin-worker")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let app = router(Arc::new(state));
        let (shutdown, stop) = oneshot::channel::<()>();

        let thread = std::thread::Builder::new()
            .name("demo-origin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let server = axum::serve(
                        AbortableListener::new(listener),
                        app.into_make_service_with_connect_info::<AbortSwitch>(),
                    );
                    tokio::select! {
                        result = server => {
                            if let Err(e) = result {
                                eprintln!("demo-origin: server stopped: {e}");
                            }
                        }
                        // A message or the handle's drop: stop either way.
                        _ = stop => {}
                    }
                });
                // Dropping the runtime drops the listener and every connection task.
                drop(runtime);
            })?;

        Ok(OriginHandle {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address the origin listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! Listeners, the accept loop and graceful shutdown.
//!
//! Connections are served by hyper's HTTP/1.1 connection directly (not `axum::serve`) so
//! that the handshake timeout (`header_read_timeout`), `TCP_NODELAY` and per-connection
//! graceful shutdown are ours to set. Shutdown order: stop accepting; every connection
//! finishes its in-flight request and closes; every shard socket sends 1001; matches are
//! stopped; the tick threads end; storage is flushed. In-flight work gets `grace` (30 s
//! by default) in all.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use pylon_shard::StopReason;
use pylon_storage::SessionStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::{ApiConfig, ApiMetrics, AppState, Matches, limits, main_router, shard_router};

/// The bound sockets (DESIGN.md section 7).
#[derive(Debug)]
pub struct Listeners {
    /// HTTP API, ops endpoints, `/shard`, `/ws`, `/events`.
    pub main: TcpListener,
    /// The shard socket port (`+3`).
    pub shard: TcpListener,
    /// The entity-sync WebSocket port (`+1`); `None` leaves it unbound.
    pub sync: Option<TcpListener>,
    /// The SSE change-stream port (`+2`); `None` leaves it unbound.
    pub events: Option<TcpListener>,
}

impl Listeners {
    /// Binds `host:port` through `host:port+3`.
    ///
    /// # Errors
    /// The bind error, naming the address.
    pub async fn bind(host: std::net::IpAddr, port: u16) -> std::io::Result<Self> {
        let shard_port = port.checked_add(3).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "PYLON_PORT + 3 exceeds 65535")
        })?;
        let bind = |port: u16| async move {
            let addr = SocketAddr::new(host, port);
            TcpListener::bind(addr)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        };
        Ok(Self {
            main: bind(port).await?,
            sync: Some(bind(port + 1).await?),
            events: Some(bind(port + 2).await?),
            shard: bind(shard_port).await?,
        })
    }
}

/// The server: state plus the shutdown switch.
pub struct Server {
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    persist_rx: Option<crossbeam_channel::Receiver<pylon_tick::Persist>>,
    stop_reason: StopReason,
}

impl Server {
    /// Assembles the server.
    #[must_use]
    pub fn new(
        config: ApiConfig,
        matches: Matches,
        sessions: Arc<dyn SessionStore>,
        version: &'static str,
    ) -> Self {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            config: Arc::new(config),
            matches: Arc::new(matches),
            sessions,
            entities: None,
            metrics: Arc::new(ApiMetrics::default()),
            conns: Arc::new(limits::ConnLimiter::default()),
            shutdown,
            tasks: TaskTracker::new(),
            started: Instant::now(),
            version,
        };
        Self { state, shutdown_tx, persist_rx: None, stop_reason: StopReason::Shutdown }
    }

    /// Writes the tick threads' persistence records (from `rx`) to the entity store.
    /// `persist_at_shutdown`: save running matches when stopping (they resume after a
    /// restart) instead of ending them.
    #[must_use]
    pub fn with_persistence(
        mut self,
        rx: crossbeam_channel::Receiver<pylon_tick::Persist>,
        persist_at_shutdown: bool,
    ) -> Self {
        self.persist_rx = Some(rx);
        self.stop_reason =
            if persist_at_shutdown { StopReason::Shutdown } else { StopReason::Stopped };
        self
    }

    /// Adds the entity store, its policies and the change hub.
    #[must_use]
    pub fn with_entities(mut self, entities: crate::Entities) -> Self {
        self.state.entities = Some(Arc::new(entities));
        self
    }

    /// The shared state (tests and wiring).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops every match (saving it first when persisting) and waits, at most two
    /// seconds, until the tick threads have done so.
    async fn stop_matches(&self) {
        let entries = self.state.matches.list();
        for entry in &entries {
            let _ = entry.handle.stop(self.stop_reason);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut every = tokio::time::interval(Duration::from_millis(5));
        while entries.iter().any(|e| e.handle.status().is_running())
            && tokio::time::Instant::now() < deadline
        {
            every.tick().await;
        }
    }

    fn start_persister(&mut self) -> Option<std::thread::JoinHandle<()>> {
        let rx = self.persist_rx.take()?;
        let handle = tokio::runtime::Handle::current();
        match crate::persister::spawn(rx, self.state.clone(), handle) {
            Ok(join) => Some(join),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the persister; matches are not persisted");
                None
            }
        }
    }

    /// Serves until `signal` resolves, then shuts down gracefully within `grace`.
    pub async fn run(
        mut self,
        listeners: Listeners,
        signal: impl Future<Output = ()>,
        grace: Duration,
    ) {
        let persister = self.start_persister();
        let connections = TaskTracker::new();
        let main =
            accept_loop(listeners.main, main_router(self.state.clone()), &self.state, &connections);
        let shard = accept_loop(
            listeners.shard,
            shard_router(self.state.clone()),
            &self.state,
            &connections,
        );
        let mut extra = Vec::new();
        if let Some(l) = listeners.sync {
            extra.push(tokio::spawn(accept_loop(
                l,
                crate::sync_router(self.state.clone()),
                &self.state,
                &connections,
            )));
        }
        if let Some(l) = listeners.events {
            extra.push(tokio::spawn(accept_loop(
                l,
                crate::events_router(self.state.clone()),
                &self.state,
                &connections,
            )));
        }
        let sweeper = tokio::spawn(sweep_loop(self.state.clone()));
        let main = tokio::spawn(main);
        let shard = tokio::spawn(shard);

        signal.await;
        let started = Instant::now();
        // Matches first, while their subscribers are still attached: a match saved for a
        // restart keeps its players (a socket closing first would make them leave). Each
        // subscriber's writer then closes with 1001 on the `Stopped(Shutdown)` frame.
        self.stop_matches().await;
        tracing::info!("shutdown: stopped accepting; finishing in-flight work");
        let _ = self.shutdown_tx.send(true);
        let _ = main.await;
        let _ = shard.await;
        for task in extra {
            let _ = task.await;
        }
        sweeper.abort();

        // Anything created while the first stop ran is stopped now.
        for entry in self.state.matches.list() {
            let _ = entry.handle.stop(self.stop_reason);
        }
        connections.close();
        self.state.tasks.close();
        let wait = async {
            connections.wait().await;
            self.state.tasks.wait().await;
        };
        if tokio::time::timeout(grace, wait).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "shutdown: grace period over, dropping what is left"
            );
        }
        self.state.matches.pool().shutdown(Duration::from_secs(5));
        // The tick threads are gone, so the persistence channel is closed: the persister
        // writes what is left and ends.
        if let Some(join) = persister {
            let _ = tokio::task::spawn_blocking(move || join.join()).await;
        }
        let sessions = Arc::clone(&self.state.sessions);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || sessions.flush()).await {
            tracing::error!(error = %e, "shutdown: flushing the session store failed");
        }
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "shutdown complete");
    }
}

async fn sweep_loop(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        state.matches.sweep(Instant::now(), Duration::from_secs(60));
    }
}

fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: &AppState,
    connections: &TaskTracker,
) -> impl Future<Output = ()> + Send + 'static {
    let mut shutdown = state.shutdown.clone();
    let handshake = state.config.limits.handshake_timeout;
    let connections = connections.clone();
    async move {
        loop {
            let accepted = tokio::select! {
                _ = crate::shutting_down(&mut shutdown) => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, remote)) => {
                    let conn = serve_connection(
                        stream,
                        remote,
                        router.clone(),
                        shutdown.clone(),
                        handshake,
                    );
                    connections.spawn(conn);
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    handshake: Duration,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(handshake);
    let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
            return;
        }
        _ = crate::shutting_down(&mut shutdown) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

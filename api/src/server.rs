//! Listeners, the accept loop and graceful shutdown.
//!
//! Connections are served by hyper's HTTP/1.1 connection directly (not `axum::serve`) so
//! that the handshake timeout (`header_read_timeout`), `TCP_NODELAY` and per-connection
//! graceful shutdown are ours to set.
//!
//! The doors of every port: the accept loop counts TCP connections per client address
//! (over the cap: a minimal 429, then close) and backs off exponentially on accept errors
//! (counted, never spinning); hyper closes a connection whose request head has not
//! arrived within the handshake timeout (an idle keep-alive connection included); every
//! request body gets one total read deadline ([`crate::body::TimedBody`]); the client
//! address of a request from a trusted proxy is taken from `X-Forwarded-For`. Shutdown order: stop accepting; every connection
//! finishes its in-flight request and closes; every shard socket sends 1001; matches are
//! stopped; the tick threads end; storage is flushed. In-flight work gets `grace` (30 s
//! by default) in all.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use pylon_shard::StopReason;
use pylon_storage::Sessions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::error::{ApiError, ErrorCode};
use crate::{ApiConfig, ApiMetrics, AppState, Matches, limits, main_router, shard_router};

/// The bound sockets: the main port and `+1` (sync socket), `+2` (SSE), `+3` (shard
/// sockets); README, "Configuration".
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
        sessions: Sessions,
        version: &'static str,
    ) -> Self {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let rates = Arc::new(limits::Rates::new(&config.limits));
        let bus = pylon_sync::ClusterBus::noop(
            pylon_sync::bus::DEFAULT_NAMESPACE,
            pylon_sync::InstanceId::mint(),
        );
        let state = AppState {
            config: Arc::new(config),
            matches: Arc::new(matches),
            sessions,
            entities: None,
            metrics: Arc::new(ApiMetrics::default()),
            conns: Arc::new(limits::ConnLimiter::default()),
            http_conns: Arc::new(limits::ConnLimiter::default()),
            rates,
            live: Arc::new(crate::sessions_live::LiveSessions::default()),
            presence: Arc::new(pylon_sync::Presence::new(bus.clone())),
            matchmaking: None,
            bus,
            shutdown,
            tasks: TaskTracker::new(),
            socket_groups: Arc::default(),
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
    pub fn with_entities(mut self, entities: pylon_sync::Feeds) -> Self {
        self.state.entities = Some(Arc::new(entities));
        self
    }

    /// Runs with `bus` between this process and the others (connect it with
    /// [`crate::cluster::connect`]): committed changes, presence and logouts cross it,
    /// `/readyz` and `/metrics` report it, and it is closed at shutdown. Without it the
    /// process is alone (the no-op bus).
    #[must_use]
    pub fn with_bus(mut self, bus: pylon_sync::ClusterBus) -> Self {
        self.state.presence = Arc::new(pylon_sync::Presence::new(bus.clone()));
        self.state.bus = bus;
        self
    }

    /// Runs the matchmaker `service` (docs/MATCHMAKER.md): its routes, its matcher and the
    /// pushes of its assignments; its matcher stops (handing its Redis leases over) first
    /// thing at shutdown.
    #[must_use]
    pub fn with_matchmaker(mut self, service: crate::matchmaking::Matchmaking) -> Self {
        self.state.matchmaking = Some(Arc::new(service));
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

    /// One accept loop per bound port: main, shard, and sync and events when bound.
    fn start_accepting(
        &self,
        listeners: Listeners,
        connections: &TaskTracker,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let state = &self.state;
        let mut ports = vec![
            (listeners.main, main_router(state.clone())),
            (listeners.shard, shard_router(state.clone())),
        ];
        if let Some(l) = listeners.sync {
            ports.push((l, crate::sync_router(state.clone())));
        }
        if let Some(l) = listeners.events {
            ports.push((l, crate::events_router(state.clone())));
        }
        ports
            .into_iter()
            .map(|(listener, router)| {
                tokio::spawn(accept_loop(listener, router, state, connections))
            })
            .collect()
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
        let accepting = self.start_accepting(listeners, &connections);
        let sweepers = [
            tokio::spawn(sweep_loop(self.state.clone())),
            tokio::spawn(session_sweep_loop(self.state.clone())),
            tokio::spawn(purge_loop(self.state.clone())),
        ];
        let cluster = crate::cluster::spawn(&self.state);
        let matchmaking = self.state.matchmaking.as_ref().map(|mm| mm.start(&self.state));

        signal.await;
        let started = Instant::now();
        // The matcher first: no match is made after this, and its leases go to another
        // process at once.
        if let Some(mm) = &self.state.matchmaking {
            mm.stop().await;
        }
        // Matches first, while their subscribers are still attached: a match saved for a
        // restart keeps its players (a socket closing first would make them leave). Each
        // subscriber's writer then closes with 1001 on the `Stopped(Shutdown)` frame.
        self.stop_matches().await;
        tracing::info!("shutdown: stopped accepting; finishing in-flight work");
        let _ = self.shutdown_tx.send(true);
        for task in accepting {
            let _ = task.await;
        }
        sweepers.iter().for_each(tokio::task::JoinHandle::abort);

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
        if let Err(e) = self.state.sessions.flush().await {
            tracing::error!(error = %e, "shutdown: flushing the session store failed");
        }
        for task in cluster.into_iter().chain(matchmaking.into_iter().flatten()) {
            let _ = task.await;
        }
        self.state.bus.close().await;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "shutdown complete");
    }
}

async fn sweep_loop(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    let mut rates_due = Instant::now();
    loop {
        every.tick().await;
        let now = Instant::now();
        state.matches.sweep(now, Duration::from_secs(60));
        if now >= rates_due {
            // Refilled buckets are forgotten: the limiters hold only keys in use.
            state.rates.sweep(now);
            if let Some(feeds) = &state.entities {
                feeds.sweep(); // remembered pull cursors past their time
            }
            rates_due = now + Duration::from_secs(60);
        }
    }
}

/// Ends, every second, the live connections of sessions that expired.
async fn session_sweep_loop(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let ended = state.live.sweep(crate::auth::unix_now());
        if ended > 0 {
            state.metrics.sessions_ended[1]
                .fetch_add(ended as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(sessions = ended, "expired sessions: live connections closed");
        }
    }
}

/// Deletes expired sessions from the store every `session_purge_interval`.
async fn purge_loop(state: AppState) {
    let period = state.config.session_purge_interval;
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        every.tick().await;
        match state.sessions.purge_expired(crate::auth::unix_now()).await {
            Ok(purged) => {
                state
                    .metrics
                    .sessions_purged
                    .fetch_add(purged, std::sync::atomic::Ordering::Relaxed);
                if purged > 0 {
                    tracing::info!(purged, "expired sessions purged");
                }
            }
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
    }
}

/// What every connection of a port needs (cloned into each connection task).
#[derive(Clone)]
struct ConnSettings {
    router: Router,
    handshake: Duration,
    body_timeout: Duration,
    trusted: Arc<[IpAddr]>,
}

/// Refusals (429 to a connection over its address's cap) in flight at once; beyond this
/// a refused connection is dropped without an answer rather than holding a task.
const REFUSALS_IN_FLIGHT: usize = 256;

fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: &AppState,
    connections: &TaskTracker,
) -> impl Future<Output = ()> + Send + 'static {
    let mut shutdown = state.shutdown.clone();
    let limits = &state.config.limits;
    let settings = ConnSettings {
        router,
        handshake: limits.handshake_timeout,
        body_timeout: limits.body_timeout,
        trusted: state.config.trusted_proxies.clone().into(),
    };
    let max = limits.max_http_conns_per_ip;
    let (http_conns, metrics) = (Arc::clone(&state.http_conns), Arc::clone(&state.metrics));
    let connections = connections.clone();
    let refusals = Arc::new(tokio::sync::Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut backoff = limits::Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
    async move {
        loop {
            let accepted = tokio::select! {
                _ = crate::shutting_down(&mut shutdown) => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    metrics.accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let wait = backoff.fail();
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = crate::shutting_down(&mut shutdown) => return,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            backoff.reset();
            // The TCP peer, not a forwarded address: no header has been read yet.
            match http_conns.acquire(remote.ip(), max) {
                Some(slot) => {
                    let stream = Counted { stream, _slot: slot };
                    connections.spawn(serve_connection(
                        stream,
                        remote,
                        settings.clone(),
                        shutdown.clone(),
                    ));
                }
                None => {
                    metrics.count_refusal(crate::metrics::Limit::HttpConnections);
                    if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                        connections.spawn(async move {
                            refuse_connection(stream, max).await;
                            drop(permit);
                        });
                    }
                }
            }
        }
    }
}

/// Answers a connection over its address's cap with a minimal 429 in the JSON error
/// shape and closes it: the answer, a FIN, then what the client sent is drained (at most
/// one second) so the close does not reset the connection before the answer is read.
async fn refuse_connection(mut stream: TcpStream, max: u32) {
    let body = ApiError::too_many(
        ErrorCode::TooManyConnections,
        limits::over_cap(max),
        "close idle connections or reuse one (keep-alive); behind a proxy, set PYLON_TRUSTED_PROXIES",
        Some(1),
    )
    .body_json();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let limit = Duration::from_secs(1);
    if tokio::time::timeout(limit, stream.write_all(response.as_bytes())).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(limit, async {
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Which client a request is from: `ConnectInfo` carries the client address (forwarded
/// when the peer is a trusted proxy, else the peer), [`TcpPeer`] the TCP peer itself.
#[derive(Debug, Clone, Copy)]
pub struct TcpPeer(pub SocketAddr);

/// A connection holding its address's slot: the slot goes wherever the socket goes (into
/// an upgraded WebSocket too), so an upgraded socket keeps counting until it closes.
struct Counted {
    stream: TcpStream,
    _slot: limits::ConnSlot,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn serve_connection(
    stream: Counted,
    remote: SocketAddr,
    settings: ConnSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.stream.set_nodelay(true);
    let ConnSettings { router, handshake, body_timeout, trusted } = settings;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let client = limits::client_addr(remote.ip(), req.headers(), &trusted);
        let client = if client == remote.ip() { remote } else { SocketAddr::new(client, 0) };
        let mut req =
            req.map(|body| axum::body::Body::new(crate::body::TimedBody::new(body, body_timeout)));
        req.extensions_mut().insert(ConnectInfo(client));
        req.extensions_mut().insert(TcpPeer(remote));
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

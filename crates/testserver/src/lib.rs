//! A scriptable loopback HTTP/1.1 server for the tests, examples, conformance
//! suites and benchmarks of the `batchclient` project.
//!
//! # Why hand-written
//!
//! The server is written directly on raw tokio TCP sockets with `httparse` for
//! request heads instead of using hyper, because it must misbehave in ways a
//! correct HTTP implementation refuses to: reset a connection with `RST` in the
//! middle of a body, send garbage instead of a status line, drip a body one byte
//! at a time, or accept a request and never answer. Owning the socket also keeps
//! it fast enough to be the target of throughput benchmarks: every response is
//! preformatted into one reused per-connection buffer and written with a single
//! write, and the hot path neither logs nor allocates per request.
//!
//! # Scripting
//!
//! Behaviour is chosen per request by query parameters on any path, e.g.
//! `/anything?status=503&retry_after=1` or `/x?faults=reset_mid_body:20,slow:2`:
//!
//! | parameter | meaning |
//! |---|---|
//! | `status=N` | response status (200..=999, default 200) |
//! | `body_size=N` | body of `N` deterministic bytes (`abc..z` repeated); default body is `ok` |
//! | `content_type=V` | `Content-Type` (default `text/plain`) |
//! | `delay_ms=N` | sleep before sending the response head (the connection closes at once if the client closes meanwhile, as with `slow`) |
//! | `header=Name:Value` | extra response header (repeatable, URL-decoded) |
//! | `retry_after=V` | shortcut for `header=Retry-After:V` |
//! | `fault=KIND` | inject `KIND` on 100% of requests (or `fault_pct` percent) |
//! | `fault_pct=P` | percentage (0-100, float) for `fault` |
//! | `faults=KIND:PCT,..` | a mix of faults with their percentages |
//! | `drip_ms=N` | interval of the `drip` fault (default 100) |
//! | `slow_ms=N` | delay of the `slow` fault (default 2000) |
//!
//! Fault kinds: `reset_before`, `reset_mid_body`, `close_before`, `never`,
//! `drip`, `garbage`, `status503`, `slow` (see [`FaultKind`]).
//!
//! Special paths: `/echo` (echoes the request body, method and `x-*` headers),
//! `/redirect?to=PATH&code=302`, `/__stats` (JSON counters) and `/__reset`.
//! Requests to `/__stats` and `/__reset` are invisible: they are not counted in
//! any counter, and a connection that only carried such requests is not counted
//! either.
//!
//! Requests are counted (and recorded as [`Arrival`]s) as soon as their head is
//! parsed, before any fault is applied.

mod child;
mod conn;
mod params;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use child::ChildServer;
pub use params::FaultKind;

/// Fixed default seed for fault selection.
const DEFAULT_SEED: u64 = 0x5EED_0FBA_7C4C_1100;

/// Configuration of a [`TestServer`]; start from [`ServerConfig::default`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    record_arrivals: bool,
    max_lifetime: Duration,
    seed: u64,
    port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            record_arrivals: false,
            max_lifetime: Duration::from_secs(600),
            seed: DEFAULT_SEED,
            port: 0,
        }
    }
}

impl ServerConfig {
    /// Keep an [`Arrival`] for every request head parsed (see [`TestServer::arrivals`]).
    pub fn record_arrivals(mut self, on: bool) -> Self {
        self.record_arrivals = on;
        self
    }

    /// The server stops itself (closing every connection) after this long.
    /// Default: 10 minutes.
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        self.max_lifetime = d;
        self
    }

    /// Seed of the fault selection RNG (default: a fixed constant).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Port to bind on 127.0.0.1; `0` (the default) picks a free one.
    /// `SO_REUSEADDR` is set so a server can be restarted on the same port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// One request head received by the server (see [`ServerConfig::record_arrivals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// When the head was parsed.
    pub at: Instant,
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target as sent, e.g. `/a?b=c`.
    pub path_and_query: String,
    /// Server-side id of the connection (1, 2, ... in accept order).
    pub connection_id: u64,
}

/// A snapshot of the server counters.
///
/// All counters except `connections_open` are cumulative and zeroed by a reset;
/// `connections_open` is a live gauge and is never reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Request heads parsed (control paths excluded).
    pub requests: u64,
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections currently open.
    pub connections_open: u64,
    /// Connections closed (for any reason).
    pub connections_closed: u64,
    /// Requests on which a fault was injected.
    pub faults_injected: u64,
    /// Raw bytes read from clients.
    pub bytes_received: u64,
}

impl ServerStats {
    /// Renders the stats as the JSON object served on `/__stats`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"requests\":{},\"connections_accepted\":{},\"connections_open\":{},\
             \"connections_closed\":{},\"faults_injected\":{},\"bytes_received\":{}}}",
            self.requests,
            self.connections_accepted,
            self.connections_open,
            self.connections_closed,
            self.faults_injected,
            self.bytes_received
        )
    }

    /// Parses the JSON produced by [`ServerStats::to_json`] (a flat object of
    /// integer fields; unknown keys are ignored). Returns `None` if a field is missing.
    pub fn from_json(s: &str) -> Option<ServerStats> {
        fn field(s: &str, key: &str) -> Option<u64> {
            let pat = format!("\"{key}\"");
            let at = s.find(&pat)? + pat.len();
            let rest = s[at..].trim_start().strip_prefix(':')?.trim_start();
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        }
        Some(ServerStats {
            requests: field(s, "requests")?,
            connections_accepted: field(s, "connections_accepted")?,
            connections_open: field(s, "connections_open")?,
            connections_closed: field(s, "connections_closed")?,
            faults_injected: field(s, "faults_injected")?,
            bytes_received: field(s, "bytes_received")?,
        })
    }
}

/// State shared by the accept loop, the connections and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) requests: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) faults: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Sequence number fed to the fault RNG (only requests with a fault spec draw).
    pub(crate) fault_seq: AtomicU64,
    pub(crate) seed: u64,
    pub(crate) record: bool,
    pub(crate) arrivals: Mutex<Vec<Arrival>>,
}

impl Shared {
    fn new(config: &ServerConfig) -> Shared {
        Shared {
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            fault_seq: AtomicU64::new(0),
            seed: config.seed,
            record: config.record_arrivals,
            arrivals: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn stats(&self) -> ServerStats {
        ServerStats {
            requests: self.requests.load(Ordering::Relaxed),
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            connections_open: self.open.load(Ordering::Relaxed),
            connections_closed: self.closed.load(Ordering::Relaxed),
            faults_injected: self.faults.load(Ordering::Relaxed),
            bytes_received: self.bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.accepted.store(0, Ordering::Relaxed);
        self.closed.store(0, Ordering::Relaxed);
        self.faults.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.fault_seq.store(0, Ordering::Relaxed);
        if let Ok(mut a) = self.arrivals.lock() {
            a.clear();
        }
    }
}

/// Saturating `fetch_sub` on a counter (a concurrent reset may have zeroed it).
pub(crate) fn saturating_sub(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// The server running in-process on tokio tasks of the current runtime.
///
/// Dropping it aborts the accept loop and every connection task.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the default [`ServerConfig`].
    pub async fn start() -> std::io::Result<TestServer> {
        Self::start_with(ServerConfig::default()).await
    }

    /// Starts a server bound to `127.0.0.1:config.port`.
    ///
    /// Must be called within a tokio runtime (with the time and IO drivers enabled).
    pub async fn start_with(config: ServerConfig) -> std::io::Result<TestServer> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port)))?;
        let listener = socket.listen(1024)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            stop_rx,
            config.max_lifetime,
        ));
        Ok(TestServer {
            addr,
            shared,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The bound address (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url() + path_and_query`; the path must start with `/`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// Every request head parsed since start (or the last reset), in arrival
    /// order; empty unless [`ServerConfig::record_arrivals`] was set.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared
            .arrivals
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Zeroes the cumulative counters, the fault sequence and the arrivals.
    pub fn reset_stats(&self) {
        self.shared.reset();
    }

    /// Polls until no connection is open or `timeout` elapses; returns whether
    /// all connections are closed.
    pub async fn wait_connections_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.open.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting, closes every connection and waits for all tasks to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection.
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
    max_lifetime: Duration,
) {
    let mut conns = JoinSet::new();
    let lifetime = tokio::time::sleep(max_lifetime);
    tokio::pin!(lifetime);
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = &mut lifetime => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => match res {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    shared.open.fetch_add(1, Ordering::SeqCst);
                    let guard = conn::ConnGuard::new(Arc::clone(&shared));
                    let id = next_id;
                    next_id += 1;
                    conns.spawn(conn::serve(stream, guard, id));
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
}

//! One connection: parse heads, read bodies, write (or sabotage) responses.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::params::{FaultKind, Params, roll};
use crate::{Arrival, Shared, saturating_sub};

/// Largest accepted request head.
const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted request body (413 above).
const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Maximum number of request headers.
const MAX_HEADERS: usize = 100;
/// Large bodies are written in pieces of this size.
const WRITE_CHUNK: usize = 256 * 1024;
/// Buffers that grew beyond this are released after the request.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Length of [`PATTERN`]: a multiple of 26 so consecutive copies stay in phase.
const PATTERN_LEN: usize = 26 * 2520;
/// `abc..zabc..z..`: source of deterministic bodies.
static PATTERN: [u8; PATTERN_LEN] = build_pattern();

const fn build_pattern() -> [u8; PATTERN_LEN] {
    let mut a = [0u8; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        a[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    a
}

/// Tracks the life of one connection in the shared counters; its drop (on any
/// exit, including task abort) marks the connection closed.
///
/// A connection whose requests so far were all control requests (`/__stats`,
/// `/__reset`) is *hidden*: it is taken out of `connections_accepted` and
/// `connections_open` as soon as its first control request arrives, and put
/// back if a normal request follows.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    saw_normal: bool,
    hidden: bool,
}

impl ConnGuard {
    pub(crate) fn new(shared: Arc<Shared>) -> ConnGuard {
        ConnGuard {
            shared,
            saw_normal: false,
            hidden: false,
        }
    }

    fn on_control(&mut self) {
        if !self.saw_normal && !self.hidden {
            self.hidden = true;
            saturating_sub(&self.shared.accepted, 1);
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn on_normal(&mut self) {
        self.saw_normal = true;
        if self.hidden {
            self.hidden = false;
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
            self.shared.open.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if !self.hidden {
            self.shared.closed.fetch_add(1, Ordering::Relaxed);
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a parsed request head says about framing.
#[derive(Debug, Default)]
struct Head {
    len: usize,
    http10: bool,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

enum BodyError {
    /// Connection failed or hit EOF mid-body: just close.
    Io,
    Bad,
    TooLarge,
}

impl From<io::Error> for BodyError {
    fn from(_: io::Error) -> Self {
        BodyError::Io
    }
}

/// Whether to go on reading requests on this connection.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

/// Where response body bytes come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodySrc {
    /// The default body `ok`.
    Ok,
    /// `abc..z` repeated.
    Pattern,
    /// The request body (`/echo`).
    Echo,
}

struct Conn {
    stream: TcpStream,
    guard: ConnGuard,
    id: u64,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    body: Vec<u8>,
    method: String,
    target: String,
    /// `x-*` request headers (lower-cased names), collected for `/echo` only.
    echo: Vec<(String, Vec<u8>)>,
}

/// Serves one accepted connection until it closes, fails or the task is aborted.
pub(crate) async fn serve(stream: TcpStream, guard: ConnGuard, id: u64) {
    let mut conn = Conn {
        stream,
        guard,
        id,
        rbuf: Vec::with_capacity(8 * 1024),
        wbuf: Vec::with_capacity(8 * 1024),
        body: Vec::new(),
        method: String::with_capacity(8),
        target: String::with_capacity(64),
        echo: Vec::new(),
    };
    let _ = conn.run().await;
    // Dropping `conn` closes the socket (with RST if zero linger was set) and the guard.
}

/// Splits a request target into path and query; tolerates absolute-form targets.
fn split_target(target: &str) -> (&str, &str) {
    let t = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    match t.split_once('?') {
        Some((p, q)) => (p, q),
        None => (t, ""),
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_header(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Appends bytes `[from, from + len)` of the body described by `src`.
fn append_body(buf: &mut Vec<u8>, src: BodySrc, echo: &[u8], from: u64, len: u64) {
    let (from, len) = (from as usize, len as usize);
    match src {
        BodySrc::Ok => buf.extend_from_slice(&b"ok"[from..from + len]),
        BodySrc::Echo => buf.extend_from_slice(&echo[from..from + len]),
        BodySrc::Pattern => {
            let mut phase = from % 26;
            let mut left = len;
            while left > 0 {
                let n = left.min(PATTERN_LEN - phase);
                buf.extend_from_slice(&PATTERN[phase..phase + n]);
                left -= n;
                phase = 0;
            }
        }
    }
}

impl Conn {
    fn shared(&self) -> &Shared {
        &self.guard.shared
    }

    /// Reads more bytes into `rbuf`; `Ok(0)` on EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(8 * 1024);
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        self.guard
            .shared
            .bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            let head = loop {
                if !self.rbuf.is_empty() {
                    match self.parse_head() {
                        Ok(Some(h)) => break h,
                        Ok(None) => {}
                        Err(code) => {
                            self.write_simple(code, b"malformed request\n", false)
                                .await?;
                            return Ok(());
                        }
                    }
                }
                if self.fill().await? == 0 {
                    return Ok(());
                }
            };
            self.rbuf.drain(..head.len);

            let (path, _) = split_target(&self.target);
            let control = path == "/__stats" || path == "/__reset";
            if control {
                self.guard.on_control();
            } else {
                self.guard.on_normal();
                self.count_request();
            }

            let body_raw = match self.read_body(&head).await {
                Ok(n) => n,
                Err(BodyError::Io) => return Ok(()),
                Err(BodyError::Bad) => {
                    self.write_simple(400, b"bad request body\n", false).await?;
                    return Ok(());
                }
                Err(BodyError::TooLarge) => {
                    self.write_simple(413, b"request body too large\n", false)
                        .await?;
                    return Ok(());
                }
            };
            if control {
                saturating_sub(&self.shared().bytes, head.len as u64 + body_raw);
            }

            let keep_alive = !head.close && (!head.http10 || head.keep_alive);
            let target = std::mem::take(&mut self.target);
            let next = self.respond(&target, &head, keep_alive).await;
            self.target = target;
            if self.body.capacity() > KEEP_CAPACITY {
                self.body = Vec::new();
            }
            if self.rbuf.capacity() > KEEP_CAPACITY && self.rbuf.len() < 8 * 1024 {
                self.rbuf.shrink_to(16 * 1024);
            }
            if self.wbuf.capacity() > KEEP_CAPACITY {
                self.wbuf = Vec::with_capacity(8 * 1024);
            }
            match next? {
                Next::Continue if keep_alive => {}
                Next::Continue => {
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
                Next::Close => return Ok(()),
            }
        }
    }

    fn count_request(&mut self) {
        let s = &self.guard.shared;
        s.requests.fetch_add(1, Ordering::Relaxed);
        if s.record {
            let arrival = Arrival {
                at: Instant::now(),
                method: self.method.clone(),
                path_and_query: self.target.clone(),
                connection_id: self.id,
            };
            if let Ok(mut a) = s.arrivals.lock() {
                a.push(arrival);
            }
        }
    }

    /// `Ok(None)`: incomplete. `Err(status)`: malformed, answer `status` and close.
    fn parse_head(&mut self) -> Result<Option<Head>, u16> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(&self.rbuf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.rbuf.len() > MAX_HEAD => return Err(431),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(_) => return Err(400),
        };
        self.method.clear();
        self.method.push_str(req.method.unwrap_or("GET"));
        self.target.clear();
        self.target.push_str(req.path.unwrap_or("/"));
        let is_echo = split_target(&self.target).0 == "/echo";
        self.echo.clear();
        let mut head = Head {
            len,
            http10: req.version == Some(0),
            ..Head::default()
        };
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(400u16)?;
                if head.content_length.is_some_and(|c| c != v) {
                    return Err(400);
                }
                head.content_length = Some(v);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if has_token(h.value, "chunked") {
                    head.chunked = true;
                } else {
                    return Err(400);
                }
            } else if name.eq_ignore_ascii_case("connection") {
                head.close |= has_token(h.value, "close");
                head.keep_alive |= has_token(h.value, "keep-alive");
            } else if name.eq_ignore_ascii_case("expect") {
                head.expect_continue |= has_token(h.value, "100-continue");
            } else if is_echo && name.len() > 2 && name.as_bytes()[..2].eq_ignore_ascii_case(b"x-")
            {
                self.echo
                    .push((name.to_ascii_lowercase(), h.value.to_vec()));
            }
        }
        Ok(Some(head))
    }

    /// Reads the request body into `self.body`; returns the raw bytes consumed.
    async fn read_body(&mut self, head: &Head) -> Result<u64, BodyError> {
        self.body.clear();
        let expects_body = head.chunked || head.content_length.unwrap_or(0) > 0;
        if head.expect_continue && expects_body && self.rbuf.is_empty() {
            if head.content_length.unwrap_or(0) > MAX_BODY {
                return Err(BodyError::TooLarge);
            }
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        if head.chunked {
            return self.read_chunked().await;
        }
        let cl = head.content_length.unwrap_or(0);
        if cl > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        let take = (self.rbuf.len() as u64).min(cl) as usize;
        self.body.extend_from_slice(&self.rbuf[..take]);
        self.rbuf.drain(..take);
        while (self.body.len() as u64) < cl {
            let remaining = cl - self.body.len() as u64;
            self.body.reserve(remaining.min(64 * 1024) as usize);
            let n = (&mut self.stream)
                .take(remaining)
                .read_buf(&mut self.body)
                .await?;
            if n == 0 {
                return Err(BodyError::Io);
            }
            self.guard
                .shared
                .bytes
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(cl)
    }

    async fn read_chunked(&mut self) -> Result<u64, BodyError> {
        let mut pos = 0usize;
        let mut consumed = 0u64;
        loop {
            match httparse::parse_chunk_size(&self.rbuf[pos..]) {
                Ok(httparse::Status::Complete((used, size))) => {
                    pos += used;
                    if size == 0 {
                        // Trailer section: lines until an empty one.
                        loop {
                            match self.rbuf[pos..].windows(2).position(|w| w == b"\r\n") {
                                Some(0) => {
                                    pos += 2;
                                    self.rbuf.drain(..pos);
                                    return Ok(consumed + pos as u64);
                                }
                                Some(i) => pos += i + 2,
                                None => {
                                    if self.rbuf.len() - pos > MAX_HEAD {
                                        return Err(BodyError::Bad);
                                    }
                                    if self.fill().await? == 0 {
                                        return Err(BodyError::Io);
                                    }
                                }
                            }
                        }
                    }
                    if size > MAX_BODY || self.body.len() as u64 + size > MAX_BODY {
                        return Err(BodyError::TooLarge);
                    }
                    let size = size as usize;
                    while self.rbuf.len() < pos + size + 2 {
                        if self.fill().await? == 0 {
                            return Err(BodyError::Io);
                        }
                    }
                    self.body.extend_from_slice(&self.rbuf[pos..pos + size]);
                    if &self.rbuf[pos + size..pos + size + 2] != b"\r\n" {
                        return Err(BodyError::Bad);
                    }
                    pos += size + 2;
                    // Keep the read buffer small for long chunked uploads.
                    if pos > 64 * 1024 {
                        self.rbuf.drain(..pos);
                        consumed += pos as u64;
                        pos = 0;
                    }
                }
                Ok(httparse::Status::Partial) => {
                    if self.rbuf.len() - pos > 1024 {
                        return Err(BodyError::Bad);
                    }
                    if self.fill().await? == 0 {
                        return Err(BodyError::Io);
                    }
                }
                Err(_) => return Err(BodyError::Bad),
            }
        }
    }

    /// Writes a small complete response (used for errors and control paths).
    async fn write_simple(&mut self, status: u16, body: &[u8], keep_alive: bool) -> io::Result<()> {
        self.wbuf.clear();
        self.status_line(status);
        self.wbuf.extend_from_slice(b"content-length: ");
        push_u64(&mut self.wbuf, body.len() as u64);
        self.wbuf.extend_from_slice(b"\r\n");
        let ct: &[u8] = if body.first() == Some(&b'{') {
            b"application/json"
        } else {
            b"text/plain"
        };
        push_header(&mut self.wbuf, "content-type", ct);
        if !keep_alive {
            push_header(&mut self.wbuf, "connection", b"close");
        }
        self.wbuf.extend_from_slice(b"\r\n");
        if self.method != "HEAD" {
            self.wbuf.extend_from_slice(body);
        }
        self.stream.write_all(&self.wbuf).await?;
        if !keep_alive {
            let _ = self.stream.shutdown().await;
        }
        Ok(())
    }

    fn status_line(&mut self, status: u16) {
        self.wbuf.extend_from_slice(b"HTTP/1.1 ");
        push_u64(&mut self.wbuf, u64::from(status));
        self.wbuf.push(b' ');
        self.wbuf.extend_from_slice(reason(status).as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// Writes body bytes `[from, to)` after whatever is already in `wbuf`, in
    /// pieces of at most [`WRITE_CHUNK`], and flushes `wbuf`.
    async fn send_body(&mut self, src: BodySrc, from: u64, to: u64) -> io::Result<()> {
        let mut pos = from;
        loop {
            let room = WRITE_CHUNK.saturating_sub(self.wbuf.len()) as u64;
            let n = (to - pos).min(room);
            append_body(&mut self.wbuf, src, &self.body, pos, n);
            pos += n;
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            if pos >= to {
                return Ok(());
            }
        }
    }

    /// Sleep `ms`, but end at once (returning `false`) if the client closes
    /// meanwhile, as `never` does: a client that gave up must not keep the
    /// connection open for the rest of the sleep. Bytes the client pipelines
    /// during the sleep stay in `rbuf` for the next request (reading stops
    /// once a full head's worth is buffered; `read_buf` is cancel-safe).
    async fn sleep_unless_closed(&mut self, ms: u64) -> bool {
        let sleep = tokio::time::sleep(Duration::from_millis(ms));
        tokio::pin!(sleep);
        while self.rbuf.len() <= MAX_HEAD {
            tokio::select! {
                _ = &mut sleep => return true,
                read = self.fill() => match read {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => {}
                },
            }
        }
        sleep.await;
        true
    }

    async fn respond(&mut self, target: &str, head: &Head, keep_alive: bool) -> io::Result<Next> {
        let (path, query) = split_target(target);
        if path == "/__stats" {
            // This connection is hidden and its request bytes already subtracted.
            let stats = self.shared().stats();
            let json = stats.to_json();
            self.write_simple(200, json.as_bytes(), keep_alive).await?;
            return Ok(Next::Continue);
        }
        if path == "/__reset" {
            self.shared().reset();
            self.write_simple(200, b"ok", keep_alive).await?;
            return Ok(Next::Continue);
        }
        let params = match Params::parse(query) {
            Ok(p) => p,
            Err(msg) => {
                self.write_simple(400, msg.as_bytes(), keep_alive).await?;
                return Ok(Next::Continue);
            }
        };

        let fault = if params.has_fault_spec() {
            let s = self.shared();
            let seq = s.fault_seq.fetch_add(1, Ordering::Relaxed);
            let f = params.choose(roll(seq, s.seed));
            if f.is_some() {
                s.faults.fetch_add(1, Ordering::Relaxed);
            }
            f
        } else {
            None
        };

        if params.delay_ms > 0 && !self.sleep_unless_closed(params.delay_ms).await {
            return Ok(Next::Close);
        }

        let mut status = params.status;
        match fault {
            Some(FaultKind::ResetBefore) => {
                self.stream.set_zero_linger()?;
                return Ok(Next::Close);
            }
            Some(FaultKind::CloseBefore) => {
                let _ = self.stream.shutdown().await;
                return Ok(Next::Close);
            }
            Some(FaultKind::Never) => {
                // Keep draining so a client close (EOF or error) ends the connection.
                loop {
                    self.rbuf.clear();
                    match self.fill().await {
                        Ok(0) | Err(_) => return Ok(Next::Close),
                        Ok(_) => {}
                    }
                }
            }
            Some(FaultKind::Garbage) => {
                self.stream
                    .write_all(b"\x00\x01garbage\xff\r\n\r\n")
                    .await?;
                let _ = self.stream.shutdown().await;
                return Ok(Next::Close);
            }
            Some(FaultKind::Slow) => {
                if !self.sleep_unless_closed(params.slow_ms).await {
                    return Ok(Next::Close);
                }
            }
            Some(FaultKind::Status503) => status = 503,
            Some(FaultKind::ResetMidBody | FaultKind::Drip) | None => {}
        }

        let is_echo = path == "/echo";
        let is_redirect = path == "/redirect";
        if is_redirect {
            status = params.code.unwrap_or(302);
        }
        let (src, body_len) = if is_echo {
            (BodySrc::Echo, self.body.len() as u64)
        } else if let Some(n) = params.body_size {
            (BodySrc::Pattern, n)
        } else if fault == Some(FaultKind::ResetMidBody) {
            (BodySrc::Pattern, 1024)
        } else {
            (BodySrc::Ok, 2)
        };
        let no_body_status = status == 204 || status == 304;
        let send_body = self.method != "HEAD" && !no_body_status;

        self.wbuf.clear();
        self.status_line(status);
        if status != 204 {
            self.wbuf.extend_from_slice(b"content-length: ");
            push_u64(&mut self.wbuf, if status == 304 { 0 } else { body_len });
            self.wbuf.extend_from_slice(b"\r\n");
        }
        let ct: &[u8] = match &params.content_type {
            Some(ct) => ct.as_bytes(),
            None if is_echo => b"application/octet-stream",
            None => b"text/plain",
        };
        push_header(&mut self.wbuf, "content-type", ct);
        if !keep_alive {
            push_header(&mut self.wbuf, "connection", b"close");
        } else if head.http10 {
            push_header(&mut self.wbuf, "connection", b"keep-alive");
        }
        if let Some(ra) = &params.retry_after {
            push_header(&mut self.wbuf, "retry-after", ra.as_bytes());
        } else if fault == Some(FaultKind::Status503) {
            push_header(&mut self.wbuf, "retry-after", b"1");
        }
        if is_redirect {
            let to = params.to.as_deref().unwrap_or("/");
            push_header(&mut self.wbuf, "location", to.as_bytes());
        }
        if is_echo {
            let Conn {
                wbuf, method, echo, ..
            } = self;
            push_header(wbuf, "x-echo-method", method.as_bytes());
            wbuf.extend_from_slice(b"x-echo-body-len: ");
            push_u64(wbuf, body_len);
            wbuf.extend_from_slice(b"\r\n");
            for (name, value) in echo.iter() {
                wbuf.extend_from_slice(b"x-echo-");
                push_header(wbuf, name, value);
            }
        }
        for (name, value) in &params.headers {
            push_header(&mut self.wbuf, name, value.as_bytes());
        }
        self.wbuf.extend_from_slice(b"\r\n");

        match fault {
            Some(FaultKind::ResetMidBody) => {
                let half = if send_body { body_len / 2 } else { 0 };
                self.send_body(src, 0, half).await?;
                self.stream.flush().await?;
                self.stream.set_zero_linger()?;
                Ok(Next::Close)
            }
            Some(FaultKind::Drip) => {
                self.send_body(src, 0, 0).await?;
                if send_body {
                    let interval = Duration::from_millis(params.drip_ms);
                    for i in 0..body_len {
                        tokio::time::sleep(interval).await;
                        append_body(&mut self.wbuf, src, &self.body, i, 1);
                        self.stream.write_all(&self.wbuf).await?;
                        self.wbuf.clear();
                    }
                }
                Ok(Next::Continue)
            }
            _ => {
                let to = if send_body { body_len } else { 0 };
                self.send_body(src, 0, to).await?;
                Ok(Next::Continue)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_body_is_continuous() {
        let mut v = Vec::new();
        append_body(&mut v, BodySrc::Pattern, &[], 0, PATTERN_LEN as u64 + 30);
        append_body(&mut v, BodySrc::Pattern, &[], PATTERN_LEN as u64 + 30, 5);
        for (i, b) in v.iter().enumerate() {
            assert_eq!(*b, b'a' + (i % 26) as u8);
        }
    }

    #[test]
    fn formats_numbers_and_targets() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615");
        assert_eq!(split_target("/a?b=c"), ("/a", "b=c"));
        assert_eq!(split_target("http://h:1/x?y"), ("/x", "y"));
        assert_eq!(split_target("http://h:1"), ("/", ""));
    }
}

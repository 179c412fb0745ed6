//! The checks, one `async fn` per behaviour.
//!
//! Each takes your driver factory (`Fn(ConformanceConfig) -> Result<D,
//! Error>`), builds its own driver and its own in-process
//! [`httpclient_testserver::TestServer`] on 127.0.0.1, and returns
//! `Ok(())` or a [`Failure`] that says what was expected and what the driver
//! did (with the error's kind and its whole source chain). Checks must run
//! inside a tokio runtime with the time and IO drivers enabled; the
//! [`conformance_tests!`](crate::conformance_tests) macro and
//! [`run_all`](crate::run_all) take care of that.
//!
//! Timing bounds are deliberately generous (a timeout of a few hundred
//! milliseconds must fire within 5 s) because these run on busy CI
//! machines; the lower bounds are exact (a 300 ms timeout cannot fire
//! before 300 ms have passed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http::{Method, StatusCode, Version};
use httpclient_core::{
    BodyStream, ConnectKind, Driver, DriverExt, Error, Request, RequestBody, TimeoutPhase,
};

use crate::support::{
    closed_port, describe, describe_err, driver, ensure, expect_err, expect_ok, header, pattern,
    pseudo_random, redirect_chain, same_body, server, wait_until,
};
use crate::{CheckResult, ConformanceConfig, DEFAULT_MAX_REDIRECTS, Failure};

/// The upper bound for "a timeout fired promptly".
const PROMPT: Duration = Duration::from_secs(5);
/// How long the server may take to notice a closed connection.
const CLOSE_NOTICED: Duration = Duration::from_secs(2);

fn build(builder: httpclient_core::RequestBuilder) -> Result<Request, Failure> {
    builder
        .build()
        .map_err(|e| Failure::new(format!("the suite built an invalid request: {e}")))
}

fn ensure_requests(
    server: &httpclient_testserver::TestServer,
    want: u64,
    what: &str,
) -> CheckResult {
    let got = server.stats().requests;
    ensure!(
        got == want,
        "{what}: the server received {got} requests, expected exactly {want} \
         (a driver must not retry on its own)"
    );
    Ok(())
}

macro_rules! check_fn {
    ($(#[$doc:meta])* $name:ident($make:ident) $body:block) => {
        $(#[$doc])*
        pub async fn $name<F, D>($make: &F) -> CheckResult
        where
            F: Fn(ConformanceConfig) -> Result<D, Error>,
            D: Driver + 'static,
        $body
    };
}

check_fn! {
    /// `GET` returns the status, version (HTTP/1.1), headers and body the
    /// server sent, and the final URL when the driver reports one; the
    /// server sees exactly one request.
    method_get(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let url = srv.url("/hello?body_size=10&header=X-Conformance:yes");
        let r = expect_ok(d.send(url.as_str()).await, "GET")?;
        ensure!(r.status() == StatusCode::OK, "GET: status {} instead of 200", r.status());
        ensure!(r.version() == Version::HTTP_11, "GET: version {:?} instead of HTTP/1.1", r.version());
        ensure!(r.bytes().as_ref() == b"abcdefghij", "GET: body {:?} instead of \"abcdefghij\"", r.bytes());
        ensure!(header(&r, "x-conformance") == "yes", "GET: response header x-conformance missing: {:?}", r.headers());
        ensure!(header(&r, "content-type") == "text/plain", "GET: content-type {:?}", header(&r, "content-type"));
        if let Some(u) = r.url() {
            ensure!(u.to_string() == url, "GET: reported URL {u} instead of {url}");
        }
        ensure_requests(&srv, 1, "GET")
    }
}

check_fn! {
    /// `HEAD` returns the head only: status 200, the `Content-Length` of the
    /// resource, and an empty body.
    method_head(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let r = expect_ok(d.send(Request::head(srv.url("/x?body_size=1000"))).await, "HEAD")?;
        ensure!(r.status() == StatusCode::OK, "HEAD: status {}", r.status());
        ensure!(r.bytes().is_empty(), "HEAD: body of {} bytes, expected none", r.bytes().len());
        ensure!(header(&r, "content-length") == "1000", "HEAD: content-length {:?}, expected 1000", header(&r, "content-length"));
        ensure_requests(&srv, 1, "HEAD")
    }
}

async fn method_round_trip<D: Driver>(
    d: &D,
    srv: &httpclient_testserver::TestServer,
    method: Method,
    body: &'static [u8],
) -> CheckResult {
    let req =
        build(Request::builder(method.clone(), srv.url("/echo")).body(Bytes::from_static(body)))?;
    let r = expect_ok(d.execute(req).await, method.as_str())?;
    ensure!(
        r.status() == StatusCode::OK,
        "{method}: status {}",
        r.status()
    );
    ensure!(
        header(&r, "x-echo-method") == method.as_str(),
        "{method}: the server saw method {:?}",
        header(&r, "x-echo-method")
    );
    ensure!(
        header(&r, "x-echo-body-len") == body.len().to_string(),
        "{method}: the server saw a body of {:?} bytes, sent {}",
        header(&r, "x-echo-body-len"),
        body.len()
    );
    same_body(r.bytes(), body, method.as_str())?;
    ensure_requests(srv, 1, method.as_str())
}

check_fn! {
    /// `POST` sends its method and body; the echo comes back intact.
    method_post(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        method_round_trip(&d, &srv, Method::POST, b"posted payload").await
    }
}

check_fn! {
    /// `PUT` sends its method and body; the echo comes back intact.
    method_put(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        method_round_trip(&d, &srv, Method::PUT, b"put payload").await
    }
}

check_fn! {
    /// `DELETE` without a body reaches the server as a `DELETE`.
    method_delete(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        method_round_trip(&d, &srv, Method::DELETE, b"").await
    }
}

check_fn! {
    /// `PATCH` sends its method and body; the echo comes back intact.
    method_patch(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        method_round_trip(&d, &srv, Method::PATCH, b"patch payload").await
    }
}

check_fn! {
    /// Request headers reach the server (a repeated header keeps both
    /// values, in order) and response headers come back byte for byte,
    /// including a non-ASCII value.
    headers_round_trip(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let req = build(
            Request::get(srv.url("/echo?header=X-Reply:hello%20world&header=X-Utf8:%E2%9C%93"))
                .header("x-trace-id", "abc-123")
                .header("x-multi", "one")
                .header("x-multi", "two"),
        )?;
        let r = expect_ok(d.execute(req).await, "headers")?;
        ensure!(header(&r, "x-echo-x-trace-id") == "abc-123", "the server did not see x-trace-id: {:?}", r.headers());
        let multi: Vec<_> = r.headers().get_all("x-echo-x-multi").iter().map(|v| v.as_bytes().to_vec()).collect();
        ensure!(multi == [b"one".to_vec(), b"two".to_vec()], "a repeated request header arrived as {multi:?}, expected [one, two]");
        ensure!(header(&r, "x-reply") == "hello world", "response header x-reply is {:?}", header(&r, "x-reply"));
        let utf8 = r.headers().get("x-utf8").map(|v| v.as_bytes().to_vec());
        ensure!(utf8.as_deref() == Some("✓".as_bytes()), "non-ASCII response header came back as {utf8:?}");
        Ok(())
    }
}

check_fn! {
    /// An empty `POST` body is sent as zero bytes and an empty response
    /// body comes back empty.
    body_empty_round_trip(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        method_round_trip(&d, &srv, Method::POST, b"").await
    }
}

check_fn! {
    /// Every byte value 0..=255 survives the round trip in both directions
    /// (no text decoding, no NUL truncation).
    body_binary_round_trip(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let mut body: Vec<u8> = (0..=255u8).collect();
        body.extend((0..=255u8).rev());
        body.extend([0, 0, b'\r', b'\n', b'\r', b'\n', 0xff, 0]);
        let req = build(Request::post(srv.url("/echo")).body(body.clone()))?;
        let r = expect_ok(d.execute(req).await, "binary body")?;
        ensure!(header(&r, "content-type") == "application/octet-stream", "echo content-type {:?}", header(&r, "content-type"));
        same_body(r.bytes(), &body, "binary body")
    }
}

check_fn! {
    /// A 1 MiB pseudo-random body goes up and comes back identical.
    body_1mib_round_trip(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let body = pseudo_random(1024 * 1024, 0x5eed);
        let req = build(Request::put(srv.url("/echo")).body(body.clone()))?;
        let r = expect_ok(d.execute(req).await, "1 MiB body")?;
        ensure!(r.status() == StatusCode::OK, "1 MiB body: status {}", r.status());
        same_body(r.bytes(), &body, "1 MiB body")
    }
}

check_fn! {
    /// A streamed request body ([`RequestBody::from_stream`]) is sent in
    /// full: the server echoes the concatenation of the chunks.
    request_body_stream(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let chunks: Vec<Bytes> = (0..9u64).map(|i| Bytes::from(pseudo_random(10_000 + i as usize * 7_001, i + 1))).collect();
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let stream: BodyStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let req = build(Request::post(srv.url("/echo")).body(RequestBody::from_stream(stream)))?;
        let r = expect_ok(d.execute(req).await, "streamed request body")?;
        ensure!(r.status() == StatusCode::OK, "streamed request body: status {}", r.status());
        same_body(r.bytes(), &want, "streamed request body")
    }
}

check_fn! {
    /// 404 and 429 are responses, not errors; the 429's `Retry-After`
    /// header is visible. One request each (no retry).
    status_4xx_is_response(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let r = expect_ok(d.send(srv.url("/missing?status=404").as_str()).await, "404")?;
        ensure!(r.status() == StatusCode::NOT_FOUND, "status {} instead of 404", r.status());
        let r = expect_ok(d.send(srv.url("/busy?status=429&retry_after=7").as_str()).await, "429")?;
        ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS, "status {} instead of 429", r.status());
        ensure!(header(&r, "retry-after") == "7", "retry-after {:?} instead of 7", header(&r, "retry-after"));
        ensure_requests(&srv, 2, "4xx")
    }
}

check_fn! {
    /// 500, 502 and 503 are responses, not errors, with their bodies. One
    /// request each (no retry, even on 503).
    status_5xx_is_response(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        for code in [500u16, 502, 503] {
            let r = expect_ok(d.send(srv.url(&format!("/e?status={code}&retry_after=1")).as_str()).await, &code.to_string())?;
            ensure!(r.status().as_u16() == code, "status {} instead of {code}", r.status());
            ensure!(r.bytes().as_ref() == b"ok", "the {code} body was {:?}, expected \"ok\"", r.bytes());
        }
        ensure_requests(&srv, 3, "5xx")
    }
}

check_fn! {
    /// Redirects are followed by default: a chain of 3 hops ends at the
    /// final resource, whose URL the response reports. The server sees 4
    /// requests.
    redirect_followed(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let r = expect_ok(d.send(srv.url(&redirect_chain(3, "/final?body_size=5")).as_str()).await, "3 redirects")?;
        ensure!(r.status() == StatusCode::OK, "after 3 redirects: status {} (redirects must be followed by default)", r.status());
        ensure!(r.bytes().as_ref() == b"abcde", "after 3 redirects: body {:?}", r.bytes());
        let Some(url) = r.url() else {
            return Err(Failure::new("after 3 redirects the response reports no final URL"));
        };
        ensure!(url.path() == "/final" && url.port_u16() == Some(srv.addr().port()), "final URL reported as {url}, expected {}", srv.url("/final?body_size=5"));
        ensure_requests(&srv, 4, "3 redirects")
    }
}

check_fn! {
    /// The default redirect limit is [`DEFAULT_MAX_REDIRECTS`]: a chain of
    /// 10 hops is followed (11 requests); a chain of 11 is an error after
    /// 11 requests (not a timeout, not a hang, not a 3xx response).
    redirect_limit(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let max = DEFAULT_MAX_REDIRECTS;
        let r = expect_ok(d.send(srv.url(&redirect_chain(max, "/final")).as_str()).await, "10 redirects")?;
        ensure!(r.status() == StatusCode::OK, "after {max} redirects: status {}", r.status());
        ensure_requests(&srv, max as u64 + 1, "10 redirects")?;
        srv.reset_stats();
        let res = d.send(srv.url(&redirect_chain(max + 1, "/final")).as_str()).await;
        let e = expect_err(res, "an error for one redirect over the limit", |_| true)?;
        ensure!(!e.is_timeout() && !e.is_connect(), "too many redirects reported as {}", describe_err(&e));
        ensure_requests(&srv, max as u64 + 1, "11 redirects")
    }
}

check_fn! {
    /// A `303 See Other` answer to a `POST` is followed with a `GET` and no
    /// body (RFC 9110 §15.4.4).
    redirect_303_post_becomes_get(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let req = build(Request::post(srv.url("/redirect?to=/echo&code=303")).body("form data"))?;
        let r = expect_ok(d.execute(req).await, "POST answered by 303")?;
        ensure!(r.status() == StatusCode::OK, "after a 303: status {}", r.status());
        ensure!(header(&r, "x-echo-method") == "GET", "after a 303 the server saw {:?}, expected GET", header(&r, "x-echo-method"));
        ensure!(header(&r, "x-echo-body-len") == "0", "after a 303 the GET carried {:?} body bytes", header(&r, "x-echo-body-len"));
        ensure_requests(&srv, 2, "303")
    }
}

check_fn! {
    /// A `307 Temporary Redirect` answer to a `POST` is followed with the
    /// same method and the same body (RFC 9110 §15.4.8).
    redirect_307_keeps_method_and_body(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let req = build(Request::post(srv.url("/redirect?to=/echo&code=307")).body("keep me"))?;
        let r = expect_ok(d.execute(req).await, "POST answered by 307")?;
        ensure!(r.status() == StatusCode::OK, "after a 307: status {}", r.status());
        ensure!(header(&r, "x-echo-method") == "POST", "after a 307 the server saw {:?}, expected POST", header(&r, "x-echo-method"));
        same_body(r.bytes(), b"keep me", "after a 307")?;
        ensure_requests(&srv, 2, "307")
    }
}

check_fn! {
    /// A request's own timeout bounds the attempt: a server that answers
    /// after 10 s gives `Timeout { phase: Request }` no sooner than the
    /// 300 ms timeout and within 5 s.
    timeout_per_request(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        let res = d.send(Request::get(srv.url("/slow?delay_ms=10000")).timeout(limit)).await;
        let took = started.elapsed();
        let e = expect_err(res, "Timeout { phase: Request }", |e| matches!(e, Error::Timeout { phase: TimeoutPhase::Request, .. }))?;
        ensure!(e.may_have_been_sent(), "a request timeout must count as maybe sent");
        ensure!(took >= limit, "the 300 ms timeout fired after only {took:?}");
        ensure!(took < PROMPT, "the 300 ms timeout took {took:?}");
        ensure_requests(&srv, 1, "timeout")
    }
}

check_fn! {
    /// The driver's default timeout applies when the request sets none:
    /// with a 400 ms default, a 10 s server delay gives
    /// `Timeout { phase: Request }` within 5 s.
    timeout_default(make) {
        let srv = server().await?;
        let limit = Duration::from_millis(400);
        let d = driver(make, ConformanceConfig::default().with_timeout(limit))?;
        let started = Instant::now();
        let res = d.send(srv.url("/slow?delay_ms=10000").as_str()).await;
        let took = started.elapsed();
        expect_err(res, "Timeout { phase: Request } from the driver's default timeout", |e| matches!(e, Error::Timeout { phase: TimeoutPhase::Request, .. }))?;
        ensure!(took >= limit, "the 400 ms default timeout fired after only {took:?}");
        ensure!(took < PROMPT, "the 400 ms default timeout took {took:?}");
        Ok(())
    }
}

check_fn! {
    /// A request's own timeout replaces the driver's default, also when it
    /// is longer: with a 300 ms default, a request allowing 10 s gets the
    /// response that takes 800 ms.
    timeout_request_overrides_default(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default().with_timeout(Duration::from_millis(300)))?;
        let started = Instant::now();
        let res = d.send(Request::get(srv.url("/slow?delay_ms=800")).timeout(Duration::from_secs(10))).await;
        let r = expect_ok(res, "a request timeout longer than the driver default")?;
        ensure!(r.status() == StatusCode::OK, "status {}", r.status());
        ensure!(started.elapsed() >= Duration::from_millis(800), "the 800 ms response arrived after {:?}", started.elapsed());
        Ok(())
    }
}

check_fn! {
    /// A port with nothing listening gives `Connect { kind: Refused }`,
    /// not retried, and `may_have_been_sent() == false`.
    connect_refused(make) {
        let port = closed_port()?;
        let d = driver(make, ConformanceConfig::default())?;
        let started = Instant::now();
        let res = d.send(format!("http://127.0.0.1:{port}/x").as_str()).await;
        let e = expect_err(res, "Connect { kind: Refused }", |e| matches!(e, Error::Connect { kind: ConnectKind::Refused, .. }))?;
        ensure!(!e.may_have_been_sent(), "a refused connection must report may_have_been_sent() == false");
        ensure!(e.is_retryable(), "a refused connection is retryable");
        ensure!(started.elapsed() < PROMPT, "the refusal took {:?}", started.elapsed());
        Ok(())
    }
}

check_fn! {
    /// A host name that cannot resolve (`.invalid` never does, RFC 6761)
    /// gives `Connect { kind: Dns }` with `may_have_been_sent() == false`.
    dns_failure(make) {
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send("http://nonexistent.invalid/x").await;
        let e = expect_err(res, "Connect { kind: Dns }", |e| matches!(e, Error::Connect { kind: ConnectKind::Dns, .. }))?;
        ensure!(!e.may_have_been_sent(), "a DNS failure must report may_have_been_sent() == false");
        Ok(())
    }
}

check_fn! {
    /// HTTPS to a plain-HTTP port fails the TLS handshake:
    /// `Connect { kind: Tls }`, not retryable, nothing sent.
    tls_handshake_failure(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send(format!("https://127.0.0.1:{}/x", srv.addr().port()).as_str()).await;
        let e = expect_err(res, "Connect { kind: Tls }", |e| matches!(e, Error::Connect { kind: ConnectKind::Tls, .. }))?;
        ensure!(!e.may_have_been_sent() && !e.is_retryable(), "a TLS failure is not retryable and nothing was sent");
        Ok(())
    }
}

check_fn! {
    /// The server reads the request and resets the connection (RST) before
    /// any response: `ResetBeforeResponse`, maybe sent, exactly one request
    /// at the server.
    reset_before_response(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send(srv.url("/x?fault=reset_before").as_str()).await;
        let e = expect_err(res, "ResetBeforeResponse", |e| matches!(e, Error::ResetBeforeResponse { .. }))?;
        ensure!(e.may_have_been_sent(), "a reset after sending must count as maybe sent");
        ensure_requests(&srv, 1, "reset before response")
    }
}

check_fn! {
    /// The server reads the request and closes the connection cleanly
    /// (FIN) without answering: also `ResetBeforeResponse`, one request.
    close_before_response(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send(srv.url("/x?fault=close_before").as_str()).await;
        expect_err(res, "ResetBeforeResponse", |e| matches!(e, Error::ResetBeforeResponse { .. }))?;
        ensure_requests(&srv, 1, "close before response")
    }
}

check_fn! {
    /// The head and half of a 200 000-byte body arrive, then RST:
    /// `ResetMidBody` (not a decode error, not a timeout), one request.
    reset_mid_body(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send(srv.url("/x?fault=reset_mid_body&body_size=200000").as_str()).await;
        expect_err(res, "ResetMidBody", |e| matches!(e, Error::ResetMidBody { .. }))?;
        ensure_requests(&srv, 1, "reset mid body")
    }
}

check_fn! {
    /// A server that never answers gives `Timeout { phase: Request }` at
    /// the request's 400 ms timeout, and the driver closes that connection
    /// (the server sees it closed within 2 s) instead of reusing it.
    never_respond_times_out(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let started = Instant::now();
        let res = d.send(Request::get(srv.url("/x?fault=never")).timeout(Duration::from_millis(400))).await;
        let took = started.elapsed();
        expect_err(res, "Timeout { phase: Request }", |e| matches!(e, Error::Timeout { phase: TimeoutPhase::Request, .. }))?;
        ensure!(took < PROMPT, "the 400 ms timeout took {took:?}");
        ensure!(srv.wait_connections_closed(CLOSE_NOTICED).await, "the timed-out connection is still open after 2 s (server stats {:?})", srv.stats());
        Ok(())
    }
}

check_fn! {
    /// The head arrives at once, then the body drips one byte every
    /// 100 ms: a 600 ms timeout that expires mid-body is
    /// `Timeout { phase: Request }` (not `ResetMidBody`), within 5 s.
    slow_drip_times_out(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let started = Instant::now();
        let res = d.send(Request::get(srv.url("/x?fault=drip&body_size=100&drip_ms=100")).timeout(Duration::from_millis(600))).await;
        let took = started.elapsed();
        expect_err(res, "Timeout { phase: Request }", |e| matches!(e, Error::Timeout { phase: TimeoutPhase::Request, .. }))?;
        ensure!(took < PROMPT, "the 600 ms timeout took {took:?}");
        Ok(())
    }
}

check_fn! {
    /// Bytes that are not HTTP give `InvalidResponse`, one request.
    garbage_is_invalid_response(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send(srv.url("/x?fault=garbage").as_str()).await;
        expect_err(res, "InvalidResponse", |e| matches!(e, Error::InvalidResponse { .. }))?;
        ensure_requests(&srv, 1, "garbage")
    }
}

const SMALL_LIMIT: u64 = 100_000;

check_fn! {
    /// With a 100 000-byte limit, a body of exactly 100 000 bytes is
    /// returned whole.
    body_at_limit(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default().with_max_body_bytes(SMALL_LIMIT))?;
        let r = expect_ok(d.send(srv.url(&format!("/x?body_size={SMALL_LIMIT}")).as_str()).await, "body at the limit")?;
        same_body(r.bytes(), &pattern(SMALL_LIMIT as usize), "body at the limit")
    }
}

check_fn! {
    /// With a 100 000-byte limit, a body of 100 001 bytes (and one of
    /// 10 MiB) is `BodyTooLarge { limit: 100000 }`.
    body_over_limit(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default().with_max_body_bytes(SMALL_LIMIT))?;
        for size in [SMALL_LIMIT + 1, 10 * 1024 * 1024] {
            let res = d.send(srv.url(&format!("/x?body_size={size}")).as_str()).await;
            let e = expect_err(res, "BodyTooLarge", |e| matches!(e, Error::BodyTooLarge { .. }))?;
            ensure!(matches!(e, Error::BodyTooLarge { limit } if limit == SMALL_LIMIT), "wrong limit reported: {}", describe_err(&e));
        }
        Ok(())
    }
}

check_fn! {
    /// The body limit is about bytes read: a `HEAD` whose `Content-Length`
    /// is 1 000 000 succeeds under a 1 000-byte limit.
    head_ignores_body_limit(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default().with_max_body_bytes(1000))?;
        let r = expect_ok(d.send(Request::head(srv.url("/x?body_size=1000000"))).await, "HEAD over the limit")?;
        ensure!(r.status() == StatusCode::OK && r.bytes().is_empty(), "HEAD: {}", describe(&Ok(r)));
        Ok(())
    }
}

check_fn! {
    /// An unparsable URL, an unsupported scheme and an invalid header are
    /// `InvalidRequest` before any network activity
    /// (`may_have_been_sent() == false`).
    invalid_url_rejected(make) {
        let d = driver(make, ConformanceConfig::default())?;
        for bad in ["not a url", "ftp://127.0.0.1/file", "http://exa mple.com/", "/relative/path"] {
            let res = d.send(bad).await;
            let e = expect_err(res, &format!("InvalidRequest for {bad:?}"), |e| matches!(e, Error::InvalidRequest { .. }))?;
            ensure!(!e.may_have_been_sent(), "an invalid request was never sent");
        }
        let res = d.send(Request::get("http://127.0.0.1:9/").header("bad header", "v")).await;
        expect_err(res, "InvalidRequest for an invalid header name", |e| matches!(e, Error::InvalidRequest { .. }))?;
        Ok(())
    }
}

check_fn! {
    /// 200 requests in flight at once on a multi-thread runtime, each with
    /// its own body, each get their own echo back; the server counts 200.
    concurrent_200(make) {
        let srv = server().await?;
        let d = Arc::new(driver(make, ConformanceConfig::default())?);
        let url = srv.url("/echo");
        let tasks: Vec<_> = (0..200usize)
            .map(|i| {
                let d = Arc::clone(&d);
                let body = format!("request {i}: {}", "x".repeat(i * 13));
                let req = Request::post(&url).body(body.clone()).tag(format!("r{i}"));
                tokio::spawn(async move { (i, body, d.send(req).await) })
            })
            .collect();
        for task in join_all(tasks).await {
            let (i, body, res) = task.map_err(|e| Failure::new(format!("a request task panicked: {e}")))?;
            let r = expect_ok(res, &format!("concurrent request {i}"))?;
            same_body(r.bytes(), body.as_bytes(), &format!("concurrent request {i}"))?;
        }
        ensure_requests(&srv, 200, "200 concurrent")
    }
}

check_fn! {
    /// Keep-alive: 10 rounds of 16 concurrent `GET`s open at most
    /// 1.25 × 16 = 20 connections at the server, and
    /// [`Driver::connections_opened`], when the driver can count
    /// (`Some`), equals the server's count exactly.
    keep_alive_reuse(make) {
        const C: usize = 16;
        const ROUNDS: usize = 10;
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        if let Some(n) = d.connections_opened() {
            ensure!(n == 0, "a new driver reports {n} connections opened");
        }
        let url = srv.url("/k?body_size=100");
        for round in 0..ROUNDS {
            let results = join_all((0..C).map(|_| d.send(url.as_str()))).await;
            for res in results {
                let r = expect_ok(res, &format!("keep-alive round {round}"))?;
                ensure!(r.bytes().len() == 100, "keep-alive round {round}: {} body bytes", r.bytes().len());
            }
            // hyper hands a finished connection back to its idle pool from a
            // background step after the body's last byte; on a loaded 2-core
            // machine the next round can start before that step ran and open
            // a spare connection. A short pause between rounds measures reuse,
            // not that scheduling race (the bound itself is unchanged).
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = srv.stats();
        ensure!(stats.requests == (C * ROUNDS) as u64, "the server counted {} requests, expected {}", stats.requests, C * ROUNDS);
        let bound = (C as u64 * 5).div_ceil(4);
        ensure!(stats.connections_accepted <= bound, "{} connections for {ROUNDS} rounds at concurrency {C} (at most {bound} allowed): connections are not reused", stats.connections_accepted);
        if let Some(n) = d.connections_opened() {
            ensure!(n == stats.connections_accepted, "the driver reports {n} connections opened, the server accepted {}", stats.connections_accepted);
        }
        Ok(())
    }
}

check_fn! {
    /// Dropping an in-flight `execute` future abandons the request and
    /// closes its connection: the server sees it closed within 2 s.
    dropped_future_frees_connection(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        {
            let url = srv.url("/x?fault=never");
            let fut = d.send(url.as_str());
            tokio::select! {
                res = fut => return Err(Failure::new(format!("a server that never answers answered: {}", describe(&res)))),
                arrived = wait_until(PROMPT, || srv.stats().requests == 1) => {
                    ensure!(arrived, "the request did not reach the server within 5 s");
                }
            }
            // `fut` was dropped at the end of `select!`.
        }
        ensure!(srv.wait_connections_closed(CLOSE_NOTICED).await, "2 s after the future was dropped its connection is still open (server stats {:?})", srv.stats());
        // The driver still works afterwards.
        let r = expect_ok(d.send(srv.url("/after").as_str()).await, "a request after the drop")?;
        ensure!(r.status() == StatusCode::OK, "status {}", r.status());
        Ok(())
    }
}

check_fn! {
    /// `Response::elapsed` measures the exchange: at least the server's
    /// 100 ms delay, and more than zero for an instant answer.
    elapsed_reported(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let r = expect_ok(d.send(srv.url("/x?delay_ms=100").as_str()).await, "delayed GET")?;
        ensure!(r.elapsed() >= Duration::from_millis(100), "elapsed {:?} for a response delayed by 100 ms", r.elapsed());
        let r = expect_ok(d.send(srv.url("/x").as_str()).await, "GET")?;
        ensure!(r.elapsed() > Duration::ZERO, "elapsed is zero");
        Ok(())
    }
}

check_fn! {
    /// With `stream_response`, the response body is a stream that yields
    /// exactly the bytes a buffered read would (300 000 of them).
    streaming_response(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let r = expect_ok(d.send(Request::get(srv.url("/x?body_size=300000")).stream_response(true)).await, "streamed GET")?;
        ensure!(r.is_streaming(), "stream_response(true) returned a buffered body");
        ensure!(r.status() == StatusCode::OK, "status {}", r.status());
        let body = r.collect().await.map_err(|e| Failure::new(format!("reading the stream failed: {}", describe_err(&e))))?;
        same_body(&body, &pattern(300_000), "streamed body")
    }
}

check_fn! {
    /// A reset in the middle of a streamed body surfaces from the stream as
    /// `ResetMidBody`, after the head was returned as `Ok`.
    streaming_response_reset_mid_body(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default())?;
        let res = d.send(Request::get(srv.url("/x?fault=reset_mid_body&body_size=200000")).stream_response(true)).await;
        let r = expect_ok(res, "streamed GET whose body is cut")?;
        match r.collect().await {
            Err(Error::ResetMidBody { .. }) => Ok(()),
            Err(e) => Err(Failure::new(format!("the stream failed with {}, expected ResetMidBody", describe_err(&e)))),
            Ok(b) => Err(Failure::new(format!("a cut stream yielded {} bytes and no error", b.len()))),
        }
    }
}

check_fn! {
    /// The body limit applies to buffered bodies only: a 50 000-byte body
    /// requested as a stream under a 1 000-byte limit streams in full (a
    /// caller who streams bounds memory itself).
    streaming_response_not_limited(make) {
        let srv = server().await?;
        let d = driver(make, ConformanceConfig::default().with_max_body_bytes(1000))?;
        let r = expect_ok(d.send(Request::get(srv.url("/x?body_size=50000")).stream_response(true)).await, "streamed GET over the limit")?;
        let body = r.collect().await.map_err(|e| Failure::new(format!("reading the stream failed: {}", describe_err(&e))))?;
        same_body(&body, &pattern(50_000), "streamed body over the buffered limit")
    }
}

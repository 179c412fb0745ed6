//! Behaviour specific to this driver, against real loopback servers:
//! redirects, user agent, curl's hidden re-send, streaming request bodies,
//! timeouts across redirect hops, and running without tokio.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Capture, head_value};
use http::{Method, StatusCode, Version};
use httpclient_core::{BodyStream, Driver, DriverExt, Error, Request, RequestBody, TimeoutPhase};
use httpclient_driver_isahc::{DEFAULT_USER_AGENT, IsahcDriver, RedirectPolicy, TooManyRedirects};
use httpclient_testserver::TestServer;

fn header(r: &httpclient_core::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_reports_status_version_headers_url_and_elapsed() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    let url = srv.url("/x?status=201&body_size=26&header=X-A:1");
    let r = d.send(url.as_str()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.bytes().as_ref(), b"abcdefghijklmnopqrstuvwxyz");
    assert_eq!(header(&r, "x-a"), "1");
    assert_eq!(r.url().unwrap().to_string(), url);
    assert!(r.elapsed() > Duration::ZERO);
    assert_eq!(srv.stats().requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_agent_default_override_and_per_request() {
    let cap = Capture::start(|_, _| (200, String::new())).await;
    IsahcDriver::new()
        .unwrap()
        .send(cap.url("/a").as_str())
        .await
        .unwrap();
    IsahcDriver::builder()
        .user_agent("crawler/2")
        .build()
        .unwrap()
        .send(cap.url("/b").as_str())
        .await
        .unwrap();
    IsahcDriver::builder()
        .user_agent("crawler/2")
        .build()
        .unwrap()
        .send(Request::get(cap.url("/c")).header("user-agent", "mine/1"))
        .await
        .unwrap();
    let agents: Vec<_> = cap
        .heads()
        .iter()
        .map(|h| head_value(h, "user-agent").unwrap_or_default())
        .collect();
    assert_eq!(agents, [DEFAULT_USER_AGENT, "crawler/2", "mine/1"]);
    // No compression negotiated: bodies are bytes as sent, like reqwest's.
    assert!(
        cap.heads()
            .iter()
            .all(|h| head_value(h, "accept-encoding").is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn see_other_turns_a_post_into_a_bodiless_get() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    for code in [301, 302, 303] {
        let req = Request::post(srv.url(&format!("/redirect?to=/echo&code={code}")))
            .header("content-type", "text/plain")
            .body("payload");
        let r = d.send(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{code}");
        assert_eq!(header(&r, "x-echo-method"), "GET", "{code}");
        assert_eq!(header(&r, "x-echo-body-len"), "0", "{code}");
        assert_eq!(r.url().unwrap().path(), "/echo");
    }
    // HEAD stays HEAD.
    let r = d
        .send(Request::head(
            srv.url("/redirect?to=/x%3Fbody_size%3D7&code=302"),
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_and_permanent_redirects_keep_method_and_body() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    for code in [307, 308] {
        let req =
            Request::post(srv.url(&format!("/redirect?to=/echo&code={code}"))).body("payload");
        let r = d.send(req).await.unwrap();
        assert_eq!(header(&r, "x-echo-method"), "POST", "{code}");
        assert_eq!(r.bytes().as_ref(), b"payload", "{code}");
    }
    assert_eq!(srv.stats().requests, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_body_ends_the_chain_at_a_307() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    let stream: BodyStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from("once"))]));
    let req = Request::post(srv.url("/redirect?to=/echo&code=307"))
        .body(RequestBody::from_stream(stream));
    let r = d.send(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&r, "location"), "/echo");
    assert_eq!(srv.stats().requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_policies_none_and_limit_zero() {
    let srv = TestServer::start().await.unwrap();
    let url = srv.url("/redirect?to=/final&code=302");
    let none = IsahcDriver::builder()
        .redirect(RedirectPolicy::None)
        .build()
        .unwrap();
    let r = none.send(url.as_str()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.url().unwrap().to_string(), url);

    let zero = IsahcDriver::builder()
        .redirect(RedirectPolicy::Limit(0))
        .build()
        .unwrap();
    let err = zero.send(url.as_str()).await.unwrap_err();
    let Error::Driver { source } = &err else {
        panic!("{err:?}")
    };
    let too_many = source
        .downcast_ref::<TooManyRedirects>()
        .expect("TooManyRedirects source");
    assert_eq!(too_many.limit, 0);
    assert_eq!(too_many.location.path(), "/final");
    assert!(!err.is_retryable());
    assert_eq!(srv.stats().requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_dropped_when_the_origin_changes() {
    // `/same` redirects within the origin, `/away` to another port.
    let other = Capture::start(|_, _| (200, String::new())).await;
    let other_url = other.url("/landed");
    let cap = Capture::start(|path, port| match path {
        "/same" => (302, format!("location: http://127.0.0.1:{port}/kept\r\n")),
        p if p.starts_with("/away") => {
            let to = p.split_once("to=").map(|(_, t)| t).unwrap_or("/");
            (
                302,
                format!(
                    "location: {}\r\n",
                    to.replace("%3A", ":").replace("%2F", "/")
                ),
            )
        }
        _ => (200, String::new()),
    })
    .await;
    let d = IsahcDriver::new().unwrap();
    let send = |url: String| {
        Request::get(url)
            .header("authorization", "Bearer secret")
            .header("cookie", "session=1")
            .header("x-keep", "yes")
    };
    d.send(send(cap.url("/same"))).await.unwrap();
    let r = d
        .send(send(
            cap.url(&format!("/away?to={}", percent_encode(&other_url))),
        ))
        .await
        .unwrap();
    assert_eq!(r.url().unwrap().to_string(), other_url);

    let here = cap.heads();
    assert_eq!(here.len(), 3, "{here:?}");
    assert_eq!(
        head_value(&here[1], "authorization").as_deref(),
        Some("Bearer secret")
    );
    let there = other.heads();
    assert_eq!(there.len(), 1);
    assert_eq!(head_value(&there[0], "authorization"), None);
    assert_eq!(head_value(&there[0], "cookie"), None);
    assert_eq!(head_value(&there[0], "x-keep").as_deref(), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_timeout_spans_every_redirect_hop() {
    // Three hops of 300 ms each: each hop alone is well inside 700 ms, the
    // chain is not. A per-hop timeout would let it through.
    let srv = TestServer::start().await.unwrap();
    let last = "/final?delay_ms=300".to_string();
    let hop2 = format!("/redirect?delay_ms=300&to={}", percent_encode(&last));
    let hop1 = format!("/redirect?delay_ms=300&to={}", percent_encode(&hop2));
    let limit = Duration::from_millis(700);
    let started = Instant::now();
    let err = IsahcDriver::new()
        .unwrap()
        .send(Request::get(srv.url(&hop1)).timeout(limit))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { phase: TimeoutPhase::Request, after: Some(a) } if a == limit),
        "{err:?}"
    );
    assert!(took >= limit, "fired after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Warm one keep-alive connection, then send `req` to a URL whose server
/// reads the request and closes without answering. Returns the error and
/// how many requests the server saw for that one attempt.
async fn on_a_reused_connection_closed_before_the_response(
    make: impl FnOnce(&TestServer) -> Request,
) -> (Error, u64) {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    d.send(srv.url("/warm").as_str()).await.unwrap();
    assert_eq!(srv.stats().connections_accepted, 1);
    let err = d.execute(make(&srv)).await.unwrap_err();
    (err, srv.stats().requests - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_never_resends_a_request_that_is_not_safe_to_retry() {
    let (err, seen) = on_a_reused_connection_closed_before_the_response(|srv| {
        Request::post(srv.url("/x?fault=close_before"))
            .body("charge the card")
            .build()
            .unwrap()
    })
    .await;
    assert!(matches!(err, Error::ResetBeforeResponse { .. }), "{err:?}");
    assert!(err.may_have_been_sent());
    assert_eq!(seen, 1, "a POST must reach the server once per attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_resends_retry_safe_requests_once_on_a_stale_connection() {
    // Documented limitation: for a request that may be repeated (and for a
    // bodiless one, which curl needs no rewind for), libcurl re-sends once on
    // a fresh connection when a reused one closed before any response byte.
    // If this starts failing, curl changed: update the crate docs.
    for (what, make) in [
        (
            "GET",
            (|srv: &TestServer| {
                Request::get(srv.url("/x?fault=close_before"))
                    .build()
                    .unwrap()
            }) as fn(&TestServer) -> Request,
        ),
        ("PUT with a body", |srv| {
            Request::put(srv.url("/x?fault=close_before"))
                .body("v")
                .build()
                .unwrap()
        }),
        ("empty POST", |srv| {
            Request::post(srv.url("/x?fault=close_before"))
                .build()
                .unwrap()
        }),
    ] {
        let (err, seen) = on_a_reused_connection_closed_before_the_response(make).await;
        assert!(
            matches!(err, Error::ResetBeforeResponse { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(seen, 2, "{what}: curl's stale-connection re-send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_body_stream_is_reported_with_its_error() {
    #[derive(Debug)]
    struct DiskOnFire;
    impl std::fmt::Display for DiskOnFire {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("disk on fire")
        }
    }
    impl std::error::Error for DiskOnFire {}

    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    let stream: BodyStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from(vec![b'x'; 10_000])),
        Err(Box::new(DiskOnFire) as httpclient_core::BoxError),
    ]));
    let req = Request::post(srv.url("/echo")).body(RequestBody::from_stream(stream));
    let err = d.send(req).await.unwrap_err();
    assert!(matches!(err, Error::Driver { .. }), "{err:?}");
    let found = httpclient_core::source_chain(&err).any(|e| e.to_string().contains("disk on fire"));
    assert!(found, "the stream's own error is in the chain: {err:?}");
    // The driver still works.
    assert!(
        d.send(srv.url("/ok").as_str())
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumed_streaming_body_is_an_invalid_request() {
    let d = IsahcDriver::new().unwrap();
    let stream: BodyStream = Box::pin(futures::stream::iter(Vec::<Result<Bytes, _>>::new()));
    let req = Request::post("http://127.0.0.1:9/")
        .body(RequestBody::from_stream(stream))
        .build()
        .unwrap();
    assert!(req.body().take_stream().is_some());
    let err = d.execute(req).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
    assert!(!err.may_have_been_sent());
}

#[test]
fn runs_without_an_async_runtime_of_its_own() {
    // isahc drives transfers on its agent thread, so a bare executor works.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start()).unwrap();
    let d = IsahcDriver::new().unwrap();
    let r = futures::executor::block_on(
        d.send(Request::builder(Method::PUT, srv.url("/echo")).body("no tokio here")),
    )
    .unwrap();
    assert_eq!(r.bytes().as_ref(), b"no tokio here");
    rt.block_on(srv.shutdown());
}

//! ReqwestDriver's own behaviour beyond the conformance suite: builder
//! validation, wrapping a user's client, connection counting, the body
//! limit on bodies without a `Content-Length`, defaults on the wire.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use httpclient_core::{
    BodyStream, ConfigError, Driver, DriverExt, Error, Request, RequestBody, TimeoutPhase,
};
use httpclient_driver_reqwest::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, RedirectPolicy, ReqwestDriver,
    reqwest,
};
use httpclient_testserver::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn config_field(result: Result<ReqwestDriver, Error>) -> &'static str {
    match result {
        Err(Error::Config(ConfigError { field, .. })) => field,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn builder_rejects_values_that_cannot_work() {
    assert_eq!(
        config_field(ReqwestDriver::builder().max_body_bytes(0).build()),
        "max_body_bytes"
    );
    assert_eq!(
        config_field(ReqwestDriver::builder().timeout(Duration::ZERO).build()),
        "timeout"
    );
    assert_eq!(
        config_field(
            ReqwestDriver::builder()
                .connect_timeout(Duration::ZERO)
                .build()
        ),
        "connect_timeout"
    );
    assert_eq!(
        config_field(ReqwestDriver::builder().user_agent("bad\nagent").build()),
        "user_agent"
    );
    let err = ReqwestDriver::builder()
        .max_body_bytes(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no_body_limit"), "{err}");
    assert!(!err.may_have_been_sent());
}

#[test]
fn defaults_are_the_documented_ones() {
    let d = ReqwestDriver::new().expect("default driver");
    assert_eq!(d.default_timeout(), Some(DEFAULT_TIMEOUT));
    assert_eq!(d.max_body_bytes(), Some(DEFAULT_MAX_BODY_BYTES));
    assert_eq!(d.connections_opened(), None, "counting is opt-in");
    let counted = ReqwestDriver::builder()
        .count_connections(true)
        .build()
        .unwrap();
    assert_eq!(counted.connections_opened(), Some(0));
    let unlimited = ReqwestDriver::builder().no_body_limit().build().unwrap();
    assert_eq!(unlimited.max_body_bytes(), None);
    let dbg = format!("{counted:?}");
    assert!(dbg.contains("connections_opened: Some(0)"), "{dbg}");
    let dbg = format!("{d:?}");
    assert!(dbg.contains("connections_opened: None"), "{dbg}");
}

#[test]
fn build_with_client_refuses_settings_it_cannot_apply() {
    let client = || reqwest::Client::new();
    for (builder, field) in [
        (
            ReqwestDriver::builder().connect_timeout(Duration::from_secs(1)),
            "connect_timeout",
        ),
        (
            ReqwestDriver::builder().max_idle_per_host(4),
            "max_idle_per_host",
        ),
        (ReqwestDriver::builder().user_agent("x"), "user_agent"),
        (
            ReqwestDriver::builder().redirect(RedirectPolicy::None),
            "redirect",
        ),
    ] {
        assert_eq!(config_field(builder.build_with_client(client())), field);
    }
    assert_eq!(
        config_field(
            ReqwestDriver::builder()
                .max_body_bytes(0)
                .build_with_client(client())
        ),
        "max_body_bytes"
    );
    let d = ReqwestDriver::builder()
        .max_body_bytes(10)
        .build_with_client(client())
        .unwrap();
    assert_eq!(d.max_body_bytes(), Some(10));
    assert_eq!(d.default_timeout(), None);
    assert_eq!(d.connections_opened(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_client_uses_the_clients_settings_and_cannot_count() {
    let srv = TestServer::start().await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .retry(reqwest::retry::never())
        .build()
        .unwrap();
    let d = ReqwestDriver::from_client(client);
    assert_eq!(d.connections_opened(), None);
    assert_eq!(d.default_timeout(), None);
    assert_eq!(d.max_body_bytes(), Some(DEFAULT_MAX_BODY_BYTES));

    let r = d.send(srv.url("/x?body_size=3").as_str()).await.unwrap();
    assert_eq!(r.bytes().as_ref(), b"abc");

    // The client's own 300 ms total timeout applies to a request with none,
    // and is still classified.
    let err = d
        .send(srv.url("/x?delay_ms=5000").as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Request,
                after: None
            }
        ),
        "{err:?}"
    );
    // A request's own timeout replaces it.
    let r = d
        .send(Request::get(srv.url("/x?delay_ms=600")).timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_with_client_applies_timeout_and_limit() {
    let srv = TestServer::start().await.unwrap();
    let d = ReqwestDriver::builder()
        .timeout(Duration::from_millis(250))
        .max_body_bytes(100)
        .build_with_client(reqwest::Client::new())
        .unwrap();
    let err = d
        .send(srv.url("/x?delay_ms=5000").as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after: Some(t), .. } if t == Duration::from_millis(250)),
        "{err:?}"
    );
    let err = d
        .send(srv.url("/x?body_size=101").as_str())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BodyTooLarge { limit: 100 }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_counted_exactly() {
    let srv = TestServer::start().await.unwrap();
    let d = ReqwestDriver::builder()
        .count_connections(true)
        .build()
        .unwrap();
    for _ in 0..5 {
        d.send(srv.url("/x").as_str()).await.unwrap();
    }
    // Sequential requests share one keep-alive connection.
    assert_eq!(d.connections_opened(), Some(1));
    assert_eq!(srv.stats().connections_accepted, 1);

    // A clone shares the pool and the counter.
    let clone = d.clone();
    clone.send(srv.url("/y").as_str()).await.unwrap();
    assert_eq!(d.connections_opened(), Some(1));

    // Failed connections are not counted.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = d
        .send(format!("http://127.0.0.1:{port}/").as_str())
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(d.connections_opened(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_is_off_by_default_and_can_be_turned_off() {
    let srv = TestServer::start().await.unwrap();
    for d in [
        ReqwestDriver::new().unwrap(),
        ReqwestDriver::builder()
            .count_connections(false)
            .build()
            .unwrap(),
    ] {
        assert_eq!(d.connections_opened(), None);
        let r = d.send(srv.url("/x").as_str()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(d.connections_opened(), None);
    }
    assert_eq!(
        config_field(
            ReqwestDriver::builder()
                .count_connections(true)
                .build_with_client(reqwest::Client::new())
        ),
        "count_connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_idle_pool_means_one_connection_per_request() {
    let srv = TestServer::start().await.unwrap();
    let d = ReqwestDriver::builder()
        .max_idle_per_host(0)
        .count_connections(true)
        .build()
        .unwrap();
    for _ in 0..3 {
        d.send(srv.url("/x").as_str()).await.unwrap();
    }
    assert_eq!(d.connections_opened(), Some(3));
    assert!(
        wait_for(|| srv.stats().connections_accepted == 3).await,
        "{:?}",
        srv.stats()
    );
}

async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// A one-connection server that answers the first request with `reply` and
/// hands over the request head it read.
async fn raw_server(reply: Vec<u8>) -> (String, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
        let Ok(Ok((mut sock, _))) = accepted else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
        let _ = sock.write_all(&reply).await;
        let _ = sock.shutdown().await;
    });
    (url, rx)
}

fn chunked_reply(chunks: usize, size: usize) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..chunks {
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'z', size));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_holds_without_content_length() {
    // 10 chunks of 1000 bytes, no Content-Length: only counting the bytes
    // as they arrive can catch it.
    let (url, _head) = raw_server(chunked_reply(10, 1000)).await;
    let d = ReqwestDriver::builder()
        .max_body_bytes(5000)
        .build()
        .unwrap();
    let err = d.send(format!("{url}/big").as_str()).await.unwrap_err();
    assert!(
        matches!(err, Error::BodyTooLarge { limit: 5000 }),
        "{err:?}"
    );

    let (url, _head) = raw_server(chunked_reply(10, 1000)).await;
    let d = ReqwestDriver::builder()
        .max_body_bytes(10_000)
        .build()
        .unwrap();
    let r = d.send(format!("{url}/exact").as_str()).await.unwrap();
    assert_eq!(r.bytes().len(), 10_000);
    assert!(r.bytes().iter().all(|&b| b == b'z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_agent_default_custom_and_per_request() {
    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec();

    let (url, head) = raw_server(ok.clone()).await;
    ReqwestDriver::new()
        .unwrap()
        .send(url.as_str())
        .await
        .unwrap();
    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "user-agent: {}",
            DEFAULT_USER_AGENT.to_ascii_lowercase()
        )),
        "{head}"
    );

    let (url, head) = raw_server(ok.clone()).await;
    let d = ReqwestDriver::builder()
        .user_agent("crawler/2.0")
        .build()
        .unwrap();
    d.send(url.as_str()).await.unwrap();
    assert!(head.await.unwrap().contains("user-agent: crawler/2.0"));

    let (url, head) = raw_server(ok).await;
    d.send(Request::get(&url).header("user-agent", "mine/1"))
        .await
        .unwrap();
    let head = head.await.unwrap();
    assert!(head.contains("user-agent: mine/1"), "{head}");
    assert!(!head.contains("crawler/2.0"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_policies() {
    let srv = TestServer::start().await.unwrap();
    let once = srv.url("/redirect?to=/final&code=302");

    let none = ReqwestDriver::builder()
        .redirect(RedirectPolicy::None)
        .build()
        .unwrap();
    let r = none.send(once.as_str()).await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/final");

    let one = ReqwestDriver::builder()
        .redirect(RedirectPolicy::Limit(1))
        .build()
        .unwrap();
    let r = one.send(once.as_str()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().unwrap().path(), "/final");
    let twice = srv.url("/redirect?to=/redirect%3Fto%3D/final");
    let err = one.send(twice.as_str()).await.unwrap_err();
    assert!(matches!(err, Error::Driver { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_report_the_limit_that_ran_out() {
    let srv = TestServer::start().await.unwrap();
    let d = ReqwestDriver::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = d
        .send(srv.url("/x?delay_ms=5000").as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { phase: TimeoutPhase::Request, after: Some(t) } if t == Duration::from_millis(200)),
        "{err:?}"
    );
    let err = d
        .send(Request::get(srv.url("/x?delay_ms=5000")).timeout(Duration::from_millis(150)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after: Some(t), .. } if t == Duration::from_millis(150)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_can_be_sent_once() {
    let srv = TestServer::start().await.unwrap();
    let d = ReqwestDriver::new().unwrap();
    let body: BodyStream = Box::pin(stream::iter(vec![Ok(Bytes::from("once"))]));
    let req = Request::post(srv.url("/echo"))
        .body(RequestBody::from_stream(body))
        .build()
        .unwrap();
    assert!(req.body().take_stream().is_some()); // someone took it already
    let err = d.execute(req).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
    assert_eq!(srv.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_body_stream_is_an_error_not_a_hang() {
    let srv = TestServer::start().await.unwrap();
    let d = ReqwestDriver::new().unwrap();
    let body: BodyStream = Box::pin(stream::iter(vec![
        Ok(Bytes::from("part")),
        Err("the producer failed".into()),
    ]));
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        d.send(Request::post(srv.url("/echo")).body(RequestBody::from_stream(body))),
    )
    .await
    .expect("no hang");
    let err = res.unwrap_err();
    assert!(err.may_have_been_sent(), "{err:?}");
}

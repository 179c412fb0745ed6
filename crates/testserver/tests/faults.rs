//! Every fault kind is observable from a raw client; fault selection is
//! seeded and roughly matches the requested percentages.

mod common;

use std::io;
use std::time::{Duration, Instant};

use common::{Client, get, pattern};
use httpclient_testserver::{ServerConfig, TestServer};

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

#[tokio::test]
async fn reset_before_after_reading_the_request() {
    let s = TestServer::start_with(ServerConfig::default().record_arrivals(true))
        .await
        .unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(
        b"POST /upload?fault=reset_before HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    let (bytes, err) = c.read_all().await;
    assert!(bytes.is_empty());
    assert!(err.as_ref().is_some_and(is_reset), "{err:?}");
    let st = s.stats();
    assert_eq!(st.requests, 1, "counted before the fault");
    assert_eq!(st.faults_injected, 1);
    assert_eq!(s.arrivals()[0].method, "POST");
    assert!(s.wait_connections_closed(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn reset_mid_body_sends_half_then_rst() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /x?fault=reset_mid_body&body_size=2000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (bytes, err) = c.read_all().await;
    assert!(err.as_ref().is_some_and(is_reset), "{err:?}");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 2000\r\n"));
    let body = &bytes[bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(body, &pattern(1000)[..]);

    // Default body size for this fault is 1024.
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /x?fault=reset_mid_body HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (bytes, err) = c.read_all().await;
    assert!(err.as_ref().is_some_and(is_reset), "{err:?}");
    assert!(String::from_utf8_lossy(&bytes).contains("content-length: 1024\r\n"));
}

#[tokio::test]
async fn close_before_is_a_clean_eof() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /x?fault=close_before HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (bytes, err) = c.read_all().await;
    assert!(bytes.is_empty());
    assert!(err.is_none(), "{err:?}");
}

#[tokio::test]
async fn garbage_is_not_http() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /x?fault=garbage HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (bytes, _) = c.read_all().await;
    assert!(bytes.starts_with(b"\x00\x01garbage"), "{bytes:?}");
    assert!(!bytes.starts_with(b"HTTP/"));
}

#[tokio::test]
async fn status503_adds_retry_after() {
    let s = TestServer::start().await.unwrap();
    let r = get(s.addr(), "/x?fault=status503").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = get(s.addr(), "/x?fault=status503&retry_after=9").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("9"));
    assert_eq!(s.stats().faults_injected, 2);
}

#[tokio::test]
async fn slow_delays_then_responds() {
    let s = TestServer::start().await.unwrap();
    let t = Instant::now();
    let r = get(s.addr(), "/x?fault=slow&slow_ms=120").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn drip_sends_body_byte_by_byte() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    let t = Instant::now();
    c.send(b"GET /x?fault=drip&drip_ms=20&body_size=5 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response(false).await.unwrap();
    assert_eq!(r.body, b"abcde");
    assert!(t.elapsed() >= Duration::from_millis(100));
    // The connection is still usable afterwards.
    assert_eq!(c.get("/y").await.unwrap().body, b"ok");
    assert_eq!(s.stats().connections_accepted, 1);
}

#[tokio::test]
async fn never_responds_but_notices_client_close() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /x?fault=never HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), c.read_all()).await;
    assert!(waited.is_err(), "no response, no close");
    assert_eq!(s.stats().connections_open, 1);
    drop(c);
    assert!(s.wait_connections_closed(Duration::from_secs(2)).await);
    let st = s.stats();
    assert_eq!(st.connections_closed, 1);
    assert_eq!(st.requests, 1);
}

#[tokio::test]
async fn delay_and_slow_notice_client_close() {
    for path in ["/x?delay_ms=30000", "/x?fault=slow&slow_ms=30000"] {
        let s = TestServer::start().await.unwrap();
        let mut c = Client::connect(s.addr()).await.unwrap();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), c.read_all()).await;
        assert!(waited.is_err(), "{path}: still sleeping");
        assert_eq!(s.stats().connections_open, 1, "{path}");
        drop(c);
        assert!(
            s.wait_connections_closed(Duration::from_secs(2)).await,
            "{path}: closed long before the 30 s sleep ends"
        );
        assert_eq!(s.stats().connections_closed, 1, "{path}");
    }
}

#[tokio::test]
async fn a_request_pipelined_during_a_delay_is_still_answered() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    assert_eq!(c.get("/x?delay_ms=200").await.unwrap().status, 200);
    c.send(b"GET /a?delay_ms=200 HTTP/1.1\r\nHost: t\r\n\r\nGET /b?status=201 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let all = tokio::time::timeout(Duration::from_secs(5), c.read_all())
        .await
        .expect("both answered")
        .0;
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 201"), "{text}");
}

/// Sends `n` requests for `path` on one keep-alive connection; returns the statuses.
async fn statuses(s: &TestServer, path: &str, n: usize) -> Vec<u16> {
    let mut c = Client::connect(s.addr()).await.unwrap();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(c.get(path).await.unwrap().status);
    }
    out
}

#[tokio::test]
async fn fault_pct_matches_and_is_reproducible() {
    let path = "/x?fault=status503&fault_pct=30";
    let s = TestServer::start_with(ServerConfig::default().seed(7))
        .await
        .unwrap();
    let first = statuses(&s, path, 1000).await;
    let n503 = first.iter().filter(|&&st| st == 503).count();
    assert!((230..=370).contains(&n503), "{n503}");
    assert_eq!(s.stats().faults_injected, n503 as u64);
    assert_eq!(s.stats().requests, 1000);

    // Same seed after a reset: the very same sequence.
    s.reset_stats();
    assert_eq!(statuses(&s, path, 1000).await, first);
    // Another server with the same seed: same sequence.
    let s2 = TestServer::start_with(ServerConfig::default().seed(7))
        .await
        .unwrap();
    assert_eq!(statuses(&s2, path, 1000).await, first);
    // Another seed: a different sequence.
    let s3 = TestServer::start_with(ServerConfig::default().seed(8))
        .await
        .unwrap();
    assert_ne!(statuses(&s3, path, 1000).await, first);
}

#[tokio::test]
async fn faults_mix() {
    let s = TestServer::start().await.unwrap();
    let path = "/x?faults=status503:20,close_before:10";
    let (mut ok, mut unavailable, mut closed) = (0, 0, 0);
    let mut c = Client::connect(s.addr()).await.unwrap();
    for _ in 0..1000 {
        match c.get(path).await {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) if r.status == 503 => unavailable += 1,
            Ok(r) => panic!("unexpected {}", r.status),
            Err(_) => {
                closed += 1;
                c = Client::connect(s.addr()).await.unwrap();
            }
        }
    }
    assert!((150..=250).contains(&unavailable), "{unavailable}");
    assert!((60..=140).contains(&closed), "{closed}");
    assert_eq!(ok + unavailable + closed, 1000);
    let st = s.stats();
    assert_eq!(st.faults_injected, (unavailable + closed) as u64);
    assert_eq!(st.connections_accepted, closed as u64 + 1);
    assert_eq!(st.requests, 1000);
}

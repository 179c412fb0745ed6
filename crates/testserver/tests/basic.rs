//! Normal (non-fault) behaviour of the in-process server.

mod common;

use std::time::{Duration, Instant};

use common::{Client, get, pattern};
use httpclient_testserver::{ServerConfig, ServerStats, TestServer};

#[tokio::test]
async fn default_response_and_urls() {
    let s = TestServer::start().await.unwrap();
    assert_eq!(
        s.base_url(),
        format!("http://127.0.0.1:{}", s.addr().port())
    );
    assert_eq!(s.url("/a?b"), format!("{}/a?b", s.base_url()));
    let r = get(s.addr(), "/anything").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");
    assert_eq!(r.header("content-length"), Some("2"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn status_headers_body_size_content_type() {
    let s = TestServer::start().await.unwrap();
    let r = get(
        s.addr(),
        "/x?status=503&retry_after=7&header=X-One:1&header=X-Two%3A%20two%20words&content_type=application%2Fjson&body_size=100",
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-one"), Some("1"));
    assert_eq!(r.header("x-two"), Some("two words"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, pattern(100));

    let big = get(s.addr(), "/big?body_size=1000000").await;
    assert_eq!(big.body, pattern(1_000_000));

    let empty = get(s.addr(), "/e?body_size=0&status=404").await;
    assert_eq!(empty.status, 404);
    assert!(empty.body.is_empty());

    let nc = get(s.addr(), "/nc?status=204").await;
    assert_eq!(nc.status, 204);
    assert_eq!(nc.header("content-length"), None);
}

#[tokio::test]
async fn delay_ms_waits() {
    let s = TestServer::start().await.unwrap();
    let t = Instant::now();
    let r = get(s.addr(), "/d?delay_ms=150").await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn head_has_no_body() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"HEAD /h?body_size=50 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response(true).await.unwrap();
    assert_eq!(r.header("content-length"), Some("50"));
    // The connection is still in sync: the next response parses.
    let r = c.get("/after").await.unwrap();
    assert_eq!(r.body, b"ok");
}

#[tokio::test]
async fn echo_round_trip_content_length_and_chunked() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nX-Trace: abc\r\nx-other: 1\r\nContent-Length: 11\r\n\r\nhello world")
        .await
        .unwrap();
    let r = c.read_response(false).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("x-echo-method"), Some("POST"));
    assert_eq!(r.header("x-echo-body-len"), Some("11"));
    assert_eq!(r.header("x-echo-x-trace"), Some("abc"));
    assert_eq!(r.header("x-echo-x-other"), Some("1"));

    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response(false).await.unwrap();
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("x-echo-method"), Some("PUT"));

    // A large body, sent in pieces.
    let body = pattern(300_000);
    let head = format!(
        "POST /echo?status=201 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes()).await.unwrap();
    c.send(&body).await.unwrap();
    let r = c.read_response(false).await.unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.body, body);
    assert_eq!(s.stats().requests, 3);
}

#[tokio::test]
async fn redirect() {
    let s = TestServer::start().await.unwrap();
    let r = get(s.addr(), "/redirect?to=%2Ftarget%3Fa%3D1&code=307").await;
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/target?a=1"));
    let r = get(s.addr(), "/redirect?to=/x").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/x"));
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    for i in 0..10 {
        let r = c.get(&format!("/k{i}")).await.unwrap();
        assert_eq!(r.status, 200);
    }
    let st = s.stats();
    assert_eq!(st.connections_accepted, 1);
    assert_eq!(st.connections_open, 1);
    assert_eq!(st.requests, 10);
    drop(c);
    assert!(s.wait_connections_closed(Duration::from_secs(2)).await);
    assert_eq!(s.stats().connections_closed, 1);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (bytes, err) = c.read_all().await;
    assert!(err.is_none());
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("connection: close"));
    assert!(text.ends_with("\r\n\r\nok"));
    // HTTP/1.0 closes by default.
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"GET /c HTTP/1.0\r\n\r\n").await.unwrap();
    let (bytes, err) = c.read_all().await;
    assert!(err.is_none());
    assert!(bytes.ends_with(b"ok"));
}

#[tokio::test]
async fn malformed_requests_get_400_and_close() {
    let s = TestServer::start().await.unwrap();
    for raw in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut c = Client::connect(s.addr()).await.unwrap();
        c.send(raw).await.unwrap();
        let (bytes, _) = c.read_all().await;
        assert!(
            bytes.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // Bad parameters: 400 but the connection stays usable.
    let mut c = Client::connect(s.addr()).await.unwrap();
    assert_eq!(c.get("/x?status=abc").await.unwrap().status, 400);
    assert_eq!(c.get("/x?fault=nope").await.unwrap().status, 400);
    assert_eq!(c.get("/x?header=NoColon").await.unwrap().status, 400);
    assert_eq!(c.get("/x").await.unwrap().status, 200);
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 67108865\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response(false).await.unwrap();
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn expect_continue() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response(true).await.unwrap();
    assert_eq!(r.status, 100);
    c.send(b"abc").await.unwrap();
    let r = c.read_response(false).await.unwrap();
    assert_eq!(r.body, b"abc");
}

#[tokio::test]
async fn arrivals_and_control_paths() {
    let s = TestServer::start_with(ServerConfig::default().record_arrivals(true))
        .await
        .unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.get("/one?a=1").await.unwrap();
    c.send(b"DELETE /two HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    c.read_response(false).await.unwrap();
    let a = s.arrivals();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].method, "GET");
    assert_eq!(a[0].path_and_query, "/one?a=1");
    assert_eq!(a[1].method, "DELETE");
    assert_eq!(a[1].connection_id, a[0].connection_id);
    assert!(a[1].at >= a[0].at);

    // Control requests on their own connection are invisible.
    let before = s.stats();
    let r = get(s.addr(), "/__stats").await;
    let reported = ServerStats::from_json(std::str::from_utf8(&r.body).unwrap()).unwrap();
    assert_eq!(reported, before);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.stats(), before);

    let r = get(s.addr(), "/__reset").await;
    assert_eq!(r.status, 200);
    assert!(s.arrivals().is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let st = s.stats();
    assert_eq!(st.requests, 0);
    assert_eq!(st.connections_accepted, 0);
    assert_eq!(st.connections_closed, 0);
    assert_eq!(st.connections_open, 1); // `c` is still open
    assert_eq!(st.bytes_received, 0);

    s.reset_stats();
    assert_eq!(s.stats().requests, 0);
}

#[tokio::test]
async fn bytes_received_counts_request_bytes() {
    let s = TestServer::start().await.unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    let req = b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody";
    c.send(req).await.unwrap();
    c.read_response(false).await.unwrap();
    assert_eq!(s.stats().bytes_received, req.len() as u64);
}

#[tokio::test]
async fn shutdown_and_drop_close_everything() {
    let s = TestServer::start().await.unwrap();
    let addr = s.addr();
    let mut c = Client::connect(addr).await.unwrap();
    c.get("/").await.unwrap();
    s.shutdown().await;
    let (_, _) = c.read_all().await; // EOF (or reset): the server closed it
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let s = TestServer::start().await.unwrap();
    let addr = s.addr();
    let mut c = Client::connect(addr).await.unwrap();
    c.get("/").await.unwrap();
    drop(s);
    tokio::time::timeout(Duration::from_secs(2), c.read_all())
        .await
        .expect("connection closed after drop");
}

#[tokio::test]
async fn max_lifetime_stops_the_server() {
    let s =
        TestServer::start_with(ServerConfig::default().max_lifetime(Duration::from_millis(200)))
            .await
            .unwrap();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.get("/").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), c.read_all())
        .await
        .expect("closed at end of lifetime");
    assert!(tokio::net::TcpStream::connect(s.addr()).await.is_err());
    assert!(s.wait_connections_closed(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn restart_on_same_port() {
    let s = TestServer::start().await.unwrap();
    let port = s.addr().port();
    let mut c = Client::connect(s.addr()).await.unwrap();
    c.get("/").await.unwrap();
    s.shutdown().await;
    drop(c);
    let s = TestServer::start_with(ServerConfig::default().port(port))
        .await
        .unwrap();
    assert_eq!(s.addr().port(), port);
    assert_eq!(get(s.addr(), "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_keep_alive_connections() {
    let s = TestServer::start().await.unwrap();
    let addr = s.addr();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await.unwrap();
            for _ in 0..50 {
                let r = c.get("/bench?body_size=64").await.unwrap();
                assert_eq!(r.body.len(), 64);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let st = s.stats();
    assert_eq!(st.requests, 64 * 50);
    assert_eq!(st.connections_accepted, 64);
    assert!(s.wait_connections_closed(Duration::from_secs(2)).await);
}

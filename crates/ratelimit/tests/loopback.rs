//! Real sockets: the executor paces what a real server receives. The
//! driver here is a deliberately tiny HTTP/1.1 client (one connection per
//! request) so the test needs no HTTP client stack; the timing assertions
//! are lower bounds the limiter guarantees (never early) plus generous
//! upper bounds on the whole run.

use std::time::Duration;

use httpclient_core::{Driver, DriverExt, Error, Request, Response, async_trait};
use httpclient_ratelimit::{KeyedRateLimitedExecutor, Quota, RateLimitedExecutor};
use httpclient_testserver::{ServerConfig, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TinyHttp;

#[async_trait]
impl Driver for TinyHttp {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        let origin = request.origin();
        let mut s = tokio::net::TcpStream::connect((origin.host(), origin.port()))
            .await
            .map_err(Error::driver)?;
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let head = format!(
            "{} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            request.method(),
            origin.host()
        );
        s.write_all(head.as_bytes()).await.map_err(Error::driver)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(Error::driver)?;
        let text = String::from_utf8_lossy(&buf);
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Error::invalid_request("bad status line"))?;
        Ok(Response::new(
            http::StatusCode::from_u16(status).map_err(Error::driver)?,
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sees_the_paced_rate() {
    let server = TestServer::start_with(ServerConfig::default().record_arrivals(true))
        .await
        .unwrap();
    let exec = std::sync::Arc::new(RateLimitedExecutor::new(
        TinyHttp,
        Quota::per_second(50).unwrap(),
    ));
    let url = server.url("/paced");
    let run = async {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let e = exec.clone();
                let u = url.clone();
                tokio::spawn(async move { e.send(u.as_str()).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().status(), 200);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("20 requests at 50/s finish well within 10 s");
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 20);
    let first = arrivals.iter().map(|a| a.at).min().unwrap();
    let last = arrivals.iter().map(|a| a.at).max().unwrap();
    // Releases are never early: 19 periods of 20 ms separate the first and
    // last release. The margin absorbs a slow first connection on a loaded
    // machine; without the limiter all 20 arrive within a few ms.
    assert!(
        last - first >= Duration::from_millis(280),
        "{:?}",
        last - first
    );
    let s = exec.stats();
    assert_eq!((s.executed, s.limiter.throttled), (20, 19));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_limits_pace_each_origin_separately() {
    let a = TestServer::start_with(ServerConfig::default().record_arrivals(true))
        .await
        .unwrap();
    let b = TestServer::start_with(ServerConfig::default().record_arrivals(true))
        .await
        .unwrap();
    let exec = std::sync::Arc::new(KeyedRateLimitedExecutor::new(
        TinyHttp,
        Quota::per_second(40).unwrap(),
    ));
    let run = async {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let e = exec.clone();
                let u = if i % 2 == 0 { a.url("/x") } else { b.url("/x") };
                tokio::spawn(async move { e.send(u.as_str()).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("bounded");
    for server in [&a, &b] {
        let arr = server.arrivals();
        assert_eq!(arr.len(), 10);
        let first = arr.iter().map(|x| x.at).min().unwrap();
        let last = arr.iter().map(|x| x.at).max().unwrap();
        assert!(
            last - first >= Duration::from_millis(150),
            "{:?}",
            last - first
        );
    }
    assert_eq!(exec.stats().keys, 2);
}

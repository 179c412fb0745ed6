//! What dropping work does to curl's connection.
//!
//! isahc notices a dropped future or body on curl's next callback for that
//! transfer. Once the response has started, bytes keep arriving, so the
//! connection is closed promptly; a server that sends nothing at all keeps
//! it until the attempt's timeout (the known gap in tests/conformance.rs).

use std::time::Duration;

use futures::StreamExt;
use httpclient_core::{Driver, Request, ResponseBody};
use httpclient_driver_isahc::IsahcDriver;
use httpclient_testserver::TestServer;

const CLOSE_NOTICED: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_execute_mid_body_closes_the_connection() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    let req = Request::get(srv.url("/x?fault=drip&body_size=1000&drip_ms=50"))
        .build()
        .unwrap();
    tokio::select! {
        res = d.execute(req) => panic!("a 50 s drip finished: {res:?}"),
        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    assert!(
        srv.wait_connections_closed(CLOSE_NOTICED).await,
        "still open: {:?}",
        srv.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_streamed_body_closes_the_connection() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    let req = Request::get(srv.url("/x?fault=drip&body_size=1000&drip_ms=50"))
        .stream_response(true)
        .build()
        .unwrap();
    let r = d.execute(req).await.unwrap();
    let ResponseBody::Stream(mut body) = r.into_body() else {
        panic!("asked for a stream")
    };
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    assert!(
        srv.wait_connections_closed(CLOSE_NOTICED).await,
        "still open: {:?}",
        srv.stats()
    );
    // The driver goes on working on a new connection.
    let r = d
        .execute(Request::get(srv.url("/ok")).build().unwrap())
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_head_the_timeout_releases_the_connection() {
    let srv = TestServer::start().await.unwrap();
    let d = IsahcDriver::new().unwrap();
    let req = Request::get(srv.url("/x?fault=never"))
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    tokio::select! {
        res = d.execute(req) => panic!("never answered, yet: {res:?}"),
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    assert_eq!(srv.stats().requests, 1);
    // Released by curl's own timer for the attempt (800 ms), not later.
    assert!(
        srv.wait_connections_closed(Duration::from_millis(800) + CLOSE_NOTICED)
            .await,
        "still open: {:?}",
        srv.stats()
    );
}

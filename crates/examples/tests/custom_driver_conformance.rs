//! The workspace's driver conformance suite, run on the `custom_driver`
//! example's `ApiKeyDriver` (over `ReqwestDriver`): one test per behaviour,
//! so a wrapper that retried on its own, turned a status into an error,
//! lost a timeout or broke cancellation would fail here. (The suite accepts
//! `connections_opened() == None`, so forwarding it is checked by the last
//! test below.)
//!
//! The key is scoped to `127.0.0.1`, the suite's loopback servers, so every
//! checked request really carries the extra headers.

use batchclient_examples::api_key::ApiKeyDriver;
use httpclient_conformance::ConformanceConfig;
use httpclient_driver_reqwest::ReqwestDriver;

httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
    let inner = ReqwestDriver::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .max_body_bytes(cfg.max_body_bytes)
        .build()?;
    ApiKeyDriver::new(inner, "conformance-key", ["127.0.0.1"])
});

/// Beyond the contract: the headers really reach the server, the tally
/// matches what was sent, and the connection count is forwarded. (Scoping
/// the key to its hosts is tested in `src/api_key.rs`.)
#[test]
fn headers_reach_the_server_and_the_tally_is_true() {
    use httpclient_core::{Driver, DriverExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = batchclient_examples::TestServer::start()
            .await
            .expect("server");
        let driver = ApiKeyDriver::new(
            ReqwestDriver::builder()
                .count_connections(true)
                .build()
                .expect("driver"),
            "k-1",
            ["127.0.0.1"],
        )
        .expect("api key driver");
        let resp = driver.send(server.url("/echo")).await.expect("echo");
        assert_eq!(resp.headers()["x-echo-x-api-key"], "k-1");
        let id = resp.headers()["x-echo-x-request-id"]
            .to_str()
            .expect("ascii");
        assert!(id.ends_with("-1"), "first request id: {id}");
        let resp = driver
            .send(server.url("/x?status=503"))
            .await
            .expect("a 503 is a response");
        assert_eq!(resp.status(), 503);
        let tally = driver.tally();
        assert_eq!((tally.requests, tally.keyed), (2, 2));
        assert_eq!(tally.responses.get(&503), Some(&1));
        let stats = server.stats();
        assert_eq!(stats.requests, 2, "no retries of its own");
        assert_eq!(
            driver.connections_opened(),
            Some(stats.connections_accepted),
            "connections_opened is forwarded from ReqwestDriver"
        );
        server.shutdown().await;
    });
}

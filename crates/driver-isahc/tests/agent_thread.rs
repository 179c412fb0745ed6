//! isahc runs each client's transfers on an agent thread
//! (`isahc-agent-N`). Dropping the driver must stop and join it; a streamed
//! body keeps the client (and its thread) alive until the body is dropped.
//!
//! One test in its own binary, so no other test's driver is counted.

#![cfg(target_os = "linux")]

use httpclient_core::{Driver, Request};
use httpclient_driver_isahc::IsahcDriver;
use httpclient_testserver::TestServer;

/// Threads of this process named `isahc-agent-*`.
fn agent_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("isahc-agent"))
        .count()
}

#[test]
fn dropping_the_driver_stops_its_agent_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let srv = rt.block_on(TestServer::start()).unwrap();
    assert_eq!(agent_threads(), 0);

    let d = IsahcDriver::new().unwrap();
    assert_eq!(agent_threads(), 1);
    let r = rt
        .block_on(d.execute(Request::get(srv.url("/x?body_size=100")).build().unwrap()))
        .unwrap();
    assert_eq!(r.bytes().len(), 100);
    drop(d);
    // Drop joins the thread: no waiting needed.
    assert_eq!(agent_threads(), 0, "agent thread left after drop");

    // A streamed body owns a handle to the client.
    let d = IsahcDriver::new().unwrap();
    let r = rt
        .block_on(
            d.execute(
                Request::get(srv.url("/x?body_size=100"))
                    .stream_response(true)
                    .build()
                    .unwrap(),
            ),
        )
        .unwrap();
    drop(d);
    assert_eq!(agent_threads(), 1, "the body keeps the agent alive");
    assert_eq!(rt.block_on(r.collect()).unwrap().len(), 100);
    assert_eq!(agent_threads(), 0, "agent thread left after the body");

    rt.block_on(srv.shutdown());
}

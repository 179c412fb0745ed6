//! The server as a child process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use httpclient_testserver::ChildServer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_httpclient-testserver"))
}

fn get(server: &ChildServer, path: &str) -> String {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn child_server_serves_and_reports_stats() {
    let server = ChildServer::spawn_from(bin(), &["--threads", "2", "--seed", "3"]).unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(server.url("/a"), format!("{}/a", server.base_url()));
    assert_eq!(server.stats().unwrap().requests, 0);
    for _ in 0..3 {
        let resp = get(&server, "/x?body_size=3");
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.ends_with("\r\n\r\nabc"));
    }
    let resp = get(&server, "/x?fault=status503");
    assert!(resp.starts_with("HTTP/1.1 503"));
    let st = server.stats().unwrap();
    assert_eq!(st.requests, 4);
    assert_eq!(
        st.connections_accepted, 4,
        "control connections are invisible"
    );
    assert_eq!(st.faults_injected, 1);
    server.reset_stats().unwrap();
    let st = server.stats().unwrap();
    assert_eq!(st.requests, 0);
    assert_eq!(st.connections_accepted, 0);
}

#[test]
fn spawn_finds_the_binary_next_to_the_test() {
    // Test binaries live in target/<profile>/deps; cargo built the server binary
    // in target/<profile> for this integration test.
    let server = ChildServer::spawn().unwrap();
    assert!(get(&server, "/").ends_with("ok"));
    let addr = server.addr();
    drop(server);
    assert!(TcpStream::connect(addr).is_err(), "child killed on drop");
}

#[test]
fn fixed_port() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = ChildServer::spawn_from(bin(), &["--port", &port.to_string()]).unwrap();
    assert_eq!(server.addr().port(), port);
    assert!(get(&server, "/").ends_with("ok"));
}

#[test]
fn bad_flags_fail_cleanly() {
    let err = ChildServer::spawn_from(bin(), &["--bogus"]).unwrap_err();
    assert!(err.to_string().contains("unexpected first line"), "{err}");
}

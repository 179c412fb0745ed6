//! [`ChildServer`]: the same server in a child process.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use crate::ServerStats;

/// Name of the server binary (with the platform's executable suffix).
fn bin_name() -> String {
    format!("httpclient-testserver{}", std::env::consts::EXE_SUFFIX)
}

/// The server running in a child process, so that its CPU time is not the
/// client's (used by the benchmarks).
///
/// The child is started with `--exit-on-stdin-eof` and a piped stdin, so it
/// also exits if this process dies without running `Drop`.
/// Dropping a `ChildServer` kills and reaps the child.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    _stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl ChildServer {
    /// Spawns the server binary with default flags.
    ///
    /// The binary is looked up, in order:
    /// 1. the path in the environment variable `HTTPCLIENT_TESTSERVER_BIN`;
    /// 2. next to the current executable, then in its parent directory (test
    ///    binaries live in `target/<profile>/deps`, binaries in `target/<profile>`);
    /// 3. as a last resort it is built with `cargo build --release --bin
    ///    httpclient-testserver` into a separate target directory
    ///    (`<target>/testserver-child`, or a temp dir) so that it cannot
    ///    deadlock on the build lock of the `cargo test` running us. The first
    ///    such build takes a while; later ones are no-ops.
    ///
    /// Note that `cargo test -p other-crate` does not build the binaries of
    /// dependencies: run `cargo build -p httpclient-testserver --release` first
    /// (or set `HTTPCLIENT_TESTSERVER_BIN`) to skip step 3.
    pub fn spawn() -> io::Result<ChildServer> {
        Self::spawn_with_args(&[])
    }

    /// Like [`ChildServer::spawn`], passing extra flags (`--port N`,
    /// `--threads N`, `--max-lifetime-secs N`, `--seed N`) to the binary.
    pub fn spawn_with_args(args: &[&str]) -> io::Result<ChildServer> {
        let bin = find_binary()?;
        Self::spawn_from(&bin, args)
    }

    /// Spawns the given server binary with `args` (no lookup).
    pub fn spawn_from(bin: &Path, args: &[&str]) -> io::Result<ChildServer> {
        let mut child = Command::new(bin)
            .args(args)
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {}: {e}", bin.display())))?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("child stdout not captured"));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let res = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(res);
            // Keep the pipe open (and drained) for the child's lifetime.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "test server did not report LISTENING within 30 s",
                ));
            }
        };
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "unexpected first line from test server: {line:?}"
            )));
        };
        Ok(ChildServer {
            child,
            _stdin: stdin,
            addr,
        })
    }

    /// The bound address (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url() + path_and_query`; the path must start with `/`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Fetches the counters with `GET /__stats` (invisible to the counters).
    pub fn stats(&self) -> io::Result<ServerStats> {
        let body = self.control_get("/__stats")?;
        ServerStats::from_json(&body)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad stats: {body}")))
    }

    /// Resets the counters with `GET /__reset`.
    pub fn reset_stats(&self) -> io::Result<()> {
        self.control_get("/__reset").map(|_| ())
    }

    fn control_get(&self, path: &str) -> io::Result<String> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let (head, body) = resp
            .split_once("\r\n\r\n")
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "truncated response"))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(io::Error::other(format!("{path}: {head}")));
        }
        Ok(body.to_owned())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("HTTPCLIENT_TESTSERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let name = bin_name();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(&name);
            if candidate.is_file() && candidate != exe {
                return Ok(candidate);
            }
        }
    }
    build_binary()
}

/// Builds the binary into a private target directory (last resort).
fn build_binary() -> io::Result<PathBuf> {
    static BUILD: Mutex<()> = Mutex::new(());
    let _serial = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let target_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            exe.ancestors()
                .find(|a| a.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(std::env::temp_dir);
    let target_dir = target_root.join("testserver-child");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .arg("build")
        .arg("--release")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--bin")
        .arg("httpclient-testserver")
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "building httpclient-testserver failed ({status}); \
             build it or set HTTPCLIENT_TESTSERVER_BIN"
        )));
    }
    Ok(target_dir.join("release").join(bin_name()))
}

//! `httpclient-testserver`: the scriptable test server as a process.
//!
//! Prints exactly one line `LISTENING 127.0.0.1:PORT` on stdout once bound.
//! Flags: `--port N` (default 0 = any), `--threads N` (worker threads,
//! default 1), `--max-lifetime-secs N` (default 600), `--seed N`,
//! `--exit-on-stdin-eof` (exit when stdin is closed, i.e. when the parent dies).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use httpclient_testserver::{ServerConfig, TestServer};

const USAGE: &str = "usage: httpclient-testserver [--port N] [--threads N] \
                     [--max-lifetime-secs N] [--seed N] [--exit-on-stdin-eof]";

struct Args {
    port: u16,
    threads: usize,
    max_lifetime_secs: u64,
    seed: Option<u64>,
    exit_on_stdin_eof: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        threads: 1,
        max_lifetime_secs: 600,
        seed: None,
        exit_on_stdin_eof: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--threads" => {
                args.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?;
                if args.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "--max-lifetime-secs" => {
                args.max_lifetime_secs = value("--max-lifetime-secs")?
                    .parse()
                    .map_err(|e| format!("--max-lifetime-secs: {e}"))?;
            }
            "--seed" => {
                args.seed = Some(
                    value("--seed")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?,
                );
            }
            "--exit-on-stdin-eof" => args.exit_on_stdin_eof = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("httpclient-testserver: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("httpclient-testserver: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let lifetime = Duration::from_secs(args.max_lifetime_secs);
        let mut config = ServerConfig::default()
            .port(args.port)
            .max_lifetime(lifetime);
        if let Some(seed) = args.seed {
            config = config.seed(seed);
        }
        let server = match TestServer::start_with(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("httpclient-testserver: bind: {e}");
                return ExitCode::FAILURE;
            }
        };
        {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "LISTENING {}", server.addr()).is_err() || out.flush().is_err() {
                return ExitCode::FAILURE;
            }
        }
        if args.exit_on_stdin_eof {
            std::thread::spawn(|| {
                let mut sink = [0u8; 256];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                std::process::exit(0);
            });
        }
        tokio::time::sleep(lifetime).await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

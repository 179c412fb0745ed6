//! Writing your own driver against the core trait, and checking it with the
//! conformance suite.
//!
//! The driver is `ApiKeyDriver` (in `crates/examples/src/api_key.rs`): the
//! one a team writes for the API it calls — an `x-api-key` header for that
//! API's hosts only, an `x-request-id` on every request, and a tally of
//! statuses and error kinds — around whichever client it trusts (here
//! `ReqwestDriver`). It is about sixty lines: implement
//! `Driver::execute`, forward `connections_opened`, and leave statuses,
//! timeouts, retries and cancellation to the contract.
//!
//! This program:
//! 1. sends two requests to the embedded server's `/echo`, which echoes
//!    `x-*` headers back, to show what the driver added (and that a request
//!    to another host gets no key);
//! 2. puts the driver under the batch layer — a custom driver composes
//!    with every layer like the built-in ones — and runs a small batch;
//! 3. with `--conformance`, runs the workspace's driver conformance suite
//!    (every check, about half a minute) on it and prints the report.
//!
//! ```text
//! cargo run --release --example custom_driver
//! cargo run --release --example custom_driver -- --conformance
//! cargo test -p batchclient-examples --test custom_driver_conformance   # the suite as tests
//! ```

use std::process::ExitCode;
use std::time::Duration;

use batchclient_examples::api_key::{API_KEY_HEADER, ApiKeyDriver, REQUEST_ID_HEADER};
use batchclient_examples::{
    Block, Cli, Opt, Spec, count, dur, error_line, report_error, target_or_embedded,
};
use httpclient_batch::BatchExecutor;
use httpclient_conformance::{ConformanceConfig, run_all};
use httpclient_core::{Driver, DriverExt, Request};
use httpclient_driver_reqwest::ReqwestDriver;

const SPEC: Spec = Spec {
    name: "custom_driver",
    about: "A custom Driver (API key + request id + tally around ReqwestDriver), used alone and under \
            the batch layer,\nand checked with the conformance suite.",
    options: &[
        Opt::value("key", "KEY", "the API key to send (default demo-key-123)"),
        Opt::value(
            "requests",
            "N",
            "GETs in the batch (default 50; 10 with --short)",
        ),
        Opt::flag(
            "conformance",
            "also run the driver conformance suite on it (about 30 s)",
        ),
    ],
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse(SPEC);
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => report_error(e.as_ref()),
    }
}

/// `Ok(false)` when the conformance suite found a failure.
async fn run(cli: Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let key: String = cli.get("key", "demo-key-123".to_string());
    let requests: usize = cli.get("requests", cli.pick(50, 10));
    let target = target_or_embedded(cli.target.as_deref()).await?;
    let host = httpclient_core::Origin::parse(target.base_url())?
        .host()
        .to_string();

    // The key goes to the target's host and nowhere else.
    let driver = ApiKeyDriver::new(
        ReqwestDriver::builder().count_connections(true).build()?,
        &key,
        [host.clone()],
    )?;

    println!("custom_driver — ApiKeyDriver<ReqwestDriver>");
    println!("target   {}", target.describe());
    println!("key      sent only to host `{host}` as `{API_KEY_HEADER}` (marked sensitive)\n");

    // 1. On its own: what the server received.
    if target.is_embedded() {
        let ours = driver.send(target.url("/echo")).await?;
        let echoed = |name: &str| {
            ours.headers()
                .get(format!("x-echo-{name}"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(not received)")
                .to_string()
        };
        println!("GET {}/echo → {}", target.base_url(), ours.status());
        println!(
            "  server received {API_KEY_HEADER}: {}",
            echoed(API_KEY_HEADER.as_str())
        );
        println!(
            "  server received {REQUEST_ID_HEADER}: {}",
            echoed(REQUEST_ID_HEADER.as_str())
        );
        // Same server, reached by another host name: no key for it.
        let other = target.base_url().replace("127.0.0.1", "localhost");
        if other != target.base_url() {
            match driver.send(format!("{other}/echo")).await {
                Ok(resp) => println!(
                    "GET {other}/echo → {} — {API_KEY_HEADER} received: {}",
                    resp.status(),
                    resp.headers().contains_key("x-echo-x-api-key")
                ),
                // `localhost` may not resolve to IPv4 here; nothing to show then.
                Err(err) => println!("GET {other}/echo → {}", error_line(&err)),
            }
        }
    } else {
        let resp = driver.send(target.url("/")).await?;
        println!("GET {}/ → {}", target.base_url(), resp.status());
    }

    // 2. Under the batch layer, like any driver.
    let batch = BatchExecutor::new(&driver, 16)?;
    let inputs = (0..requests).map(|i| {
        let script = if i % 5 == 4 { "status=404" } else { "" };
        Request::get(target.url_scripted(&format!("/items/{i}"), script))
            .timeout(Duration::from_secs(5))
    });
    let result = batch.execute_batch(inputs).await;
    println!(
        "\nBatchExecutor<&ApiKeyDriver<ReqwestDriver>>: {} requests in {}, {} responses, {} errors",
        result.len(),
        dur(result.duration),
        result.succeeded,
        result.failed
    );

    let tally = driver.tally();
    let mut block = Block::new("\nDriver tally");
    block
        .row("requests", count(tally.requests))
        .row("sent with the API key", count(tally.keyed))
        .row(
            "connections opened",
            driver.connections_opened().map_or("unknown".into(), count),
        );
    for (status, n) in &tally.responses {
        block.row(format!("  HTTP {status}"), count(*n));
    }
    for (kind, n) in &tally.errors {
        block.row(format!("  error {kind}"), count(*n));
    }
    print!("{block}");
    target.shutdown().await;

    // 3. The conformance suite: the same checks the workspace's own
    // drivers pass, against loopback servers it starts itself.
    if cli.flag("conformance") {
        println!("\nConformance suite (httpclient-conformance) on ApiKeyDriver<ReqwestDriver>:");
        let report = run_all(|cfg: ConformanceConfig| {
            let inner = ReqwestDriver::builder()
                .connect_timeout(cfg.connect_timeout)
                .timeout(cfg.timeout)
                .max_body_bytes(cfg.max_body_bytes)
                .build()?;
            ApiKeyDriver::new(inner, "conformance-key", ["127.0.0.1"])
        })
        .await;
        println!("{report}");
        if !report.all_passed() {
            return Ok(false);
        }
    } else {
        println!("\n(Run with --conformance to check the driver with the conformance suite.)");
    }
    Ok(true)
}

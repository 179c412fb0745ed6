//! Every example is built by `cargo test` (cargo builds a package's
//! examples before running its tests) and run here in short mode, against
//! its embedded loopback server: exit status 0 and the lines a reader looks
//! for. A bad command line must print the usage and exit 2, never panic.
//!
//! The binaries are found next to this test's own executable:
//! `target/<profile>/deps/run_examples-…` → `target/<profile>/examples/<name>`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any short run may take (they take 1–3 s; a hang must not stall
/// the suite).
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "example binary {} not found: run through `cargo test -p batchclient-examples` \
         (which builds the examples)",
        path.display()
    );
    // `cargo test --test run_examples` builds only this target, not the
    // examples: refuse to test a binary older than its sources.
    let built = modified(&path);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![manifest.join(format!("../../examples/{name}.rs"))];
    if let Ok(dir) = std::fs::read_dir(manifest.join("src")) {
        sources.extend(dir.flatten().map(|e| e.path()));
    }
    for source in sources {
        assert!(
            modified(&source) <= built,
            "{} is older than {}: build the examples first \
             (`cargo test -p batchclient-examples` without `--test`, or `cargo build --examples`)",
            path.display(),
            source.display()
        );
    }
    path
}

fn modified(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Run an example with `args`, bounded by [`RUN_LIMIT`] (killed past it).
fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(example_path(name))
        .args(args)
        .env_remove("EXAMPLES_SHORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn example");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{name} {args:?} still running after {RUN_LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("output");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn run_ok(name: &str, args: &[&str]) -> String {
    let (code, out, err) = run(name, args);
    assert_eq!(
        code, 0,
        "{name} {args:?} exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{name} panicked:\n{err}");
    out
}

fn assert_lines(name: &str, out: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            out.contains(needle),
            "{name}: `{needle}` missing from:\n{out}"
        );
    }
}

/// The value column of the first row whose label starts with `label`.
fn row<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(label))
        .map(|l| l[label.len()..].trim())
        .unwrap_or_else(|| panic!("no row `{label}` in:\n{out}"))
}

/// The value of row `label` inside the block titled `title` (a line of its
/// own, followed by indented rows).
fn row_in<'a>(out: &'a str, title: &str, label: &str) -> &'a str {
    let block: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    block
        .iter()
        .map(|l| l.trim_start())
        .find(|l| l.starts_with(label))
        .map(|l| l[label.len()..].trim())
        .unwrap_or_else(|| panic!("no row `{label}` in block `{title}` of:\n{out}"))
}

fn number(value: &str) -> u64 {
    value
        .split_whitespace()
        .next()
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("not a number: `{value}`"))
}

#[test]
fn basic_batch_runs() {
    let out = run_ok("basic_batch", &["--short"]);
    assert_lines(
        "basic_batch",
        &out,
        &[
            "Completed 20/20 requests in",
            "Batch stats",
            "status 2xx / 4xx / 5xx",
            "404 Not Found",
        ],
    );
    assert_eq!(row(&out, "requests"), "20");
    // Request 7 asks for a 404, 13 for a 503: responses, not errors.
    assert_eq!(row(&out, "status 2xx / 4xx / 5xx"), "17 / 2 / 1");
    assert_eq!(row(&out, "errors"), "0");
}

#[test]
fn rate_limited_runs() {
    let out = run_ok("rate_limited", &["--short"]);
    assert_lines(
        "rate_limited",
        &out,
        &[
            "Rate limiter stats",
            "40/s, burst 5",
            "try_execute now:",
            "release lag",
        ],
    );
    // The 20 fired at once, plus the `try_execute` if a permit was free.
    let extra = u64::from(out.contains("try_execute now: went through"));
    assert_eq!(number(row(&out, "granted (executed)")), 20 + extra);
    assert_eq!(number(row(&out, "forwarded to the driver")), 20 + extra);
    assert_eq!(number(row(&out, "rejected (would wait)")), 1 - extra);
    // 20 at once with a burst of 5: at least the other 15 had to wait.
    let throttled = number(row(&out, "throttled (had to wait)"));
    assert!(throttled >= 15, "throttled {throttled}\n{out}");
}

#[test]
fn chained_runs_and_the_accounts_balance() {
    let out = run_ok("chained", &["--short"]);
    assert_lines(
        "chained",
        &out,
        &[
            "BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>",
            "Warm-up: 8 HEAD requests, 8 ok, 0 failed",
            "Executed 200 requests in",
            "Statistics",
            "Batch\n",
            "Rate limiter\n",
            "Pool\n",
            "Server (its own counters)",
            "Accounting",
        ],
    );
    // Every request ends with exactly one outcome, and in the recommended
    // order every attempt, warm-up request and probe spent a permit and
    // reached the server exactly once.
    for label in [
        "batch requests = pool requests",
        "attempts + warm-up + probes",
        "forwarded by the limiter",
    ] {
        assert!(row(&out, label).ends_with('✓'), "{label}:\n{out}");
    }
    let retries = number(row_in(&out, "Pool", "retries"));
    assert!(retries > 0, "the flaky mix should cause retries:\n{out}");
}

#[test]
fn chained_go_order_shows_requests_the_limiter_never_saw() {
    let out = run_ok("chained", &["--short", "--go-order", "--requests", "100"]);
    assert_lines(
        "chained --go-order",
        &out,
        &[
            "BatchExecutor<RateLimitedExecutor<ConnectionPool<ReqwestDriver>>>",
            "requests the limiter never saw",
        ],
    );
    // Warm-up alone (8 requests) bypasses the limiter in this order.
    let never_saw: u64 = row(&out, "requests the limiter never saw")
        .split(':')
        .next()
        .and_then(|n| n.replace(',', "").parse().ok())
        .expect("number");
    assert!(never_saw >= 8, "{out}");
}

#[test]
fn custom_driver_runs() {
    let out = run_ok("custom_driver", &["--short"]);
    assert_lines(
        "custom_driver",
        &out,
        &[
            "server received x-api-key: demo-key-123",
            "server received x-request-id: ",
            "BatchExecutor<&ApiKeyDriver<ReqwestDriver>>: 10 requests",
            "Driver tally",
        ],
    );
    assert_eq!(row(&out, "HTTP 404"), "2");
}

#[test]
fn streaming_runs_in_bounded_memory() {
    let out = run_ok("streaming", &["--short"]);
    assert_lines(
        "streaming",
        &out,
        &[
            "Done: 20,000 requests in",
            "peak RSS (VmHWM)",
            "progress     20,000 / 20,000 (100 %)",
        ],
    );
    assert_eq!(row(&out, "results consumed"), "20,000");
    assert_eq!(row(&out, "driver's own count"), "20,000");
    // One request in a thousand is a 503.
    assert_eq!(row(&out, "other statuses"), "20");
}

#[test]
fn streaming_over_the_embedded_server() {
    let out = run_ok(
        "streaming",
        &[
            "--short",
            "--embedded",
            "--requests",
            "2000",
            "--workers",
            "32",
        ],
    );
    assert_eq!(row(&out, "results consumed"), "2,000");
    assert_eq!(row(&out, "server's own count"), "2,000");
}

#[test]
fn bad_arguments_print_usage_and_exit_2() {
    for name in [
        "basic_batch",
        "rate_limited",
        "chained",
        "custom_driver",
        "streaming",
    ] {
        let (code, out, err) = run(name, &["--no-such-flag"]);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(
            err.contains("unknown option `--no-such-flag`"),
            "{name}: {err}"
        );
        assert!(err.contains(&format!("--example {name}")), "{name}: {err}");
        let (code, out, _) = run(name, &["--help"]);
        assert_eq!(code, 0, "{name} --help");
        assert!(out.contains("--short"), "{name} --help: {out}");
    }
    // A value the layer rejects is a typed error, not a panic.
    let (code, _, err) = run("chained", &["--short", "--rate", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: invalid configuration: rate:"), "{err}");
    let (code, _, err) = run("basic_batch", &["--short", "--workers", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    let (code, _, err) = run("basic_batch", &["--requests", "many"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid value `many` for `--requests`"),
        "{err}"
    );
}

//! # batchclient-examples
//!
//! The small helper shared by the runnable programs in the workspace's
//! top-level `examples/` folder (`basic_batch`, `rate_limited`, `chained`,
//! `custom_driver`, `streaming`), and the two drivers two of them are about.
//!
//! Every example takes an optional target URL as its first argument. Without
//! one it starts the workspace's scriptable loopback server
//! ([`httpclient_testserver::TestServer`]) on `127.0.0.1` inside the same
//! process, so each program runs on a machine with no network at all and
//! can script delays (`?delay_ms=`), statuses (`?status=`) and faults
//! (`?faults=reset_mid_body:5,status503:3`) per request. That is
//! [`target_or_embedded`]; the rest of this crate is the unglamorous part of
//! a command-line program — arguments ([`Cli`]), aligned output
//! ([`Block`]), numbers people can read ([`count`], [`dur`]) — kept here so
//! the examples show the layers and little else.
//!
//! Modules:
//! * [`api_key`] — `ApiKeyDriver`, the custom driver of the `custom_driver`
//!   example, shared with the test that runs the conformance suite on it.
//! * [`in_process`] — `InProcessApi`, an in-memory "server" the
//!   `streaming` example pushes a million requests through.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api_key;
pub mod in_process;

use std::ffi::OsString;
use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use httpclient_core::http::Uri;
use httpclient_core::{Error, Origin};
pub use httpclient_testserver::{ServerConfig, ServerStats, TestServer};

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// One `--name VALUE` option (or `--name` flag when `value` is empty) an
/// example accepts besides the shared `[URL]`, `--short` and `--help`.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Long name without the dashes.
    pub name: &'static str,
    /// Placeholder shown in the usage (`"N"`, `"RATE"`); empty for a flag.
    pub value: &'static str,
    /// One line of help, including the default.
    pub help: &'static str,
}

impl Opt {
    /// An option that takes a value.
    pub const fn value(name: &'static str, value: &'static str, help: &'static str) -> Opt {
        Opt { name, value, help }
    }
    /// A flag (no value).
    pub const fn flag(name: &'static str, help: &'static str) -> Opt {
        Opt {
            name,
            value: "",
            help,
        }
    }
    fn is_flag(&self) -> bool {
        self.value.is_empty()
    }
}

/// What an example accepts, for parsing and for its usage text.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The example's name (`cargo run --example NAME`).
    pub name: &'static str,
    /// What it does, in one or two lines.
    pub about: &'static str,
    /// Its own options.
    pub options: &'static [Opt],
}

impl Spec {
    /// The usage text printed for `--help` and after a bad argument.
    pub fn usage(&self) -> String {
        let mut s = format!(
            "{}\n\nUsage: cargo run --release --example {} -- [URL] [OPTIONS]\n\n\
             Arguments:\n  [URL]  base URL of a server to send the requests to (paths are appended);\n         \
             without it an embedded loopback server on 127.0.0.1 is started\n\nOptions:\n",
            self.about, self.name
        );
        let mut rows: Vec<(String, &str)> = self
            .options
            .iter()
            .map(|o| {
                let left = if o.is_flag() {
                    format!("--{}", o.name)
                } else {
                    format!("--{} {}", o.name, o.value)
                };
                (left, o.help)
            })
            .collect();
        rows.push((
            "--short".into(),
            "a quick run (also when EXAMPLES_SHORT=1 is set)",
        ));
        rows.push(("-h, --help".into(), "print this help"));
        let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (left, help) in rows {
            s.push_str(&format!("  {left:<width$}  {help}\n"));
        }
        s
    }
}

/// A command-line mistake: what was wrong, and the usage to print with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What was wrong.
    pub message: String,
    /// The example's usage text.
    pub usage: String,
}

impl UsageError {
    /// Print the message and the usage to stderr and exit with status 2
    /// (the convention for a bad command line).
    pub fn exit(&self) -> ! {
        eprintln!("error: {}\n\n{}", self.message, self.usage);
        std::process::exit(2)
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// The parsed command line of an example.
#[derive(Debug, Clone)]
pub struct Cli {
    spec: Spec,
    /// The target URL, if one was given.
    pub target: Option<String>,
    /// `--short` or `EXAMPLES_SHORT=1`: a quick run (used by the tests).
    pub short: bool,
    values: Vec<(&'static str, String)>,
    flags: Vec<&'static str>,
}

impl Cli {
    /// Parse the process's arguments. `--help` prints the usage and exits
    /// 0; a bad argument prints the error and the usage and exits 2.
    pub fn parse(spec: Spec) -> Cli {
        let short_env = std::env::var("EXAMPLES_SHORT").is_ok_and(|v| v == "1");
        match Cli::parse_from(spec, std::env::args_os().skip(1), short_env) {
            Ok(Some(cli)) => cli,
            Ok(None) => {
                print!("{}", spec.usage());
                std::process::exit(0)
            }
            Err(e) => e.exit(),
        }
    }

    /// Parse `args` (without the program name); `Ok(None)` for `--help`.
    ///
    /// # Errors
    /// A [`UsageError`] for an unknown option, a missing value, a second
    /// URL or a URL that is not a usable base (`http(s)://host[:port][/path]`).
    pub fn parse_from<I>(spec: Spec, args: I, short: bool) -> Result<Option<Cli>, UsageError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        use lexopt::Arg;
        let err = |message: String| UsageError {
            message,
            usage: spec.usage(),
        };
        let mut cli = Cli {
            spec,
            target: None,
            short,
            values: Vec::new(),
            flags: Vec::new(),
        };
        let mut parser = lexopt::Parser::from_args(args);
        loop {
            let arg = match parser.next() {
                Ok(Some(arg)) => arg,
                Ok(None) => break,
                Err(e) => return Err(err(e.to_string())),
            };
            match arg {
                Arg::Short('h') | Arg::Long("help") => return Ok(None),
                Arg::Long("short") => cli.short = true,
                Arg::Long(name) => {
                    let Some(opt) = spec.options.iter().find(|o| o.name == name) else {
                        return Err(err(format!("unknown option `--{name}`")));
                    };
                    let name = opt.name;
                    if opt.is_flag() {
                        if !cli.flags.contains(&opt.name) {
                            cli.flags.push(opt.name);
                        }
                    } else {
                        let value = parser
                            .value()
                            .map_err(|e| err(e.to_string()))?
                            .into_string()
                            .map_err(|_| err(format!("the value of `--{name}` is not UTF-8")))?;
                        cli.values.retain(|(n, _)| *n != opt.name);
                        cli.values.push((opt.name, value));
                    }
                }
                Arg::Short(c) => return Err(err(format!("unknown option `-{c}`"))),
                Arg::Value(v) => {
                    let v = v
                        .into_string()
                        .map_err(|_| err("the URL is not UTF-8".into()))?;
                    if cli.target.is_some() {
                        return Err(err(format!(
                            "unexpected argument `{v}` (only one URL is accepted)"
                        )));
                    }
                    check_base_url(&v).map_err(err)?;
                    cli.target = Some(v.trim_end_matches('/').to_string());
                }
            }
        }
        Ok(Some(cli))
    }

    /// Whether the flag `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    /// The value of `--name` parsed as `T`, or `default` when it was not
    /// given.
    ///
    /// # Errors
    /// A [`UsageError`] when the value does not parse.
    pub fn try_get<T>(&self, name: &str, default: T) -> Result<T, UsageError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.values.iter().find(|(n, _)| *n == name) {
            None => Ok(default),
            Some((_, raw)) => raw.parse().map_err(|e| UsageError {
                message: format!("invalid value `{raw}` for `--{name}`: {e}"),
                usage: self.spec.usage(),
            }),
        }
    }

    /// [`Cli::try_get`], printing the usage and exiting 2 on a bad value.
    pub fn get<T>(&self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.try_get(name, default).unwrap_or_else(|e| e.exit())
    }

    /// `short` in a quick run, `full` otherwise.
    pub fn pick<T>(&self, full: T, short: T) -> T {
        if self.short { short } else { full }
    }
}

/// A target must be an absolute http(s) URL with a host, and may carry a
/// base path but no query or fragment (the examples append their own).
fn check_base_url(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    Origin::from_uri(&uri).map_err(|e| format!("`{url}` cannot be a target: {e}"))?;
    if uri.query().is_some() || url.contains('#') {
        return Err(format!(
            "`{url}`: give a base URL without `?query` or `#fragment` (the examples append paths)"
        ));
    }
    Ok(())
}

/// Print an error with its chain of causes to stderr and return a failure
/// exit code: what an example's `main` does with an error.
pub fn report_error(err: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::FAILURE
}

// ---------------------------------------------------------------------------
// The target
// ---------------------------------------------------------------------------

/// Where an example sends its requests: the URL given on the command line,
/// or the embedded loopback server it started.
pub struct Target {
    base: String,
    server: Option<TestServer>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("base", &self.base)
            .field("embedded", &self.server.is_some())
            .finish()
    }
}

/// The target: `url` when given, otherwise a [`TestServer`] started now on
/// `127.0.0.1` (a free port) in this process.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let target = batchclient_examples::target_or_embedded(None).await?;
/// // Fault scripts only go to the embedded server; a real one gets the plain path.
/// let url = target.url_scripted("/data/1", "faults=reset_mid_body:5");
/// # let _ = url; Ok(()) }
/// ```
///
/// # Errors
/// The I/O error when the embedded server cannot bind.
pub async fn target_or_embedded(url: Option<&str>) -> std::io::Result<Target> {
    target_or_embedded_with(url, ServerConfig::default()).await
}

/// [`target_or_embedded`] with a configuration for the embedded server
/// (e.g. [`ServerConfig::record_arrivals`]); ignored when `url` is given.
///
/// # Errors
/// The I/O error when the embedded server cannot bind.
pub async fn target_or_embedded_with(
    url: Option<&str>,
    config: ServerConfig,
) -> std::io::Result<Target> {
    match url {
        Some(url) => Ok(Target {
            base: url.trim_end_matches('/').to_string(),
            server: None,
        }),
        None => {
            let server = TestServer::start_with(config).await?;
            Ok(Target {
                base: server.base_url(),
                server: Some(server),
            })
        }
    }
}

impl Target {
    /// The base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Whether this is the embedded loopback server.
    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }

    /// The embedded server, if this is it.
    pub fn server(&self) -> Option<&TestServer> {
        self.server.as_ref()
    }

    /// The embedded server's own counters, if this is it.
    pub fn server_stats(&self) -> Option<ServerStats> {
        self.server.as_ref().map(TestServer::stats)
    }

    /// `base + path`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `base + path`, plus the embedded server's query `script` (for
    /// example `status=404` or `faults=reset_mid_body:5`) when this is the
    /// embedded server. A real server gets the plain path: scripts mean
    /// nothing to it.
    pub fn url_scripted(&self, path: &str, script: &str) -> String {
        if self.is_embedded() && !script.is_empty() {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{sep}{script}", self.base)
        } else {
            self.url(path)
        }
    }

    /// One line saying what the target is, for the top of an example's
    /// output.
    pub fn describe(&self) -> String {
        if self.is_embedded() {
            format!("{} (embedded loopback server)", self.base)
        } else {
            self.base.clone()
        }
    }

    /// Stop the embedded server (if any) and wait for its tasks to end.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// A titled block of `label  value` rows, printed with the values aligned:
///
/// ```text
/// Batch
///   requests          1,000
///   completed           998
/// ```
#[derive(Debug, Clone, Default)]
pub struct Block {
    title: String,
    rows: Vec<(String, String)>,
}

impl Block {
    /// An empty block with this title.
    pub fn new(title: impl Into<String>) -> Block {
        Block {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Add a row.
    pub fn row(&mut self, label: impl Into<String>, value: impl fmt::Display) -> &mut Block {
        self.rows.push((label.into(), value.to_string()));
        self
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        for (label, value) in &self.rows {
            let pad = width - label.chars().count();
            writeln!(f, "  {label}{:pad$}  {value}", "")?;
        }
        Ok(())
    }
}

/// `1234567` → `"1,234,567"`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in the unit that reads best: `"850 µs"`, `"12.3 ms"`,
/// `"250 ms"`, `"2.41 s"`.
pub fn dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.is_zero() {
        "0".into()
    } else if s >= 9.995 {
        format!("{s:.1} s")
    } else if s >= 0.9995 {
        format!("{s:.2} s")
    } else if s >= 0.1 {
        format!("{:.0} ms", s * 1e3)
    } else if s >= 0.01 {
        format!("{:.1} ms", s * 1e3)
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else if d >= Duration::from_micros(1) {
        format!("{:.0} µs", s * 1e6)
    } else {
        format!("{} ns", d.as_nanos())
    }
}

/// A fraction as a percentage with one decimal: `0.9871` → `"98.7 %"`.
pub fn pct(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// `value (of total, pct)` e.g. `"12 (1.2 % of 1,000)"`.
pub fn share(value: u64, total: u64) -> String {
    if total == 0 {
        count(value)
    } else {
        format!(
            "{} ({} of {})",
            count(value),
            pct(value as f64 / total as f64),
            count(total)
        )
    }
}

/// The process's peak resident set size in bytes (`VmHWM` in
/// `/proc/self/status`); `None` where there is no such file (not Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// The process's current resident set size in bytes (`VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes as MiB with one decimal: `"23.4 MiB"`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// What an error was, in a few words, for per-item lines: its kind name
/// and message (`reset_mid_body: connection reset while reading …`).
pub fn error_line(err: &Error) -> String {
    format!("{}: {err}", err.kind_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        name: "demo",
        about: "A demo.",
        options: &[
            Opt::value("count", "N", "requests (default 10)"),
            Opt::flag("go-order", "the Go order"),
        ],
    };

    fn parse(args: &[&str]) -> Result<Option<Cli>, UsageError> {
        Cli::parse_from(SPEC, args.iter().copied(), false)
    }

    #[test]
    fn parses_url_options_and_flags() {
        let cli = parse(&[
            "http://127.0.0.1:8080/api/",
            "--count",
            "7",
            "--go-order",
            "--short",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cli.target.as_deref(), Some("http://127.0.0.1:8080/api"));
        assert_eq!(cli.get("count", 10usize), 7);
        assert!(cli.flag("go-order"));
        assert!(cli.short);
        let cli = parse(&["--count=3"]).unwrap().unwrap();
        assert_eq!(cli.target, None);
        assert_eq!(cli.get("count", 10usize), 3);
        assert!(!cli.flag("go-order"));
        assert!(!cli.short);
    }

    #[test]
    fn bad_arguments_are_usage_errors_not_panics() {
        for (args, needle) in [
            (&["--nope"][..], "unknown option `--nope`"),
            (&["-x"][..], "unknown option `-x`"),
            (&["--count"][..], "missing argument"),
            (&["ftp://h/"][..], "cannot be a target"),
            (&["not a url"][..], "is not a URL"),
            (&["http://h/?a=1"][..], "without `?query`"),
            (&["http://a/", "http://b/"][..], "only one URL"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.message.contains(needle), "{args:?}: {}", e.message);
            assert!(
                e.usage
                    .contains("Usage: cargo run --release --example demo")
            );
        }
        let cli = parse(&["--count", "many"]).unwrap().unwrap();
        let e = cli.try_get("count", 1usize).unwrap_err();
        assert!(
            e.message.contains("invalid value `many` for `--count`"),
            "{}",
            e.message
        );
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn usage_lists_every_option() {
        let u = SPEC.usage();
        for needle in ["--count N", "--go-order", "--short", "--help", "[URL]"] {
            assert!(u.contains(needle), "{u}");
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(dur(Duration::from_micros(850)), "850 µs");
        assert_eq!(dur(Duration::from_nanos(420)), "420 ns");
        assert_eq!(dur(Duration::from_micros(1_500)), "1.50 ms");
        assert_eq!(dur(Duration::from_millis(123)), "123 ms");
        assert_eq!(dur(Duration::from_micros(19_840)), "19.8 ms");
        assert_eq!(dur(Duration::from_millis(2_410)), "2.41 s");
        assert_eq!(dur(Duration::from_micros(999_700)), "1.00 s");
        assert_eq!(dur(Duration::from_millis(9_996)), "10.0 s");
        assert_eq!(pct(0.98765), "98.8 %");
        assert_eq!(share(5, 200), "5 (2.5 % of 200)");
    }

    #[test]
    fn blocks_align_values() {
        let mut b = Block::new("Stats");
        b.row("requests", count(1000)).row("completed ok", 998);
        assert_eq!(
            b.to_string(),
            "Stats\n  requests      1,000\n  completed ok  998\n"
        );
    }

    #[tokio::test]
    async fn scripts_go_only_to_the_embedded_server() {
        let real = target_or_embedded(Some("http://example.test/api"))
            .await
            .unwrap();
        assert!(!real.is_embedded());
        assert_eq!(
            real.url_scripted("/data/1", "status=503"),
            "http://example.test/api/data/1"
        );
        let emb = target_or_embedded(None).await.unwrap();
        assert!(emb.is_embedded());
        let url = emb.url_scripted("/data/1?x=1", "status=503");
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/data/1?x=1&status=503"));
        emb.shutdown().await;
    }
}

//! Hand-written argument parsing (no clap: `cargo test --workspace` should
//! compile next to nothing for xtask).

use std::fmt;

/// Usage text printed by `--help` and after every usage error.
pub const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                         cargo fmt --check, clippy -D warnings, test, doc (-D warnings);
                             stops at the first failure
  bench [options]            paired ABBA benchmarks against the loopback test server
      --quick                few pairs, small slices: whole run < 2 min, ratios indicative only
      --filter SUBSTR        only scenarios whose id contains SUBSTR (the A/A control always runs)
      --pairs N              ABBA pairs per comparison (default 100, --quick 12; verdicts need >= 50)
  help                       this text

`bench` needs xtask's `bench` feature; the `cargo xtask` alias enables it.";

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchArgs {
    /// `--quick`: fewer pairs, smaller slices.
    pub quick: bool,
    /// `--filter SUBSTR`: scenario id substring.
    pub filter: Option<String>,
    /// `--pairs N`: override the number of ABBA pairs.
    pub pairs: Option<usize>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `cargo xtask ci`.
    Ci,
    /// `cargo xtask bench ...`.
    Bench(BenchArgs),
    /// `cargo xtask help` / `--help` / `-h`.
    Help,
}

/// A command line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let Some(cmd) = args.next() else {
        return err("missing command");
    };
    match cmd.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "ci" => match args.next() {
            None => Ok(Command::Ci),
            Some(a) if a == "--help" || a == "-h" => Ok(Command::Help),
            Some(a) => err(format!("`ci` takes no arguments, got `{a}`")),
        },
        "bench" => Ok(parse_bench(args)?.map_or(Command::Help, Command::Bench)),
        other => err(format!("unknown command `{other}`")),
    }
}

/// `Ok(None)` means `--help` was asked for.
fn parse_bench(mut args: impl Iterator<Item = String>) -> Result<Option<BenchArgs>, UsageError> {
    let mut out = BenchArgs::default();
    while let Some(arg) = args.next() {
        // Accept both `--opt value` and `--opt=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, UsageError> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => err(format!("`{name}` needs a value ({what})")),
            }
        };
        match name.as_str() {
            "--quick" if inline.is_none() => out.quick = true,
            "--filter" => out.filter = Some(value("a scenario id substring")?),
            "--pairs" => {
                let v = value("a whole number >= 2")?;
                match v.parse::<usize>() {
                    Ok(n) if (2..=100_000).contains(&n) => out.pairs = Some(n),
                    _ => {
                        return err(format!(
                            "`--pairs` needs a whole number in 2..=100000, got `{v}`"
                        ));
                    }
                }
            }
            "--help" | "-h" => return Ok(None),
            _ => return err(format!("unknown bench option `{arg}`")),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().copied())
    }

    #[test]
    fn parses_commands() {
        assert_eq!(p(&["ci"]), Ok(Command::Ci));
        assert_eq!(p(&["help"]), Ok(Command::Help));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["bench", "--help"]), Ok(Command::Help));
        assert_eq!(p(&["bench"]), Ok(Command::Bench(BenchArgs::default())));
        assert_eq!(
            p(&["bench", "--quick", "--filter", "driver/", "--pairs", "60"]),
            Ok(Command::Bench(BenchArgs {
                quick: true,
                filter: Some("driver/".into()),
                pairs: Some(60)
            }))
        );
        assert_eq!(
            p(&["bench", "--pairs=8", "--filter=c64"]),
            Ok(Command::Bench(BenchArgs {
                quick: false,
                filter: Some("c64".into()),
                pairs: Some(8)
            }))
        );
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["ci", "extra"],
            &["bench", "--pairs"],
            &["bench", "--pairs", "0"],
            &["bench", "--pairs", "1"],
            &["bench", "--pairs", "-3"],
            &["bench", "--pairs", "many"],
            &["bench", "--pairs", "99999999999999999999999"],
            &["bench", "--filter"],
            &["bench", "--filter="],
            &["bench", "--quick=yes"],
            &["bench", "--fast"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} should be a usage error");
        }
    }
}

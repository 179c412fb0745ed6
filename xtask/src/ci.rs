//! `cargo xtask ci`: the checks every change must pass, in the order that
//! fails fastest (formatting in a second, clippy before the long test run).

use std::path::Path;
use std::process::Command;

/// One step of the CI sequence.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const STEPS: &[Step] = &[
    Step {
        name: "format",
        args: &["fmt", "--all", "--check"],
        env: &[],
    },
    Step {
        name: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "test",
        args: &["test", "--workspace"],
        env: &[],
    },
    Step {
        name: "doc",
        args: &["doc", "--workspace", "--no-deps"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
];

/// Runs every step in `root`; returns a message naming the first failure.
pub fn run(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    for (i, step) in STEPS.iter().enumerate() {
        let shown: Vec<String> = step
            .env
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .chain(std::iter::once("cargo".to_string()))
            .chain(step.args.iter().map(|a| a.to_string()))
            .collect();
        let shown = shown.join(" ");
        eprintln!("==> [{}/{}] {}: {shown}", i + 1, STEPS.len(), step.name);
        let mut cmd = Command::new(&cargo);
        cmd.args(step.args).current_dir(root);
        for (k, v) in step.env {
            cmd.env(k, v);
        }
        let status = cmd
            .status()
            .map_err(|e| format!("ci: could not start `{shown}`: {e}"))?;
        if !status.success() {
            return Err(format!(
                "ci: step {}/{} `{}` failed ({status}); command: {shown}",
                i + 1,
                STEPS.len(),
                step.name
            ));
        }
    }
    eprintln!("==> ci: all {} steps passed", STEPS.len());
    Ok(())
}

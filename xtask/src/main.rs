//! `cargo xtask` entry point; see the library docs.

use std::process::ExitCode;

use xtask::{ci, cli, workspace_root};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        cli::Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        cli::Command::Ci => match ci::run(&workspace_root()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::FAILURE
            }
        },
        cli::Command::Bench(args) => run_bench(args),
    }
}

#[cfg(feature = "bench")]
fn run_bench(args: cli::BenchArgs) -> ExitCode {
    xtask::bench::main(&workspace_root(), &args)
}

#[cfg(not(feature = "bench"))]
fn run_bench(args: cli::BenchArgs) -> ExitCode {
    let _ = args;
    eprintln!(
        "error: xtask was built without its `bench` feature.\n\
         run the benchmarks with the alias, which enables it:\n\
         \n    cargo xtask bench [--quick] [--filter SUBSTR] [--pairs N]\n\
         \nor explicitly:\n\
         \n    cargo run --release -p xtask --features bench -- bench [--quick]"
    );
    ExitCode::from(2)
}

//! `dashboard`: serves the auditors' web dashboard, or manages its users.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    aegis_core::telemetry::init();
    match dashboard::cli::run(dashboard::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the context chain on one line, without a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

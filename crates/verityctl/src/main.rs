// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl`: fs-verity digests compatible with `fsverity digest`, and the
//! host- and guest-side tools of verityfsd.

mod attest;
mod digest;
mod measure;
mod mount;
mod source;
mod sys;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// fs-verity digests and measurements for verityfsd shares.
#[derive(Debug, Parser)]
#[command(name = "verityctl", version, about, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute the fs-verity digest of files, like `fsverity digest`.
    Digest(digest::DigestArgs),
    /// Print the fs-verity digest the filesystem reports, like `fsverity measure`.
    Measure(measure::MeasureArgs),
    /// Record a manifest digest in TDX RTMR, a vTPM PCR and/or an event log.
    Attest(attest::AttestArgs),
    /// Mount SOURCE at TARGET as a read-only FUSE filesystem verified against a pinned manifest.
    Mount(mount::MountArgs),
}

/// Prints an error and its causes; returns the exit code.
fn report(e: &dyn std::error::Error, code: u8) -> ExitCode {
    eprintln!("verityctl: error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Digest(args) => digest::run(&args).map_err(|e| {
            let code = e.exit_code();
            report(&e, code)
        }),
        Command::Measure(args) => measure::run(&args).map_err(|e| report(&e, 1)),
        Command::Attest(args) => attest::run(&args).map_err(|e| {
            let code = e.exit_code();
            report(&e, code)
        }),
        Command::Mount(args) => mount::run(&args).map_err(|e| {
            let code = e.exit_code();
            report(&e, code)
        }),
    };
    result.err().unwrap_or(ExitCode::SUCCESS)
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl`: fs-verity digests compatible with `fsverity digest`, and the
//! host- and guest-side tools of verityfsd.

mod digest;
mod source;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Digest(args) => digest::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verityctl: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(e.exit_code())
        }
    }
}

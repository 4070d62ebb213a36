// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl`: fs-verity digests compatible with `fsverity digest`, and the
//! host- and guest-side tools of verityfsd.

mod digest;
mod hashing;
mod manifest_digest;
mod params;
mod seal;
mod source;
mod store;
mod verify_manifest;
mod walk;

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
    /// Write the manifest of a directory tree and print its digest.
    Seal(seal::SealArgs),
    /// Compare a directory tree with a manifest; exit 1 if they differ.
    VerifyManifest(verify_manifest::VerifyManifestArgs),
    /// Validate a manifest and print its digest.
    ManifestDigest(manifest_digest::ManifestDigestArgs),
}

/// Prints an error with its causes and returns `code`.
fn fail(e: &dyn std::error::Error, code: u8) -> ExitCode {
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
    match cli.command {
        Command::Digest(args) => match digest::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e, e.exit_code()),
        },
        Command::Seal(args) => match seal::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e, e.exit_code()),
        },
        Command::VerifyManifest(args) => match verify_manifest::run(&args) {
            Ok(0) => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => fail(&e, e.exit_code()),
        },
        // The manifest is this command's only input: any failure is exit 1.
        Command::ManifestDigest(args) => match manifest_digest::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e, 1),
        },
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl`: fs-verity digests compatible with `fsverity digest`, and the
//! host- and guest-side tools of verityfsd.

mod attest;
mod digest;
mod hashing;
mod manifest_digest;
mod measure;
mod mount;
mod objects;
mod params;
mod scan;
mod seal;
mod source;
mod store;
mod sys;
mod verify_manifest;

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
        Command::Digest(args) => digest::run(&args).map_err(|e| report(&e, e.exit_code())),
        Command::Seal(args) => seal::run(&args).map_err(|e| report(&e, e.exit_code())),
        Command::VerifyManifest(args) => match verify_manifest::run(&args) {
            Ok(0) => Ok(()),
            Ok(_) => Err(ExitCode::from(1)),
            Err(e) => Err(report(&e, e.exit_code())),
        },
        // The manifest is this command's only input: any failure is exit 1.
        Command::ManifestDigest(args) => manifest_digest::run(&args).map_err(|e| report(&e, 1)),
        Command::Measure(args) => measure::run(&args).map_err(|e| report(&e, 1)),
        Command::Attest(args) => attest::run(&args).map_err(|e| report(&e, e.exit_code())),
        Command::Mount(args) => mount::run(&args).map_err(|e| report(&e, e.exit_code())),
    };
    result.err().unwrap_or(ExitCode::SUCCESS)
}

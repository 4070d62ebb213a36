// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl manifest-digest`: the digest of an existing manifest.

use std::path::PathBuf;

use clap::Args;

use crate::verify_manifest::{load_manifest, VerifyManifestError};

/// Arguments of `verityctl manifest-digest`.
#[derive(Debug, Args)]
pub struct ManifestDigestArgs {
    /// The manifest written by `verityctl seal`.
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,
}

/// Runs `verityctl manifest-digest`: validates the manifest and prints its
/// digest as `sha256:HEX`.
pub fn run(args: &ManifestDigestArgs) -> Result<(), VerifyManifestError> {
    let manifest = load_manifest(&args.manifest, None)?;
    println!("{}", manifest.digest());
    Ok(())
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The pinned manifest of `verityctl mount`: read, parsed and refused unless
//! its digest is the one given on the command line (the guest's trust anchor;
//! the file itself may come from the untrusted host).

use std::io;
use std::path::{Path, PathBuf};

use verity_manifest::{Manifest, ManifestError};
use verity_merkle::{FileDigest, HashAlgorithm};

/// Why the manifest is not usable.
#[derive(Debug, thiserror::Error)]
pub enum PinnedError {
    /// --manifest-digest is malformed.
    #[error(
        "--manifest-digest {0:?} is not a manifest digest; pass sha256: followed by 64 \
         hexadecimal digits (verityctl manifest-digest prints it)"
    )]
    BadPin(String),
    /// The manifest cannot be read.
    #[error("--manifest {path:?} cannot be read")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The manifest does not parse.
    #[error("--manifest {path:?} is not a valid verityfsd manifest")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// The manifest's digest differs from the pinned one.
    #[error(
        "--manifest {path:?} has digest {found}, but --manifest-digest pins {expected}; \
         refusing to mount a share whose manifest is not the expected one"
    )]
    Mismatch {
        /// The path.
        path: PathBuf,
        /// The pinned digest.
        expected: Box<FileDigest>,
        /// The manifest's digest.
        found: Box<FileDigest>,
    },
}

/// Parses `pin` (`sha256:HEX`).
pub fn parse_pin(pin: &str) -> Result<FileDigest, PinnedError> {
    pin.parse::<FileDigest>()
        .ok()
        .filter(|d| d.algorithm() == HashAlgorithm::Sha256)
        .ok_or_else(|| PinnedError::BadPin(pin.to_owned()))
}

/// Loads the manifest at `path` and checks it against `pin`.
pub fn load(path: &Path, pin: &str) -> Result<Manifest, PinnedError> {
    // The pin first: a typo must not be reported as a mismatch.
    let expected = parse_pin(pin)?;
    let bytes = std::fs::read(path).map_err(|source| PinnedError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let manifest = Manifest::parse(&bytes).map_err(|source| PinnedError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    if *manifest.digest() != expected {
        return Err(PinnedError::Mismatch {
            path: path.to_owned(),
            expected: Box::new(expected),
            found: Box::new(*manifest.digest()),
        });
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_sha256() {
        assert!(parse_pin(&format!("sha256:{}", "ab".repeat(32))).is_ok());
        for bad in [
            "",
            "abc",
            "sha256:00",
            &format!("sha512:{}", "ab".repeat(64)),
        ] {
            assert!(
                matches!(parse_pin(bad), Err(PinnedError::BadPin(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unreadable_and_invalid_manifests_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let pin = format!("sha256:{}", "00".repeat(32));
        let missing = dir.path().join("missing");
        assert!(matches!(
            load(&missing, &pin),
            Err(PinnedError::Unreadable { .. })
        ));
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a manifest").unwrap();
        assert!(matches!(
            load(&junk, &pin),
            Err(PinnedError::Invalid { .. })
        ));
        // A malformed pin is reported before the file is even read.
        assert!(matches!(load(&missing, "x"), Err(PinnedError::BadPin(_))));
    }
}

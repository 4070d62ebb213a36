// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The pinned manifest of `verityctl mount`: read, parsed and refused unless
//! its digest is the one given on the command line (the guest's trust anchor;
//! the file itself may come from the untrusted host).

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

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
    /// The manifest is larger than any this tool reads.
    #[error("--manifest {path:?} is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
    },
    /// The manifest (with the pinned digest) does not parse.
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

/// Largest manifest read (a million entries take about 150 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 512 << 20;

/// Reads the manifest at `path` and returns it only if its SHA-256 is `pin`.
///
/// The bytes are hashed before they are parsed, and at most [`MAX_MANIFEST_BYTES`] are read:
/// a host-supplied file never reaches the parser unless it is the pinned one.
pub fn load(path: &Path, pin: &str) -> Result<Manifest, PinnedError> {
    // The pin first: a typo must not be reported as a mismatch.
    let expected = parse_pin(pin)?;
    let unreadable = |source| PinnedError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(PinnedError::TooLarge {
            path: path.to_owned(),
        });
    }
    let found = FileDigest::new(HashAlgorithm::Sha256, &Sha256::digest(&bytes))
        .ok_or_else(|| unreadable(io::Error::other("SHA-256 is 32 bytes")))?;
    if found != expected {
        return Err(PinnedError::Mismatch {
            path: path.to_owned(),
            expected: Box::new(expected),
            found: Box::new(found),
        });
    }
    Manifest::parse(&bytes).map_err(|source| PinnedError::Invalid {
        path: path.to_owned(),
        source,
    })
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
        // Hashed before it is parsed: another digest is a mismatch, never parsed.
        assert!(matches!(
            load(&junk, &pin),
            Err(PinnedError::Mismatch { .. })
        ));
        let junk_pin = format!("sha256:{}", hex::encode(Sha256::digest(b"not a manifest")));
        assert!(matches!(
            load(&junk, &junk_pin),
            Err(PinnedError::Invalid { .. })
        ));
        // A malformed pin is reported before the file is even read.
        assert!(matches!(load(&missing, "x"), Err(PinnedError::BadPin(_))));
    }
}

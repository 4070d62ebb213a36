// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The fs-verity file digest and its printable form `sha256:HEX` (spec §2.2-2.3).

use std::fmt;
use std::str::FromStr;

use crate::params::{HashAlgorithm, MAX_DIGEST_SIZE};

/// Errors parsing a printable digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    /// No `ALG:` prefix.
    #[error("digest {0:?} has no algorithm prefix (expected sha256:HEX or sha512:HEX)")]
    MissingAlgorithm(String),
    /// The algorithm prefix is unknown.
    #[error("unknown digest algorithm {0:?} (expected sha256 or sha512)")]
    UnknownAlgorithm(String),
    /// The hex part is not lowercase/uppercase hex of the right length.
    #[error("digest {0:?} is not {1} hex characters")]
    BadHex(String, usize),
}

/// An fs-verity file digest ("measurement"): the hash of the descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileDigest {
    algorithm: HashAlgorithm,
    bytes: [u8; MAX_DIGEST_SIZE],
}

impl FileDigest {
    /// Makes a digest from raw bytes; `None` if the length does not match `algorithm`.
    pub fn new(algorithm: HashAlgorithm, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != algorithm.digest_size() {
            return None;
        }
        let mut b = [0u8; MAX_DIGEST_SIZE];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(FileDigest {
            algorithm,
            bytes: b,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The raw digest bytes (32 or 64).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.digest_size()]
    }

    /// Lowercase hex of the digest bytes (fsverity's `--compact` form).
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// The `struct fsverity_digest` the `FS_IOC_MEASURE_VERITY` ioctl returns:
    /// `le16 algorithm`, `le16 size`, then the digest.
    pub fn measure_reply(&self) -> Vec<u8> {
        let d = self.as_bytes();
        let mut out = Vec::with_capacity(4 + d.len());
        out.extend_from_slice(&u16::from(self.algorithm.id()).to_le_bytes());
        // Digest sizes are 32 or 64.
        out.extend_from_slice(&(d.len() as u16).to_le_bytes());
        out.extend_from_slice(d);
        out
    }

    /// The built-in signature message `struct fsverity_formatted_digest`:
    /// `"FSVerity"`, `le16 algorithm`, `le16 size`, digest (spec §2.3).
    pub fn formatted_for_signature(&self) -> Vec<u8> {
        let mut out = b"FSVerity".to_vec();
        out.extend_from_slice(&self.measure_reply());
        out
    }
}

impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.to_hex())
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for FileDigest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex_part) = s
            .split_once(':')
            .ok_or_else(|| DigestParseError::MissingAlgorithm(s.to_owned()))?;
        let algorithm: HashAlgorithm = alg
            .parse()
            .map_err(|_| DigestParseError::UnknownAlgorithm(alg.to_owned()))?;
        let size = algorithm.digest_size();
        let mut bytes = [0u8; MAX_DIGEST_SIZE];
        // Decoded into a fixed buffer, no allocation: a manifest parses one
        // digest per file. Fails unless there are exactly 2 * size digits.
        hex::decode_to_slice(hex_part, &mut bytes[..size])
            .map_err(|_| DigestParseError::BadHex(s.to_owned(), 2 * size))?;
        Ok(FileDigest { algorithm, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95";

    #[test]
    fn round_trips_printable_form() {
        let d: FileDigest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), HashAlgorithm::Sha256);
        assert_eq!(d.as_bytes().len(), 32);
        let upper = EMPTY.to_uppercase().replacen("SHA256", "sha256", 1);
        assert_eq!(upper.parse::<FileDigest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "3d248ca5",
            "sha1:00",
            "sha256:",
            "sha256:zz",
            "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af9g",
            "sha256:+d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
            "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af",
            "sha512:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
        ] {
            assert!(bad.parse::<FileDigest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn measure_reply_layout() {
        let d: FileDigest = EMPTY.parse().unwrap();
        let r = d.measure_reply();
        assert_eq!(&r[..4], &[1, 0, 32, 0]);
        assert_eq!(&r[4..], d.as_bytes());
        let s = d.formatted_for_signature();
        assert_eq!(&s[..12], b"FSVerity\x01\x00\x20\x00");
    }
}

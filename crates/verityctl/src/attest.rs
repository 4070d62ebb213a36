// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl attest`: record a share's manifest digest where attestation
//! verifiers look (docs/attestation.md).
//!
//! The measurement is one event in the Confidential Containers Attestation
//! Agent event-log (AAEL) form: the text `DOMAIN OPERATION CONTENT`, wrapped
//! as a TCG `EV_EVENT_TAG` tagged event with id `AAEL`; the register is
//! extended with the hash of that tagged event. It can go to TDX RTMR3
//! (Linux 6.16+ sysfs), a vTPM PCR (tpm2-tools), an AAEL file, and/or stdout.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use sha2::{Digest, Sha256, Sha384};
use verity_merkle::{FileDigest, HashAlgorithm};

/// Event domain of verityfsd measurements.
pub const EVENT_DOMAIN: &str = "verityfsd";
/// Event operation: a virtio-fs share's manifest digest.
pub const EVENT_OPERATION: &str = "VirtiofsManifest";
/// TCG event type `EV_EVENT_TAG`.
const EV_EVENT_TAG: u32 = 0x6;
/// Tagged-event id, ASCII `AAEL`.
const AAEL_TAGGED_EVENT_ID: u32 = 0x4141_454c;
/// TCG algorithm id of SHA-384.
const TPM_ALG_SHA384: u16 = 0x000c;
/// Where Linux 6.16+ exposes the TDX measurement registers.
const TDX_MEASUREMENTS: &str = "/sys/class/misc/tdx_guest/measurements";

/// Arguments of `verityctl attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The manifest digest to record (`sha256:HEX`, or 64 hex digits).
    #[arg(long, value_name = "DIGEST")]
    manifest_digest: String,
    /// The virtio-fs tag of the share, recorded in the event.
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Extend this TDX runtime measurement register (3 is the one for runtime use).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=3))]
    rtmr: Option<u8>,
    /// Extend this vTPM PCR with the event's SHA-256 (23 is for applications).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=23))]
    pcr: Option<u8>,
    /// Append the event, in the Attestation Agent's TCG2 event-log format, to FILE.
    #[arg(long, value_name = "FILE")]
    aa_eventlog: Option<PathBuf>,
    /// Print the event and its digests as JSON.
    #[arg(long)]
    print: bool,
    /// Directory of the TDX measurement registers (default: the kernel's sysfs path).
    #[arg(long, value_name = "DIR", hide = true, default_value = TDX_MEASUREMENTS)]
    tdx_measurements_dir: PathBuf,
}

/// Errors of `verityctl attest`.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The digest argument is malformed.
    #[error("--manifest-digest {0:?} is not sha256:HEX or 64 hex digits")]
    BadDigest(String),
    /// The tag has characters that would break the event text.
    #[error("--tag {0:?} must be 1 to 36 printable ASCII characters")]
    BadTag(String),
    /// No destination was given.
    #[error("nothing to do: give --rtmr, --pcr, --aa-eventlog and/or --print")]
    NoDestination,
    /// The TDX interface is missing.
    #[error("no TDX RTMR interface at {0} (needs a TDX guest running Linux 6.16 or later with CONFIG_TSM_MEASUREMENTS)")]
    NoTdx(PathBuf),
    /// Writing the RTMR failed.
    #[error("extending {path} failed")]
    ExtendRtmr {
        /// The register file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The vTPM or tpm2-tools is missing.
    #[error("no vTPM: {0} (needs /dev/tpmrm0 and tpm2-tools' tpm2_pcrextend)")]
    NoTpm(String),
    /// tpm2_pcrextend failed.
    #[error("tpm2_pcrextend failed: {0}")]
    ExtendPcr(String),
    /// Writing the event log failed.
    #[error("cannot append to the event log '{path}'")]
    EventLog {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl AttestError {
    /// Process exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AttestError::BadDigest(_) | AttestError::BadTag(_) | AttestError::NoDestination => 2,
            _ => 1,
        }
    }
}

/// One measurement event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// RFC 8785 canonical JSON content.
    pub content: String,
}

impl Event {
    /// The event for a manifest digest and optional tag.
    pub fn new(manifest: &FileDigest, tag: Option<&str>) -> Self {
        // A BTreeMap sorts the keys; the values are plain ASCII strings, for
        // which serde_json's compact output is the RFC 8785 canonical form.
        let mut m = BTreeMap::new();
        m.insert("manifest", manifest.to_string());
        if let Some(t) = tag {
            m.insert("tag", t.to_owned());
        }
        Event {
            content: serde_json::to_string(&m).expect("a map of strings serialises"),
        }
    }

    /// The AAEL text `DOMAIN OPERATION CONTENT`.
    pub fn text(&self) -> String {
        format!("{EVENT_DOMAIN} {EVENT_OPERATION} {}", self.content)
    }

    /// The TCG tagged event: `le32 'AAEL'`, `le32 length`, text.
    pub fn tagged(&self) -> Vec<u8> {
        let text = self.text();
        let mut out = Vec::with_capacity(8 + text.len());
        out.extend_from_slice(&AAEL_TAGGED_EVENT_ID.to_le_bytes());
        // The text is a few hundred bytes at most.
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// SHA-384 of the tagged event: what an RTMR is extended with.
    pub fn sha384(&self) -> [u8; 48] {
        Sha384::digest(self.tagged()).into()
    }

    /// SHA-256 of the tagged event: what a SHA-256 PCR bank is extended with.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.tagged()).into()
    }

    /// A TCG2 (crypto-agile) event-log entry for measurement register `mr`.
    pub fn tcg2_entry(&self, mr: u32) -> Vec<u8> {
        let data = self.tagged();
        let mut out = Vec::new();
        out.extend_from_slice(&mr.to_le_bytes());
        out.extend_from_slice(&EV_EVENT_TAG.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&TPM_ALG_SHA384.to_le_bytes());
        out.extend_from_slice(&self.sha384());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        out
    }
}

/// Parses `sha256:HEX` or bare SHA-256 hex.
pub fn parse_manifest_digest(s: &str) -> Result<FileDigest, AttestError> {
    let parsed = if s.contains(':') {
        s.parse::<FileDigest>().ok()
    } else {
        hex::decode(s)
            .ok()
            .and_then(|b| FileDigest::new(HashAlgorithm::Sha256, &b))
    };
    parsed.ok_or_else(|| AttestError::BadDigest(s.to_owned()))
}

fn extend_rtmr(dir: &Path, index: u8, digest: &[u8; 48]) -> Result<(), AttestError> {
    if !dir.is_dir() {
        return Err(AttestError::NoTdx(dir.to_owned()));
    }
    let path = dir.join(format!("rtmr{index}:sha384"));
    // The kernel requires one 48-byte write at offset 0.
    let r = OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(digest));
    r.map_err(|source| AttestError::ExtendRtmr { path, source })
}

fn extend_pcr(index: u8, digest: &[u8; 32]) -> Result<(), AttestError> {
    if !Path::new("/dev/tpmrm0").exists() {
        return Err(AttestError::NoTpm("/dev/tpmrm0 does not exist".to_owned()));
    }
    let spec = format!("{index}:sha256={}", hex::encode(digest));
    let out = Command::new("tpm2_pcrextend")
        .arg(&spec)
        .output()
        .map_err(|e| AttestError::NoTpm(format!("cannot run tpm2_pcrextend ({e})")))?;
    if !out.status.success() {
        return Err(AttestError::ExtendPcr(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// Runs `verityctl attest`.
pub fn run(args: &AttestArgs) -> Result<(), AttestError> {
    let digest = parse_manifest_digest(&args.manifest_digest)?;
    if let Some(t) = &args.tag {
        if t.is_empty() || t.len() > 36 || !t.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(AttestError::BadTag(t.clone()));
        }
    }
    if args.rtmr.is_none() && args.pcr.is_none() && args.aa_eventlog.is_none() && !args.print {
        return Err(AttestError::NoDestination);
    }
    let event = Event::new(&digest, args.tag.as_deref());
    // Measurement register index in the CC convention: 1 + RTMR index (MRTD is 0).
    let mr = args
        .rtmr
        .map(|r| u32::from(r) + 1)
        .or(args.pcr.map(u32::from))
        .unwrap_or(4);
    if let Some(path) = &args.aa_eventlog {
        let r = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&event.tcg2_entry(mr)));
        r.map_err(|source| AttestError::EventLog {
            path: path.clone(),
            source,
        })?;
    }
    if let Some(r) = args.rtmr {
        extend_rtmr(&args.tdx_measurements_dir, r, &event.sha384())?;
    }
    if let Some(p) = args.pcr {
        extend_pcr(p, &event.sha256())?;
    }
    if args.print {
        let out = serde_json::json!({
            "domain": EVENT_DOMAIN,
            "operation": EVENT_OPERATION,
            "content": event.content,
            "aael": event.text(),
            "register": mr,
            "sha384": hex::encode(event.sha384()),
            "sha256": hex::encode(event.sha256()),
        });
        let _ = writeln!(io::stdout().lock(), "{out}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95";

    #[test]
    fn event_text_and_encoding() {
        let e = Event::new(&D.parse().unwrap(), Some("rootfs"));
        assert_eq!(
            e.content,
            format!("{{\"manifest\":\"{D}\",\"tag\":\"rootfs\"}}")
        );
        assert_eq!(
            e.text(),
            format!("verityfsd VirtiofsManifest {}", e.content)
        );
        let t = e.tagged();
        assert_eq!(&t[..4], b"LEAA");
        assert_eq!(
            u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize,
            t.len() - 8
        );
        let entry = e.tcg2_entry(4);
        assert_eq!(&entry[..12], &[4, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&entry[12..14], &[0x0c, 0]);
        assert_eq!(&entry[14..62], &e.sha384());
        assert_eq!(&entry[66..], &t[..]);
    }

    #[test]
    fn digest_forms() {
        let a = parse_manifest_digest(D).unwrap();
        let b = parse_manifest_digest(&D[7..]).unwrap();
        assert_eq!(a, b);
        assert!(parse_manifest_digest("abc").is_err());
        assert!(parse_manifest_digest("md5:00").is_err());
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl attest`: record a share's manifest digest where attestation
//! verifiers look (docs/attestation.md).
//!
//! The measurement is one event in the Confidential Containers Attestation
//! Agent event-log (AAEL) form: the text `DOMAIN OPERATION CONTENT`, wrapped
//! as a TCG `EV_EVENT_TAG` tagged event with id `AAEL`; the register is
//! extended with the hash of that tagged event. It can go to TDX RTMR3
//! (Linux 6.16+ sysfs), a vTPM PCR (tpm2-tools), an AAEL file, and/or stdout.
//!
//! The tool keeps its own TCG2 event log. Before touching a register it reads
//! the log back: an event already in the log for that register is not
//! recorded twice, and for an RTMR the log is replayed (`new = SHA-384(old ||
//! digest)` from zero) and compared with the register, so an extend the log
//! does not know about is reported and nothing is extended.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
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
/// TCG algorithm id of SHA-256.
const TPM_ALG_SHA256: u16 = 0x000b;
/// TCG algorithm id of SHA-384.
const TPM_ALG_SHA384: u16 = 0x000c;
/// Size of an RTMR (SHA-384).
const RTMR_SIZE: usize = 48;
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
    /// Extend this TDX runtime measurement register (3 is the one for runtime use);
    /// needs --aa-eventlog, which is replayed against the register first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=3), requires = "aa_eventlog")]
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
    /// Reading the register failed, or it is not 48 bytes.
    #[error("cannot read the current value of {path} (expected {RTMR_SIZE} bytes)")]
    ReadRtmr {
        /// The register file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The event log cannot be read or is not a log this tool writes.
    #[error("the event log '{path}' cannot be replayed: {reason}")]
    BadEventLog {
        /// The log.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The register holds something other than the replay of the log.
    #[error(
        "the event log '{log}' does not replay to {register}: the log gives {replayed}, the \
         register holds {current}; something else extended the register or the log is \
         incomplete, so nothing was recorded (give each register one writer with one log)"
    )]
    ReplayMismatch {
        /// The log.
        log: PathBuf,
        /// The register file.
        register: PathBuf,
        /// Hex of the replayed value.
        replayed: String,
        /// Hex of the register's value.
        current: String,
    },
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

/// One entry of a TCG2 event log as this tool writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Measurement register index.
    pub mr: u32,
    /// The SHA-384 digest the register was extended with, if the entry has one.
    pub sha384: Option<[u8; RTMR_SIZE]>,
    /// The event data (the tagged event).
    pub data: Vec<u8>,
}

/// Takes `n` bytes off the front of `b`.
fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("an entry is cut short".to_owned());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn take_u32(b: &mut &[u8]) -> Result<u32, String> {
    let v = take(b, 4)?;
    Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

/// Parses a log of TCG2 crypto-agile entries (SHA-256 and SHA-384 digests).
/// Every SHA-384 digest must be the hash of its entry's data: the replay uses
/// only what the data proves.
pub fn parse_log(mut b: &[u8]) -> Result<Vec<LogEntry>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let mr = take_u32(&mut b)?;
        let _event_type = take_u32(&mut b)?;
        let count = take_u32(&mut b)?;
        let mut sha384: Option<[u8; RTMR_SIZE]> = None;
        for _ in 0..count {
            let alg = take(&mut b, 2)?;
            match u16::from_le_bytes([alg[0], alg[1]]) {
                TPM_ALG_SHA256 => {
                    take(&mut b, 32)?;
                }
                TPM_ALG_SHA384 => {
                    let d = take(&mut b, RTMR_SIZE)?;
                    sha384 = Some(d.try_into().expect("48 bytes"));
                }
                other => {
                    return Err(format!(
                        "entry {} has unknown digest algorithm {other:#06x}",
                        out.len()
                    ))
                }
            }
        }
        let len = take_u32(&mut b)? as usize;
        let data = take(&mut b, len)?.to_vec();
        if let Some(d) = sha384 {
            if Sha384::digest(&data)[..] != d[..] {
                return Err(format!(
                    "entry {}: its SHA-384 digest is not the hash of its data",
                    out.len()
                ));
            }
        }
        out.push(LogEntry { mr, sha384, data });
    }
    Ok(out)
}

/// The value an RTMR reaches from zero after the log's SHA-384 extends of register `mr`.
pub fn replay_rtmr(entries: &[LogEntry], mr: u32) -> Result<[u8; RTMR_SIZE], String> {
    let mut value = [0u8; RTMR_SIZE];
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.mr == mr) {
        let d = e
            .sha384
            .ok_or_else(|| format!("entry {i} for register {mr} has no SHA-384 digest"))?;
        let mut h = Sha384::new();
        h.update(value);
        h.update(d);
        value = h.finalize().into();
    }
    Ok(value)
}

fn read_log(path: &Path) -> Result<Vec<LogEntry>, AttestError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(AttestError::BadEventLog {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        }
    };
    parse_log(&bytes).map_err(|reason| AttestError::BadEventLog {
        path: path.to_owned(),
        reason,
    })
}

/// Checks that the log replays to the current value of RTMR `index`.
fn check_rtmr_replay(
    dir: &Path,
    index: u8,
    log: &Path,
    entries: &[LogEntry],
) -> Result<(), AttestError> {
    let register = rtmr_register(dir, index)?;
    let current = fs::read(&register)
        .and_then(|v| {
            if v.len() == RTMR_SIZE {
                Ok(v)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("read {} bytes", v.len()),
                ))
            }
        })
        .map_err(|source| AttestError::ReadRtmr {
            path: register.clone(),
            source,
        })?;
    let replayed =
        replay_rtmr(entries, u32::from(index) + 1).map_err(|reason| AttestError::BadEventLog {
            path: log.to_owned(),
            reason,
        })?;
    if current[..] != replayed[..] {
        return Err(AttestError::ReplayMismatch {
            log: log.to_owned(),
            register,
            replayed: hex::encode(replayed),
            current: hex::encode(current),
        });
    }
    Ok(())
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

/// The sysfs file of RTMR `index` in the measurements directory `dir`.
fn rtmr_register(dir: &Path, index: u8) -> Result<PathBuf, AttestError> {
    if !dir.is_dir() {
        return Err(AttestError::NoTdx(dir.to_owned()));
    }
    Ok(dir.join(format!("rtmr{index}:sha384")))
}

fn extend_rtmr(dir: &Path, index: u8, digest: &[u8; 48]) -> Result<(), AttestError> {
    let path = rtmr_register(dir, index)?;
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
    // The log is read (and for an RTMR replayed) before anything is recorded.
    let entries = match &args.aa_eventlog {
        Some(path) => read_log(path)?,
        None => Vec::new(),
    };
    if let (Some(r), Some(log)) = (args.rtmr, &args.aa_eventlog) {
        check_rtmr_replay(&args.tdx_measurements_dir, r, log, &entries)?;
    }
    let tagged = event.tagged();
    let recorded = entries.iter().any(|e| e.mr == mr && e.data == tagged);
    if recorded {
        eprintln!(
            "verityctl: this event is already in the event log for register {mr}; \
             not recording it again"
        );
    } else {
        record(args, &event, mr)?;
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

/// Appends the event to the log, then extends the registers.
fn record(args: &AttestArgs, event: &Event, mr: u32) -> Result<(), AttestError> {
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
    fn log_parses_back_and_replays() {
        let a = Event::new(&D.parse().unwrap(), Some("a"));
        let b = Event::new(&D.parse().unwrap(), Some("b"));
        let mut log = a.tcg2_entry(4);
        log.extend(b.tcg2_entry(24));
        log.extend(b.tcg2_entry(4));
        let entries = parse_log(&log).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!((entries[1].mr, &entries[1].data), (24, &b.tagged()));
        let step = |v: [u8; 48], d: [u8; 48]| -> [u8; 48] {
            let mut x = v.to_vec();
            x.extend_from_slice(&d);
            Sha384::digest(&x).into()
        };
        let want = step(step([0; 48], a.sha384()), b.sha384());
        assert_eq!(replay_rtmr(&entries, 4).unwrap(), want);
        assert_eq!(
            replay_rtmr(&entries, 24).unwrap(),
            step([0; 48], b.sha384())
        );
        assert_eq!(replay_rtmr(&entries, 2).unwrap(), [0; 48]);
        assert!(parse_log(&[]).unwrap().is_empty());
        // Cut anywhere inside an entry: refused.
        for cut in [3, 20, 70, log.len() - 1] {
            assert!(parse_log(&log[..cut]).is_err(), "cut at {cut}");
        }
        // An unknown digest algorithm: refused.
        let mut odd = a.tcg2_entry(4);
        odd[12] = 0x12;
        assert!(parse_log(&odd)
            .unwrap_err()
            .contains("unknown digest algorithm"));
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

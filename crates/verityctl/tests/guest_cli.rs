// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl measure` and `verityctl attest` on the host (the real guest
//! cases run in scripts/guest).

use std::process::{Command, Output};

use sha2::{Digest, Sha384};

const D: &str = "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95";

fn verityctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verityctl"))
        .args(args)
        .output()
        .expect("run verityctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn measure_falls_back_to_the_digest_xattr() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file");
    std::fs::write(&f, b"data").unwrap();
    let path = f.to_str().unwrap();
    // No fs-verity here and no attribute: a clear error naming both.
    let o = verityctl(&["measure", path]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("has no fs-verity digest") && err.contains("FS_IOC_MEASURE_VERITY failed"),
        "{err}"
    );
    assert!(err.contains("no user.verity.digest attribute"), "{err}");
    // With the attribute (as verityfsd serves it), the digest is printed.
    if xattr::set(&f, "user.verity.digest", D.as_bytes()).is_err() {
        eprintln!("this filesystem has no user xattrs: skipping the fallback case");
        return;
    }
    let o = verityctl(&["measure", path]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{D} {path}\n"));
    let o = verityctl(&["measure", "--json", path]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["digest"], D);
    assert_eq!(v[0]["source"], "xattr");
    assert_eq!(v[0]["path"], path);
    assert_eq!(
        verityctl(&["measure", "--ioctl-only", path]).status.code(),
        Some(1)
    );
    xattr::set(&f, "user.verity.digest", b"garbage").unwrap();
    let o = verityctl(&["measure", path]);
    assert!(text(&o.stderr).contains("is not a digest"));
}

#[test]
fn attest_print_emits_a_well_formed_event() {
    let o = verityctl(&[
        "attest",
        "--manifest-digest",
        D,
        "--tag",
        "rootfs",
        "--print",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["domain"], "verityfsd");
    assert_eq!(v["operation"], "VirtiofsManifest");
    let content: serde_json::Value = serde_json::from_str(v["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["manifest"], D);
    assert_eq!(content["tag"], "rootfs");
    assert_eq!(
        v["aael"],
        format!(
            "verityfsd VirtiofsManifest {}",
            v["content"].as_str().unwrap()
        )
    );
    assert_eq!(v["sha384"].as_str().unwrap().len(), 96);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    // The bare-hex form names the same digest and gives the same event.
    let o2 = verityctl(&[
        "attest",
        "--manifest-digest",
        &D[7..],
        "--tag",
        "rootfs",
        "--print",
    ]);
    assert_eq!(o.stdout, o2.stdout);
}

/// A fake TDX measurement directory whose `rtmr3:sha384` holds a register value.
/// A plain file cannot extend on write as the kernel does, so after each run
/// [`FakeRtmr::settle`] turns what the tool wrote into the extended value.
struct FakeRtmr {
    path: std::path::PathBuf,
    value: Vec<u8>,
}

impl FakeRtmr {
    fn new(dir: &std::path::Path) -> FakeRtmr {
        std::fs::create_dir(dir).unwrap();
        let r = FakeRtmr {
            path: dir.join("rtmr3:sha384"),
            value: vec![0; 48],
        };
        std::fs::write(&r.path, &r.value).unwrap();
        r
    }

    /// Extends the register with `digest` as the kernel does.
    fn extend(&mut self, digest: &[u8]) {
        self.value = extended(&self.value, digest);
        std::fs::write(&self.path, &self.value).unwrap();
    }

    /// Applies what the tool wrote, if anything; returns the written digest.
    fn settle(&mut self) -> Option<Vec<u8>> {
        let now = std::fs::read(&self.path).unwrap();
        if now == self.value {
            return None;
        }
        self.extend(&now);
        Some(now)
    }
}

/// The SHA-384 digests of the log entries for `mr`, parsed independently of
/// the tool: `mr`, type, count 1, alg 0x000c, 48 bytes, length, data.
fn logged_digests(log: &[u8], mr: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = log;
    while !b.is_empty() {
        let reg = u32::from_le_bytes(b[..4].try_into().unwrap());
        assert_eq!(&b[4..14], &[6, 0, 0, 0, 1, 0, 0, 0, 0x0c, 0]);
        let digest = b[14..62].to_vec();
        let len = u32::from_le_bytes(b[62..66].try_into().unwrap()) as usize;
        assert_eq!(Sha384::digest(&b[66..66 + len]).to_vec(), digest);
        if reg == mr {
            out.push(digest);
        }
        b = &b[66 + len..];
    }
    out
}

/// A register of value `value` extended with `digest`: SHA-384(value || digest).
fn extended(value: &[u8], digest: &[u8]) -> Vec<u8> {
    Sha384::new()
        .chain_update(value)
        .chain_update(digest)
        .finalize()
        .to_vec()
}

/// SHA-384 replay from zero.
fn replay(digests: &[Vec<u8>]) -> Vec<u8> {
    digests.iter().fold(vec![0; 48], |v, d| extended(&v, d))
}

fn attest_rtmr(mr: &std::path::Path, log: &std::path::Path, tag: &str) -> Output {
    verityctl(&[
        "attest",
        "--manifest-digest",
        D,
        "--tag",
        tag,
        "--rtmr",
        "3",
        "--aa-eventlog",
        log.to_str().unwrap(),
        "--tdx-measurements-dir",
        mr.to_str().unwrap(),
        "--print",
    ])
}

/// security.md case 61: a second run for the same event finds it in the log
/// and does not extend again; every state of the register equals the replay
/// of the log, computed here.
#[test]
fn attest_extends_rtmr_once_and_the_log_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mr = dir.path().join("measurements");
    let mut reg = FakeRtmr::new(&mr);
    let log = dir.path().join("eventlog");
    let o = attest_rtmr(&mr, &log, "rootfs");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let written = reg.settle().expect("the register was extended");
    assert_eq!(hex::encode(&written), v["sha384"].as_str().unwrap());
    let entry = std::fs::read(&log).unwrap();
    assert_eq!(
        u32::from_le_bytes(entry[..4].try_into().unwrap()),
        4,
        "RTMR3 is register 4"
    );
    assert!(text(&entry).ends_with(v["aael"].as_str().unwrap()));
    assert_eq!(replay(&logged_digests(&entry, 4)), reg.value);
    // The tool runs again for the same event: nothing written, log unchanged.
    let o = attest_rtmr(&mr, &log, "rootfs");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("already in the event log"));
    assert_eq!(reg.settle(), None, "extended twice");
    assert_eq!(std::fs::read(&log).unwrap(), entry);
    // Another share is a second event: extended, logged, and the replay holds.
    let o = attest_rtmr(&mr, &log, "data");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(reg.settle().is_some());
    let both = std::fs::read(&log).unwrap();
    let digests = logged_digests(&both, 4);
    assert_eq!(digests.len(), 2);
    assert_eq!(replay(&digests), reg.value);
}

/// security.md case 62: an extend the log does not know about is detected;
/// the tool records nothing and does not report success.
#[test]
fn attest_refuses_when_the_register_does_not_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mr = dir.path().join("measurements");
    let mut reg = FakeRtmr::new(&mr);
    let log = dir.path().join("eventlog");
    assert!(attest_rtmr(&mr, &log, "rootfs").status.success());
    reg.settle().unwrap();
    let logged = std::fs::read(&log).unwrap();
    // Someone else extends RTMR3.
    reg.extend(&[0x42; 48]);
    for tag in ["data", "rootfs"] {
        let o = attest_rtmr(&mr, &log, tag);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        let err = text(&o.stderr);
        assert!(err.contains("does not replay"), "{err}");
        assert!(err.contains(&hex::encode(&reg.value)), "{err}");
        assert!(o.stdout.is_empty(), "reported: {}", text(&o.stdout));
        assert_eq!(reg.settle(), None, "extended despite the mismatch");
        assert_eq!(std::fs::read(&log).unwrap(), logged);
    }
    // A log entry whose digest is not the hash of its data is refused too.
    let mut forged = logged.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    std::fs::write(&log, &forged).unwrap();
    let o = attest_rtmr(&mr, &log, "data");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not the hash of its data"),
        "{}",
        text(&o.stderr)
    );
    // A register that is not 48 bytes is refused, not replayed against.
    std::fs::write(&log, &logged).unwrap();
    std::fs::write(&reg.path, b"").unwrap();
    let o = attest_rtmr(&mr, &log, "data");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("cannot read the current value"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn attest_names_missing_interfaces_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none");
    let o = verityctl(&[
        "attest",
        "--manifest-digest",
        D,
        "--rtmr",
        "3",
        "--aa-eventlog",
        dir.path().join("log").to_str().unwrap(),
        "--tdx-measurements-dir",
        none.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no TDX RTMR interface"),
        "{}",
        text(&o.stderr)
    );
    if !std::path::Path::new("/dev/tpmrm0").exists() {
        let o = verityctl(&["attest", "--manifest-digest", D, "--pcr", "23"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o.stderr).contains("no vTPM"), "{}", text(&o.stderr));
    }
    // An RTMR cannot be extended without the log that replays it.
    let o = verityctl(&["attest", "--manifest-digest", D, "--rtmr", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--aa-eventlog"),
        "{}",
        text(&o.stderr)
    );
    let o = verityctl(&["attest", "--manifest-digest", D]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("nothing to do"));
    let o = verityctl(&["attest", "--manifest-digest", "xyz", "--print"]);
    assert_eq!(o.status.code(), Some(2));
    let o = verityctl(&["attest", "--manifest-digest", D, "--tag", "a b", "--print"]);
    assert_eq!(o.status.code(), Some(2));
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl measure` and `verityctl attest` on the host (the real guest
//! cases run in scripts/guest).

use std::process::{Command, Output};

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

#[test]
fn attest_extends_rtmr_and_appends_the_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let mr = dir.path().join("measurements");
    std::fs::create_dir(&mr).unwrap();
    std::fs::write(mr.join("rtmr3:sha384"), b"").unwrap();
    let log = dir.path().join("eventlog");
    let args = [
        "attest",
        "--manifest-digest",
        D,
        "--rtmr",
        "3",
        "--aa-eventlog",
        log.to_str().unwrap(),
        "--tdx-measurements-dir",
        mr.to_str().unwrap(),
        "--print",
    ];
    let o = verityctl(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let written = std::fs::read(mr.join("rtmr3:sha384")).unwrap();
    assert_eq!(hex::encode(&written), v["sha384"].as_str().unwrap());
    let entry = std::fs::read(&log).unwrap();
    assert_eq!(
        u32::from_le_bytes(entry[..4].try_into().unwrap()),
        4,
        "RTMR3 is register 4"
    );
    assert!(text(&entry).ends_with(v["aael"].as_str().unwrap()));
    // A second run appends a second entry.
    assert!(verityctl(&args).status.success());
    assert_eq!(std::fs::read(&log).unwrap().len(), entry.len() * 2);
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
    let o = verityctl(&["attest", "--manifest-digest", D]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("nothing to do"));
    let o = verityctl(&["attest", "--manifest-digest", "xyz", "--print"]);
    assert_eq!(o.status.code(), Some(2));
    let o = verityctl(&["attest", "--manifest-digest", D, "--tag", "a b", "--print"]);
    assert_eq!(o.status.code(), Some(2));
}

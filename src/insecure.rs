// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Settings that weaken the daemon's isolation or the share's integrity. They are accepted
//! (virtiofsd accepts them too, and launchers such as Kata pass `--sandbox=none
//! --seccomp=none` when they confine the daemon themselves), but each one is logged as a
//! warning at startup so it is never silent.

use std::os::unix::fs::PermissionsExt;

use crate::config::DaemonConfig;
use crate::sandbox::SandboxMode;
use crate::seccomp::SeccompMode;

/// Write permission for others.
const OTHERS_WRITE: u32 = 0o002;
/// The sticky bit: only owners may remove or rename entries.
const STICKY: u32 = 0o1000;

/// One warning per weakening setting of `cfg`, in a stable order.
pub fn warnings(cfg: &DaemonConfig) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.sandbox == SandboxMode::None {
        out.push(
            "--sandbox=none: the daemon runs WITHOUT a sandbox and sees the whole host \
             filesystem; use it only when the launcher confines the daemon itself"
                .to_owned(),
        );
    }
    if cfg.seccomp == SeccompMode::None {
        out.push(
            "--seccomp=none: NO system-call filter is installed; use it only when the \
             launcher installs one"
                .to_owned(),
        );
    }
    let dir = &cfg.fs.shared_dir;
    // The directory was resolved and checked moments ago; if it cannot be read now, the
    // daemon fails at the next step with its own error.
    let mode = std::fs::metadata(dir).map_or(0, |m| m.permissions().mode());
    if mode & OTHERS_WRITE != 0 && mode & STICKY == 0 {
        let effect = if cfg.verity.is_some() {
            "may replace or remove entries: the manifest still refuses every changed byte \
             (EIO), but the guest can be denied its files"
        } else {
            "can change what the guest reads (the share is served WITHOUT verification)"
        };
        out.push(format!(
            "--shared-dir {} is writable by every local user and has no sticky bit: any \
             user {effect}; run `chmod o-w` on it",
            dir.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs;

    use clap::Parser;

    use super::*;
    use crate::cli::Args;

    fn config(dir: &std::path::Path, extra: &[&str]) -> DaemonConfig {
        let mut argv = vec![
            "verityfsd".to_owned(),
            "--socket-path=/nonexistent/s".to_owned(),
            format!("--shared-dir={}", dir.display()),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        DaemonConfig::try_from(Args::try_parse_from(argv).unwrap()).unwrap()
    }

    #[test]
    fn each_weakening_setting_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("share");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(warnings(&config(&dir, &[])).is_empty());
        let w = warnings(&config(&dir, &["--sandbox=none"]));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("--sandbox=none"), "{w:?}");
        let w = warnings(&config(&dir, &["--seccomp=none"]));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("--seccomp=none"), "{w:?}");
        // World-writable without the sticky bit: named; with it (like /tmp): not.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let w = warnings(&config(&dir, &["--sandbox=none", "--seccomp=none"]));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[2].contains("writable by every local user"), "{w:?}");
        assert!(w[2].contains("WITHOUT verification"), "{w:?}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(warnings(&config(&dir, &[])).is_empty());
        // Group-writable is the owner's choice: not named.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o775)).unwrap();
        assert!(warnings(&config(&dir, &[])).is_empty());
    }
}

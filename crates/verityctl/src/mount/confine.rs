// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Keeping the raw mount out of reach: checks on SOURCE and TARGET before mounting, detaching
//! SOURCE, and the privileges `verityctl mount` keeps while it serves host data.
//!
//! SOURCE is what a hostile host controls. Mounted `rw` or without `nosuid,nodev,noexec` it is
//! an attack surface of its own (a host-made setuid-root file runs with euid 0, a host-made
//! device node opens a guest device), whatever TARGET shows, so such a SOURCE is refused.
//! `--detach-source` goes further: once SOURCE's root (and a tree store under it) is open,
//! SOURCE is lazily unmounted, so no guest process can reach unverified bytes by path.
//!
//! After mounting, the process keeps `CAP_DAC_READ_SEARCH` (to read content whatever its host
//! mode) and, in the permitted set only, `CAP_SYS_ADMIN`, raised again just to unmount TARGET
//! at exit; no-new-privs is set. Everything else is dropped.

use std::io;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use rustix::fs::StatVfsMountFlags;

/// The mount flags SOURCE must have.
const REQUIRED: [(StatVfsMountFlags, &str); 4] = [
    (StatVfsMountFlags::RDONLY, "ro"),
    (StatVfsMountFlags::NOSUID, "nosuid"),
    (StatVfsMountFlags::NODEV, "nodev"),
    (StatVfsMountFlags::NOEXEC, "noexec"),
];

/// Why SOURCE or TARGET is refused, or privileges cannot be reduced.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// SOURCE's mount lacks some of `ro,nosuid,nodev,noexec`.
    #[error(
        "SOURCE {path:?} is mounted without {missing}: guest processes could use the raw, \
         unverified share there; mount it with `-o ro,nosuid,nodev,noexec` (or `mount -o \
         remount,ro,nosuid,nodev,noexec {path:?}`)"
    )]
    UnsafeSource {
        /// SOURCE.
        path: PathBuf,
        /// The missing options, comma-separated.
        missing: String,
    },
    /// TARGET is SOURCE or lies beneath it.
    #[error("TARGET {target:?} is inside SOURCE {raw:?}: mount the verified tree elsewhere")]
    TargetInSource {
        /// TARGET.
        target: PathBuf,
        /// SOURCE.
        raw: PathBuf,
    },
    /// statvfs or canonicalize failed.
    #[error("cannot inspect {path:?}")]
    Inspect {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Unmounting SOURCE (`--detach-source`) failed.
    #[error(
        "cannot detach SOURCE {path:?} (--detach-source needs a mount point and CAP_SYS_ADMIN)"
    )]
    Detach {
        /// SOURCE.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Remounting TARGET (`--allow-setuid`) failed.
    #[error("cannot remount TARGET {path:?} without nosuid (--allow-setuid)")]
    Remount {
        /// TARGET.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A capability set could not be changed.
    #[error("cannot reduce the {0} capability set: {1}")]
    Caps(&'static str, String),
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("cannot set no-new-privileges")]
    NoNewPrivs(#[source] io::Error),
}

fn inspect(path: &Path) -> impl Fn(io::Error) -> ConfineError + '_ {
    move |source| ConfineError::Inspect {
        path: path.to_owned(),
        source,
    }
}

/// The options of `flags` that SOURCE lacks (empty when it is safe).
fn missing_options(flags: StatVfsMountFlags) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .filter(|(f, _)| !flags.contains(*f))
        .map(|(_, name)| *name)
        .collect()
}

/// Refuses a SOURCE not mounted `ro,nosuid,nodev,noexec` and a TARGET inside SOURCE.
pub fn check_paths(source: &Path, target: &Path) -> Result<(), ConfineError> {
    let st = rustix::fs::statvfs(source).map_err(|e| inspect(source)(e.into()))?;
    let missing = missing_options(st.f_flag);
    if !missing.is_empty() {
        return Err(ConfineError::UnsafeSource {
            path: source.to_owned(),
            missing: missing.join(","),
        });
    }
    let s = source.canonicalize().map_err(inspect(source))?;
    let t = target.canonicalize().map_err(inspect(target))?;
    if t.starts_with(&s) {
        return Err(ConfineError::TargetInSource {
            target: target.to_owned(),
            raw: source.to_owned(),
        });
    }
    Ok(())
}

/// Lazily unmounts SOURCE (`umount2(MNT_DETACH)`): descriptors opened beneath it stay usable,
/// paths stop reaching it.
pub fn detach_source(source: &Path) -> Result<(), ConfineError> {
    rustix::mount::unmount(source, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
        ConfineError::Detach {
            path: source.to_owned(),
            source: e.into(),
        }
    })
}

/// Remounts TARGET without `nosuid` (`--allow-setuid`): set-id bits the manifest records take
/// effect there; TARGET stays read-only, `nodev` and `noatime`.
pub fn allow_setuid(target: &Path) -> Result<(), ConfineError> {
    use rustix::mount::MountFlags;
    let flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOATIME;
    rustix::mount::mount_remount(target, flags, "").map_err(|e| ConfineError::Remount {
        path: target.to_owned(),
        source: e.into(),
    })
}

fn caps_err(set: &'static str) -> impl Fn(caps::errors::CapsError) -> ConfineError {
    move |e| ConfineError::Caps(set, e.to_string())
}

/// Reduces the capabilities to `CAP_DAC_READ_SEARCH` (effective) plus `CAP_SYS_ADMIN`
/// (permitted only, for [`raise_for_unmount`]) and sets no-new-privs. Call it before the
/// serving threads are spawned: capabilities are per thread.
pub fn drop_privileges() -> Result<(), ConfineError> {
    let effective: CapsHashSet = [Capability::CAP_DAC_READ_SEARCH].into_iter().collect();
    let mut permitted = effective.clone();
    permitted.insert(Capability::CAP_SYS_ADMIN);
    let have = caps::read(None, CapSet::Permitted).map_err(caps_err("permitted"))?;
    let now = caps::read(None, CapSet::Effective).map_err(caps_err("effective"))?;
    if now.contains(&Capability::CAP_SETPCAP) {
        let bounding = caps::read(None, CapSet::Bounding).map_err(caps_err("bounding"))?;
        for cap in bounding.difference(&permitted) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(caps_err("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_err("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("inheritable"))?;
    let effective: CapsHashSet = effective.intersection(&have).copied().collect();
    let permitted: CapsHashSet = permitted.intersection(&have).copied().collect();
    caps::set(None, CapSet::Effective, &effective).map_err(caps_err("effective"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(caps_err("permitted"))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| ConfineError::NoNewPrivs(e.into()))
}

/// Raises `CAP_SYS_ADMIN` in the calling thread again to unmount TARGET (best effort: without
/// it the unmount reports its own error).
pub fn raise_for_unmount() {
    let _ = caps::raise(None, CapSet::Effective, Capability::CAP_SYS_ADMIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_option_is_named() {
        assert_eq!(
            missing_options(StatVfsMountFlags::empty()),
            ["ro", "nosuid", "nodev", "noexec"]
        );
        assert_eq!(
            missing_options(StatVfsMountFlags::RDONLY | StatVfsMountFlags::NODEV),
            ["nosuid", "noexec"]
        );
        let all = REQUIRED
            .iter()
            .fold(StatVfsMountFlags::empty(), |a, (f, _)| a | *f);
        assert!(missing_options(all).is_empty());
    }

    #[test]
    fn a_writable_source_and_a_target_inside_it_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A temporary directory is on a writable mount.
        let err = check_paths(dir.path(), dir.path()).unwrap_err().to_string();
        assert!(err.contains("mounted without ro"), "{err}");
        assert!(err.contains("-o ro,nosuid,nodev,noexec"), "{err}");
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Command-line arguments (clap derive lives only here).
//!
//! Option names and meanings follow upstream virtiofsd where the meaning is the same. There
//! is deliberately no `-o` compatibility syntax and no "last occurrence wins": giving an option
//! twice is an error (see CVE-2026-44210, where an appended `-o source=/` replaced the shared
//! directory).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use log::LevelFilter;

/// Guest caching policy (`--cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheArg {
    /// Close-to-open consistency, metadata valid for 1 s.
    Auto,
    /// Keep data and metadata cached in the guest (metadata valid for 1 day).
    Always,
    /// No caching in the guest.
    Never,
    /// Cache metadata (1 day), not file data.
    Metadata,
}

/// Sandbox mode (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxArg {
    /// New namespaces and a root holding only the shared directory (and /proc).
    Namespace,
    /// chroot into the shared directory (root only).
    Chroot,
    /// No sandbox.
    None,
}

/// Seccomp action for forbidden syscalls (`--seccomp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeccompArg {
    /// No seccomp filter.
    None,
    /// Kill the process.
    Kill,
    /// Log the syscall and allow it.
    Log,
    /// Send SIGSYS.
    Trap,
}

/// What a failed verification does (`--verity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerityArg {
    /// Refuse unverified bytes with EIO.
    Enforce,
    /// Log and count failures but serve anyway (diagnostics only).
    Audit,
}

/// Names missing from the manifest (`--unlisted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnlistedArg {
    /// They do not exist for the guest (ENOENT, hidden in listings).
    Deny,
    /// They are served unverified.
    Allow,
}

/// verityfsd: a read-only virtio-fs vhost-user backend.
#[derive(Debug, Parser)]
#[command(
    name = "verityfsd",
    version,
    about = "Read-only virtio-fs vhost-user backend (virtiofsd-compatible options)",
    override_usage = "verityfsd --shared-dir <SHARED_DIR> (--socket-path <SOCKET_PATH> | --fd <FD>) [OPTIONS]",
    arg_required_else_help = true
)]
pub struct Args {
    /// vhost-user UNIX socket to create and listen on (a <SOCKET_PATH>.pid file is kept next to it)
    #[arg(long, value_name = "SOCKET_PATH", conflicts_with = "fd")]
    pub socket_path: Option<PathBuf>,

    /// Already-listening vhost-user socket file descriptor to use instead of --socket-path
    #[arg(long, value_name = "FD")]
    pub fd: Option<i32>,

    /// Group (name or numeric id) given read/write access to the socket created by --socket-path
    #[arg(long, value_name = "GROUP", conflicts_with = "fd")]
    pub socket_group: Option<String>,

    /// Directory to share with the guest; it is always served read-only
    #[arg(long, value_name = "SHARED_DIR")]
    pub shared_dir: Option<PathBuf>,

    /// virtio-fs tag (at most 36 bytes) served in the device config space; most VMMs set their own
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Guest caching policy: auto (1 s metadata), always, never or metadata
    #[arg(long, value_enum, value_name = "CACHE", default_value = "auto")]
    pub cache: CacheArg,

    /// Worker threads serving requests concurrently; 0 serves them in the queue thread
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub thread_pool_size: usize,

    /// Accepted for compatibility: the share is always read-only
    #[arg(long)]
    pub readonly: bool,

    /// Manifest of the share (written by verityctl seal); every byte served is verified against
    /// it. Without it the share is served unverified
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Expected digest of the --manifest file (sha256:HEX); the daemon refuses to start if the
    /// manifest has another digest
    #[arg(long, value_name = "DIGEST", requires = "manifest")]
    pub manifest_digest: Option<String>,

    /// Directory of stored Merkle trees (verityctl seal --tree-store); trees missing from it are
    /// built from the files when they are first opened
    #[arg(long, value_name = "DIR", requires = "manifest")]
    pub tree_store: Option<PathBuf>,

    /// Content-addressed store (verityctl seal --objects): file bytes are found there by their
    /// fs-verity digest (ALG/XX/REST) instead of at their path in --shared-dir
    #[arg(long, value_name = "DIR", requires = "manifest")]
    pub objects: Option<PathBuf>,

    /// What a failed check does: enforce (EIO) or audit (log, serve anyway) [default: enforce]
    #[arg(long, value_enum, value_name = "MODE", requires = "manifest")]
    pub verity: Option<VerityArg>,

    /// Names missing from the manifest: deny (ENOENT) or allow (served unverified)
    /// [default: deny]
    #[arg(long, value_enum, value_name = "POLICY", requires = "manifest")]
    pub unlisted: Option<UnlistedArg>,

    /// Pass extended attributes through to the guest (read-only)
    #[arg(long)]
    pub xattr: bool,

    /// Accepted for compatibility (the default); submounts are not announced separately yet
    #[arg(long, conflicts_with = "no_announce_submounts")]
    pub announce_submounts: bool,

    /// Do not announce submounts (currently the only behaviour)
    #[arg(long)]
    pub no_announce_submounts: bool,

    /// Log level: error, warn, info, debug, trace or off (RUST_LOG takes precedence if set)
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: LevelFilter,

    /// Log to syslog (/dev/log) instead of stderr
    #[arg(long)]
    pub syslog: bool,

    /// Open-file limit to set; 0 leaves it unchanged [default: min(1000000, fs.nr_open)]
    #[arg(long, value_name = "N")]
    pub rlimit_nofile: Option<u64>,

    /// Print the vhost-user backend capabilities as JSON (for libvirt) and exit
    #[arg(long)]
    pub print_capabilities: bool,

    /// Sandbox mode: namespace, chroot or none [default: namespace]
    #[arg(long, value_enum, value_name = "MODE")]
    pub sandbox: Option<SandboxArg>,

    /// Action for syscalls outside the seccomp allowlist: none, kill, log or trap
    /// [default: kill]
    #[arg(long, value_enum, value_name = "ACTION")]
    pub seccomp: Option<SeccompArg>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn repeated_security_options_are_refused() {
        for (a, b) in [
            ("--shared-dir=/a", "--shared-dir=/b"),
            ("--socket-path=/a", "--socket-path=/b"),
            ("--fd=3", "--fd=4"),
            ("--sandbox=none", "--sandbox=namespace"),
            ("--seccomp=none", "--seccomp=kill"),
            ("--manifest=/a", "--manifest=/b"),
            ("--manifest-digest=sha256:00", "--manifest-digest=sha256:11"),
            ("--tree-store=/a", "--tree-store=/b"),
            ("--verity=enforce", "--verity=audit"),
            ("--unlisted=deny", "--unlisted=allow"),
        ] {
            let res = Args::try_parse_from(["verityfsd", a, b]);
            assert!(res.is_err(), "{a} {b} was accepted");
        }
    }

    #[test]
    fn socket_path_and_fd_conflict() {
        let res =
            Args::try_parse_from(["verityfsd", "--socket-path=/s", "--fd=3", "--shared-dir=/"]);
        assert!(res.is_err());
    }

    #[test]
    fn verity_options_need_a_manifest() {
        for opt in [
            "--manifest-digest=sha256:00",
            "--tree-store=/t",
            "--verity=audit",
            "--unlisted=allow",
        ] {
            let res = Args::try_parse_from(["verityfsd", "--fd=3", "--shared-dir=/", opt]);
            assert!(res.is_err(), "{opt} was accepted without --manifest");
            let res = Args::try_parse_from([
                "verityfsd",
                "--fd=3",
                "--shared-dir=/",
                "--manifest=/m",
                opt,
            ]);
            assert!(res.is_ok(), "{opt} was refused with --manifest");
        }
    }

    #[test]
    fn no_compat_o_syntax() {
        assert!(Args::try_parse_from(["verityfsd", "-o", "source=/"]).is_err());
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Validated daemon configuration: `DaemonConfig` and `TryFrom<Args>`.
//!
//! All checks on user input happen here, so the rest of the daemon works on plain values.
//! Each error names the option and says how to fix it.

use std::fs;
use std::io;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::LevelFilter;
use verity_fs::{
    CacheMode, ContentDir, FsConfig, TreeStore, UnlistedPolicy, VerifyMode, VerityOptions,
};
use verity_manifest::{Manifest, ManifestError};
use verity_merkle::{FileDigest, HashAlgorithm};

use crate::cli::{Args, CacheArg, SandboxArg, SeccompArg, UnlistedArg, VerityArg};
use crate::sandbox::SandboxMode;
use crate::seccomp::SeccompMode;

/// Longest tag the virtio-fs config space holds (bytes, no terminating NUL needed).
pub const MAX_TAG_LEN: usize = 36;

/// Upper bound for `--thread-pool-size`; far above anything useful, it only catches typos.
pub const MAX_THREAD_POOL_SIZE: usize = 1024;

/// Where the vhost-user frontend connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenConfig {
    /// Create a socket at `path` (and `<path>.pid`), optionally owned by group `gid`.
    Socket {
        /// Socket path.
        path: PathBuf,
        /// Group given access to the socket.
        gid: Option<u32>,
    },
    /// Use an inherited, already-listening socket.
    Fd(RawFd),
}

/// What to do with the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitNofile {
    /// Raise it to min(1,000,000, fs.nr_open), like virtiofsd.
    Default,
    /// Leave it unchanged (`--rlimit-nofile=0`).
    Unchanged,
    /// Set it to this value.
    Set(u64),
}

/// Logging setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Level (RUST_LOG still takes precedence).
    pub level: LevelFilter,
    /// Log to syslog instead of stderr.
    pub syslog: bool,
}

/// A loaded, parsed (and, if pinned, digest-checked) manifest with its options.
#[derive(Debug, Clone)]
pub struct VerityConfig {
    /// The --manifest path as given.
    pub manifest_path: PathBuf,
    /// The parsed manifest.
    pub manifest: Arc<Manifest>,
    /// Enforce/audit, unlisted policy, tree store.
    pub options: VerityOptions,
    /// --objects: the content-addressed store, opened before the sandbox, and its path.
    pub objects: Option<(PathBuf, Arc<ContentDir>)>,
}

impl PartialEq for VerityConfig {
    fn eq(&self, other: &Self) -> bool {
        self.manifest_path == other.manifest_path
            && self.manifest.digest() == other.manifest.digest()
            && self.options == other.options
            && self.objects.as_ref().map(|o| &o.0) == other.objects.as_ref().map(|o| &o.0)
    }
}

impl Eq for VerityConfig {}

/// Validated configuration of one daemon run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Socket to serve.
    pub listen: ListenConfig,
    /// Filesystem layer configuration (canonical shared directory, cache, xattr).
    pub fs: FsConfig,
    /// The manifest to verify against (`None`: unverified read-only share).
    pub verity: Option<VerityConfig>,
    /// Tag served in the config space, if any.
    pub tag: Option<String>,
    /// Worker threads; 0 = process requests in the queue thread.
    pub thread_pool_size: usize,
    /// Logging.
    pub log: LogConfig,
    /// Open-file limit.
    pub rlimit_nofile: RlimitNofile,
    /// Sandbox mode (default namespace).
    pub sandbox: SandboxMode,
    /// Seccomp action for syscalls outside the allowlist (default kill).
    pub seccomp: SeccompMode,
}

/// Invalid command line or configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither --socket-path nor --fd.
    #[error("no vhost-user socket: pass --socket-path=PATH or --fd=FD")]
    MissingSocket,
    /// No --shared-dir.
    #[error("no shared directory: pass --shared-dir=DIR")]
    MissingSharedDir,
    /// --shared-dir does not exist or cannot be resolved.
    #[error(
        "--shared-dir {path:?} cannot be used; check that the directory exists and is accessible"
    )]
    SharedDirUnusable {
        /// The path as given.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// --shared-dir is not a directory.
    #[error("--shared-dir {0:?} is not a directory; pass a directory")]
    SharedDirNotDirectory(PathBuf),
    /// --shared-dir resolves to a non-UTF-8 path.
    #[error("--shared-dir {0:?} is not valid UTF-8; use a path with UTF-8 characters only")]
    SharedDirNotUtf8(PathBuf),
    /// --tag empty or too long.
    #[error("--tag {tag:?} is {len} bytes; it must be 1 to {MAX_TAG_LEN} bytes")]
    BadTag {
        /// The tag as given.
        tag: String,
        /// Its length in bytes.
        len: usize,
    },
    /// --fd negative.
    #[error("--fd={0} is not a file descriptor; pass the number of an inherited listening socket")]
    BadFd(RawFd),
    /// --socket-group unknown.
    #[error("--socket-group {0:?} is neither a numeric group id nor a group in /etc/group")]
    UnknownGroup(String),
    /// --thread-pool-size too large.
    #[error("--thread-pool-size={0} is too large; use at most {MAX_THREAD_POOL_SIZE}")]
    ThreadPoolTooLarge(usize),
    /// --manifest cannot be read.
    #[error("--manifest {path:?} cannot be read; check that the file exists and is readable")]
    ManifestUnreadable {
        /// The path as given.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// --manifest is not a valid manifest.
    #[error(
        "--manifest {path:?} is not a valid verityfsd manifest; write it with verityctl seal \
         and do not edit it"
    )]
    ManifestInvalid {
        /// The path as given.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: ManifestError,
    },
    /// --manifest-digest is malformed.
    #[error(
        "--manifest-digest {0:?} is not a manifest digest; pass sha256: followed by 64 \
         lowercase hex digits (as verityctl seal prints it)"
    )]
    BadManifestDigest(String),
    /// The manifest's digest differs from the pinned one.
    #[error(
        "--manifest {path:?} has digest {found}, but --manifest-digest pins {expected}; \
         refusing to serve a share whose manifest is not the expected one (pass the right \
         manifest, or the digest of this one if it is trusted)"
    )]
    ManifestDigestMismatch {
        /// The path as given.
        path: PathBuf,
        /// The pinned digest.
        expected: Box<FileDigest>,
        /// The manifest's digest.
        found: Box<FileDigest>,
    },
    /// --objects is not a readable directory.
    #[error("--objects {path:?} is not a readable directory; pass the directory verityctl seal --objects wrote")]
    ObjectsUnusable {
        /// The path as given.
        path: PathBuf,
    },
    /// --objects with a mode that serves host objects.
    #[error("--objects serves content by digest only: it cannot be combined with --verity=audit or --unlisted=allow")]
    ObjectsNeedEnforce,
    /// --tree-store is not a readable directory.
    #[error("--tree-store {path:?} is not a readable directory; pass the directory verityctl seal --tree-store wrote")]
    TreeStoreUnusable {
        /// The path as given.
        path: PathBuf,
    },
}

impl TryFrom<Args> for DaemonConfig {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let listen = match (args.socket_path, args.fd) {
            (Some(path), None) => ListenConfig::Socket {
                path,
                gid: args
                    .socket_group
                    .as_deref()
                    .map(resolve_group)
                    .transpose()?,
            },
            (None, Some(fd)) if fd >= 0 => ListenConfig::Fd(fd),
            (None, Some(fd)) => return Err(ConfigError::BadFd(fd)),
            // clap already refuses both together; keep the check total anyway.
            (Some(_), Some(_)) | (None, None) => return Err(ConfigError::MissingSocket),
        };

        let shared_dir = canonical_shared_dir(args.shared_dir)?;

        if let Some(tag) = &args.tag {
            if tag.is_empty() || tag.len() > MAX_TAG_LEN {
                return Err(ConfigError::BadTag {
                    tag: tag.clone(),
                    len: tag.len(),
                });
            }
        }

        if args.thread_pool_size > MAX_THREAD_POOL_SIZE {
            return Err(ConfigError::ThreadPoolTooLarge(args.thread_pool_size));
        }

        let sandbox = match args.sandbox.unwrap_or(SandboxArg::Namespace) {
            SandboxArg::Namespace => SandboxMode::Namespace,
            SandboxArg::Chroot => SandboxMode::Chroot,
            SandboxArg::None => SandboxMode::None,
        };
        let seccomp = match args.seccomp.unwrap_or(SeccompArg::Kill) {
            SeccompArg::Kill => SeccompMode::Kill,
            SeccompArg::Log => SeccompMode::Log,
            SeccompArg::Trap => SeccompMode::Trap,
            SeccompArg::None => SeccompMode::None,
        };

        let rlimit_nofile = match args.rlimit_nofile {
            None => RlimitNofile::Default,
            Some(0) => RlimitNofile::Unchanged,
            Some(n) => RlimitNofile::Set(n),
        };

        let verity = match &args.manifest {
            Some(path) => Some(load_verity(
                path,
                args.manifest_digest.as_deref(),
                args.tree_store.as_deref(),
                args.objects.as_deref(),
                args.verity,
                args.unlisted,
            )?),
            None => None,
        };

        Ok(DaemonConfig {
            listen,
            verity,
            fs: FsConfig {
                shared_dir,
                cache: cache_mode(args.cache),
                xattr: args.xattr,
            },
            tag: args.tag,
            thread_pool_size: args.thread_pool_size,
            log: LogConfig {
                level: args.log_level,
                syslog: args.syslog,
            },
            rlimit_nofile,
            sandbox,
            seccomp,
        })
    }
}

fn cache_mode(arg: CacheArg) -> CacheMode {
    match arg {
        CacheArg::Auto => CacheMode::Auto,
        CacheArg::Always => CacheMode::Always,
        CacheArg::Never => CacheMode::Never,
        CacheArg::Metadata => CacheMode::Metadata,
    }
}

/// Loads and checks `--manifest` and the options that go with it.
fn load_verity(
    path: &Path,
    pinned: Option<&str>,
    tree_store: Option<&Path>,
    objects: Option<&Path>,
    mode: Option<VerityArg>,
    unlisted: Option<UnlistedArg>,
) -> Result<VerityConfig, ConfigError> {
    let diagnostic =
        matches!(mode, Some(VerityArg::Audit)) || matches!(unlisted, Some(UnlistedArg::Allow));
    if objects.is_some() && diagnostic {
        return Err(ConfigError::ObjectsNeedEnforce);
    }
    // Parse the pin first: a typo must not be reported as a mismatch.
    let expected = pinned
        .map(|p| {
            p.parse::<FileDigest>()
                .ok()
                .filter(|d| d.algorithm() == HashAlgorithm::Sha256)
                .ok_or_else(|| ConfigError::BadManifestDigest(p.to_owned()))
        })
        .transpose()?;
    let bytes = fs::read(path).map_err(|source| ConfigError::ManifestUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let manifest = Manifest::parse(&bytes).map_err(|source| ConfigError::ManifestInvalid {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(expected) = expected {
        if *manifest.digest() != expected {
            return Err(ConfigError::ManifestDigestMismatch {
                path: path.to_path_buf(),
                expected: Box::new(expected),
                found: Box::new(*manifest.digest()),
            });
        }
    }
    // Opened now, before the sandbox hides the host's file tree.
    let tree_store = tree_store
        .map(|t| {
            TreeStore::open(t)
                .map(Arc::new)
                .map_err(|_| ConfigError::TreeStoreUnusable {
                    path: t.to_path_buf(),
                })
        })
        .transpose()?;
    let objects = objects
        .map(|o| {
            ContentDir::open_objects(o)
                .map(|dir| (o.to_path_buf(), Arc::new(dir)))
                .map_err(|_| ConfigError::ObjectsUnusable {
                    path: o.to_path_buf(),
                })
        })
        .transpose()?;
    Ok(VerityConfig {
        objects,
        manifest_path: path.to_path_buf(),
        manifest: Arc::new(manifest),
        options: VerityOptions {
            mode: match mode {
                None | Some(VerityArg::Enforce) => VerifyMode::Enforce,
                Some(VerityArg::Audit) => VerifyMode::Audit,
            },
            unlisted: match unlisted {
                None | Some(UnlistedArg::Deny) => UnlistedPolicy::Deny,
                Some(UnlistedArg::Allow) => UnlistedPolicy::Allow,
            },
            tree_store,
            ..VerityOptions::default()
        },
    })
}

/// Resolves symlinks in the shared directory: the passthrough layer opens the root with
/// `O_NOFOLLOW`, so a symlinked root would answer EIO to every request.
fn canonical_shared_dir(arg: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    let given = arg.ok_or(ConfigError::MissingSharedDir)?;
    let canonical = fs::canonicalize(&given).map_err(|source| ConfigError::SharedDirUnusable {
        path: given.clone(),
        source,
    })?;
    let meta = fs::metadata(&canonical).map_err(|source| ConfigError::SharedDirUnusable {
        path: given.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ConfigError::SharedDirNotDirectory(given));
    }
    if canonical.to_str().is_none() {
        return Err(ConfigError::SharedDirNotUtf8(canonical));
    }
    Ok(canonical)
}

/// Resolves a group name (from /etc/group) or a numeric gid.
fn resolve_group(group: &str) -> Result<u32, ConfigError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || ConfigError::UnknownGroup(group.to_owned());
    let table = fs::read_to_string("/etc/group").map_err(|_| unknown())?;
    group_id_from_table(&table, group).ok_or_else(unknown)
}

/// Looks `name` up in /etc/group-formatted `table` (`name:password:gid:members`).
fn group_id_from_table(table: &str, name: &str) -> Option<u32> {
    table.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<DaemonConfig, ConfigError> {
        let mut argv = vec!["verityfsd"];
        argv.extend_from_slice(args);
        DaemonConfig::try_from(Args::try_parse_from(argv).expect("clap accepts the line"))
    }

    #[test]
    fn kata_launch_line_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let shared = format!("--shared-dir={}", dir.path().display());
        let cfg = parse(&[
            "--syslog",
            "--cache=auto",
            &shared,
            "--fd=3",
            "--thread-pool-size=1",
            "--announce-submounts",
        ])
        .unwrap();
        assert_eq!(cfg.listen, ListenConfig::Fd(3));
        assert_eq!(cfg.fs.cache, CacheMode::Auto);
        assert_eq!(cfg.thread_pool_size, 1);
        assert!(cfg.log.syslog);
        assert_eq!(cfg.sandbox, SandboxMode::Namespace);
        assert_eq!(cfg.seccomp, SeccompMode::Kill);
        assert_eq!(cfg.rlimit_nofile, RlimitNofile::Default);
    }

    #[test]
    fn shared_dir_is_canonicalized() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let cfg = parse(&[
            "--socket-path=/nonexistent/s",
            &format!("--shared-dir={}", link.display()),
            "--sandbox=none",
            "--seccomp=none",
        ])
        .unwrap();
        assert_eq!(cfg.fs.shared_dir, fs::canonicalize(&real).unwrap());
        assert_eq!(cfg.sandbox, SandboxMode::None);
        assert_eq!(cfg.seccomp, SeccompMode::None);
    }

    #[test]
    fn missing_shared_dir_is_named() {
        let err = parse(&["--socket-path=/s", "--shared-dir=/does/not/exist"]).unwrap_err();
        assert!(matches!(err, ConfigError::SharedDirUnusable { .. }));
        assert!(err.to_string().contains("/does/not/exist"), "{err}");
        assert!(matches!(
            parse(&["--socket-path=/s"]).unwrap_err(),
            ConfigError::MissingSharedDir
        ));
    }

    #[test]
    fn shared_dir_must_be_a_directory() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = parse(&[
            "--socket-path=/s",
            &format!("--shared-dir={}", file.path().display()),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::SharedDirNotDirectory(_)));
    }

    #[test]
    fn socket_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse(&[&format!("--shared-dir={}", dir.path().display())]).unwrap_err();
        assert!(matches!(err, ConfigError::MissingSocket));
        let err =
            parse(&["--fd=-1", &format!("--shared-dir={}", dir.path().display())]).unwrap_err();
        assert!(matches!(err, ConfigError::BadFd(-1)));
    }

    #[test]
    fn tag_length_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let shared = format!("--shared-dir={}", dir.path().display());
        let ok = "t".repeat(MAX_TAG_LEN);
        let cfg = parse(&["--socket-path=/s", &shared, &format!("--tag={ok}")]).unwrap();
        assert_eq!(cfg.tag.as_deref(), Some(ok.as_str()));
        let long = format!("--tag={}", "t".repeat(MAX_TAG_LEN + 1));
        assert!(matches!(
            parse(&["--socket-path=/s", &shared, &long]).unwrap_err(),
            ConfigError::BadTag { len: 37, .. }
        ));
        assert!(matches!(
            parse(&["--socket-path=/s", &shared, "--tag="]).unwrap_err(),
            ConfigError::BadTag { len: 0, .. }
        ));
    }

    #[test]
    fn sandbox_and_seccomp_modes_map() {
        let dir = tempfile::tempdir().unwrap();
        let shared = format!("--shared-dir={}", dir.path().display());
        for (flag, mode) in [
            ("--sandbox=namespace", SandboxMode::Namespace),
            ("--sandbox=chroot", SandboxMode::Chroot),
            ("--sandbox=none", SandboxMode::None),
        ] {
            assert_eq!(
                parse(&["--socket-path=/s", &shared, flag]).unwrap().sandbox,
                mode
            );
        }
        for (flag, mode) in [
            ("--seccomp=kill", SeccompMode::Kill),
            ("--seccomp=log", SeccompMode::Log),
            ("--seccomp=trap", SeccompMode::Trap),
            ("--seccomp=none", SeccompMode::None),
        ] {
            assert_eq!(
                parse(&["--socket-path=/s", &shared, flag]).unwrap().seccomp,
                mode
            );
        }
    }

    #[test]
    fn rlimit_and_cache_values() {
        let dir = tempfile::tempdir().unwrap();
        let shared = format!("--shared-dir={}", dir.path().display());
        let cfg = parse(&[
            "--socket-path=/s",
            &shared,
            "--rlimit-nofile=0",
            "--cache=never",
        ])
        .unwrap();
        assert_eq!(cfg.rlimit_nofile, RlimitNofile::Unchanged);
        assert_eq!(cfg.fs.cache, CacheMode::Never);
        let cfg = parse(&[
            "--socket-path=/s",
            &shared,
            "--rlimit-nofile=4096",
            "--xattr",
        ])
        .unwrap();
        assert_eq!(cfg.rlimit_nofile, RlimitNofile::Set(4096));
        assert!(cfg.fs.xattr);
        let err = parse(&["--socket-path=/s", &shared, "--thread-pool-size=100000"]).unwrap_err();
        assert!(matches!(err, ConfigError::ThreadPoolTooLarge(100_000)));
    }

    fn write_manifest(dir: &Path) -> (PathBuf, Manifest) {
        let root = verity_manifest::Entry {
            path: b"/".to_vec(),
            kind: verity_manifest::EntryKind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        let m = Manifest::new(verity_merkle::MerkleParams::default(), vec![root]).unwrap();
        let path = dir.join("manifest");
        fs::write(&path, m.to_bytes()).unwrap();
        (path, m)
    }

    #[test]
    fn manifest_is_loaded_and_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let shared = format!("--shared-dir={}", dir.path().display());
        let (path, m) = write_manifest(dir.path());
        let man = format!("--manifest={}", path.display());
        let cfg = parse(&["--socket-path=/s", &shared, &man]).unwrap();
        let v = cfg.verity.unwrap();
        assert_eq!(v.manifest.digest(), m.digest());
        assert_eq!(v.options.mode, VerifyMode::Enforce);
        assert_eq!(v.options.unlisted, UnlistedPolicy::Deny);
        let pin = format!("--manifest-digest={}", m.digest());
        let store = format!("--tree-store={}", dir.path().display());
        let cfg = parse(&[
            "--socket-path=/s",
            &shared,
            &man,
            &pin,
            &store,
            "--verity=audit",
            "--unlisted=allow",
        ])
        .unwrap();
        let v = cfg.verity.unwrap();
        assert_eq!(v.options.mode, VerifyMode::Audit);
        assert_eq!(v.options.unlisted, UnlistedPolicy::Allow);
        assert_eq!(
            v.options.tree_store.as_ref().map(|s| s.path()),
            Some(dir.path())
        );
        assert!(parse(&["--socket-path=/s", &shared])
            .unwrap()
            .verity
            .is_none());
    }

    #[test]
    fn manifest_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let shared = format!("--shared-dir={}", dir.path().display());
        let (path, m) = write_manifest(dir.path());
        let man = format!("--manifest={}", path.display());
        let wrong = format!("--manifest-digest=sha256:{}", "0".repeat(64));
        let err = parse(&["--socket-path=/s", &shared, &man, &wrong]).unwrap_err();
        assert!(matches!(err, ConfigError::ManifestDigestMismatch { .. }));
        let text = err.to_string();
        assert!(text.contains(&m.digest().to_string()) && text.contains(&"0".repeat(64)));
        for bad in ["--manifest-digest=abc", "--manifest-digest=sha512:00"] {
            let err = parse(&["--socket-path=/s", &shared, &man, bad]).unwrap_err();
            assert!(matches!(err, ConfigError::BadManifestDigest(_)), "{bad}");
        }
        let mut bytes = m.to_bytes();
        bytes.push(b'\n');
        fs::write(&path, bytes).unwrap();
        let err = parse(&["--socket-path=/s", &shared, &man]).unwrap_err();
        assert!(matches!(err, ConfigError::ManifestInvalid { .. }));
        let missing = format!("--manifest={}", dir.path().join("nope").display());
        let err = parse(&["--socket-path=/s", &shared, &missing]).unwrap_err();
        assert!(matches!(err, ConfigError::ManifestUnreadable { .. }));
        fs::write(&path, m.to_bytes()).unwrap();
        let store = format!("--tree-store={}", dir.path().join("nope").display());
        let err = parse(&["--socket-path=/s", &shared, &man, &store]).unwrap_err();
        assert!(matches!(err, ConfigError::TreeStoreUnusable { .. }));
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        let table = "root:x:0:\nkvm:x:104:alice\nbroken\n";
        assert_eq!(group_id_from_table(table, "kvm"), Some(104));
        assert_eq!(group_id_from_table(table, "root"), Some(0));
        assert_eq!(group_id_from_table(table, "nobody-here"), None);
        assert_eq!(resolve_group("1234").unwrap(), 1234);
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl mount`: a guest-side verifying FUSE filesystem.
//!
//! TARGET is served by the same `verity_fs::ManifestFs` and `verity-merkle`
//! engine verityfsd uses on the host, bound to a manifest the guest pins by
//! digest, and mounted read-only over `/dev/fuse`. SOURCE (in a guest: the raw
//! virtio-fs mount, served by a host that may be malicious) is only its
//! content store: names, listings, types, modes, owners, sizes and link
//! targets come from the manifest, every byte is verified before it is
//! returned, and digests (`FS_IOC_MEASURE_VERITY`, `user.verity.digest`) are
//! answered from the manifest.

mod confine;
mod pinned;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use clap::Args;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FuseChannel, FuseSession};
use verity_fs::{CacheMode, ContentDir, ManifestFs, TreeStore, Verity, VerityOptions};
use verity_merkle::FileDigest;

use self::confine::ConfineError;
use self::pinned::PinnedError;
use verity_seccomp::{Profile, SeccompMode};
use verity_sys::TerminationSignals;

/// The filesystem name shown in /proc/mounts.
const FSNAME: &str = "verityctl";

/// Arguments of `verityctl mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// The manifest (may come from the host: it is checked against --manifest-digest).
    /// Default: the one the verified share serves, SOURCE/.verityfsd/manifest.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The manifest digest the guest trusts (`sha256:HEX`, e.g. from attestation).
    #[arg(long, value_name = "sha256:HEX")]
    manifest_digest: String,
    /// Directory of stored Merkle trees (untrusted: every block read from it is checked).
    /// Default: SOURCE/.verityfsd/trees when the share serves it; without a store, a file's
    /// tree is built from the whole file at its first open.
    #[arg(long, value_name = "DIR")]
    tree_store: Option<PathBuf>,
    /// Content-addressed store (verityctl seal --objects, untrusted): file bytes are found
    /// there by digest instead of at their path in SOURCE.
    #[arg(long, value_name = "DIR")]
    objects: Option<PathBuf>,
    /// Memory for Merkle trees built in the guest or read from small store entries (bytes,
    /// or with a K, M or G suffix); the least recently used are dropped beyond it and set up
    /// again at their next open. Default: 4 MiB per GiB of guest RAM (at least 16 MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    tree_memory: Option<u64>,
    /// System-call filter once mounted (the daemon's allowlist plus unmounting): kill, log,
    /// trap, or none.
    #[arg(long, value_enum, value_name = "ACTION", default_value = "kill")]
    seccomp: SeccompArg,
    /// Threads serving FUSE requests.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Stay in the foreground (the default and only mode; accepted for scripts).
    #[arg(long)]
    foreground: bool,
    /// Unmount SOURCE (lazily) once its root is open, so that no guest process can reach the
    /// raw, unverified share by path while TARGET is served.
    #[arg(long)]
    detach_source: bool,
    /// Let set-user-ID and set-group-ID files the manifest records take effect at TARGET
    /// (TARGET is nosuid otherwise; device nodes never work there).
    #[arg(long)]
    allow_setuid: bool,
    /// Write TARGET's path to this file once mounted (removed at exit).
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// The untrusted directory to verify (in a guest: the raw virtio-fs mount, which must be
    /// mounted ro,nosuid,nodev,noexec).
    #[arg(value_name = "SOURCE")]
    source: PathBuf,
    /// Where the verified filesystem is mounted (an existing directory).
    #[arg(value_name = "TARGET")]
    target: PathBuf,
}

/// `--seccomp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompArg {
    /// Kill the process on any other syscall.
    Kill,
    /// Allow, and log it to the kernel log.
    Log,
    /// Send SIGSYS to the thread.
    Trap,
    /// No filter.
    None,
}

/// Errors of `verityctl mount`.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The manifest or its pin is not usable.
    #[error(transparent)]
    Manifest(#[from] PinnedError),
    /// SOURCE or TARGET is unsafe, or privileges cannot be reduced.
    #[error(transparent)]
    Confine(#[from] ConfineError),
    /// --tree-store cannot be opened.
    #[error("--tree-store {path:?} cannot be opened as a directory")]
    TreeStore {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The system-call filter could not be installed.
    #[error(transparent)]
    Seccomp(verity_seccomp::SeccompError),
    /// --objects cannot be opened.
    #[error("--objects {path:?} cannot be opened as a directory")]
    Objects {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// SOURCE is not a usable directory.
    #[error("SOURCE {path:?} is not an existing directory")]
    Source {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Blocking the termination signals or starting a thread failed.
    #[error("cannot set up the {0}")]
    Setup(&'static str, #[source] io::Error),
    /// The FUSE mount failed.
    #[error("cannot mount at {path:?} (is /dev/fuse present, and are you root?): {reason}")]
    Mount {
        /// TARGET.
        path: PathBuf,
        /// fuse-backend-rs's message.
        reason: String,
    },
    /// The mounted root cannot be reached: the FUSE connection failed at INIT.
    #[error("the verified filesystem over {path:?} does not answer at its mount point")]
    Root {
        /// SOURCE.
        path: PathBuf,
        /// What stat of the mounted root returned.
        #[source]
        source: io::Error,
    },
    /// The ready file cannot be written.
    #[error("cannot write --ready-file {path:?}")]
    ReadyFile {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl MountError {
    /// 2 for unusable arguments (including a manifest that is not the pinned
    /// one), 1 for failures while mounting.
    pub fn exit_code(&self) -> u8 {
        match self {
            MountError::Manifest(_)
            | MountError::TreeStore { .. }
            | MountError::Objects { .. }
            | MountError::Source { .. }
            | MountError::Confine(
                ConfineError::UnsafeSource { .. }
                | ConfineError::TargetInSource { .. }
                | ConfineError::Inspect { .. },
            ) => 2,
            _ => 1,
        }
    }
}

type Fs = ManifestFs;

/// Why the main thread wakes up.
#[derive(Debug)]
enum Event {
    /// A termination signal.
    Signal(i32),
    /// A channel thread stopped: the kernel closed the connection (unmount)
    /// or reading requests failed (`Some(reason)`).
    ChannelDone(Option<String>),
}

/// Serves requests from `channel` until the connection ends or the channel
/// is woken.
fn serve(server: &Server<Fs>, mut channel: FuseChannel) -> Option<String> {
    loop {
        match channel.get_request() {
            Ok(Some((reader, writer))) => {
                // A failed reply (an interrupted request, or the connection going away) only
                // concerns that request; an ended connection shows in the next get_request.
                let _ = server.handle_message(reader, writer.into(), None, None);
            }
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
}

fn spawn_channel(
    index: u16,
    server: Arc<Server<Fs>>,
    channel: FuseChannel,
    events: mpsc::Sender<Event>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("fuse-{index}"))
        .spawn(move || {
            let reason = serve(&server, channel);
            let _ = events.send(Event::ChannelDone(reason));
        })
}

fn spawn_signal_thread(signals: TerminationSignals, events: mpsc::Sender<Event>) -> io::Result<()> {
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = signals.wait() {
                if events.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// Builds the verifying filesystem over SOURCE.
fn build_fs(args: &MountArgs) -> Result<(Fs, FileDigest), MountError> {
    let meta = args.source.join(verity_fs::META_DIR);
    let manifest_path = args
        .manifest
        .clone()
        .unwrap_or_else(|| meta.join("manifest"));
    let manifest = pinned::load(&manifest_path, &args.manifest_digest)?;
    let digest = *manifest.digest();
    confine::check_paths(&args.source, &args.target)?;
    let served_trees = meta.join("trees");
    let tree_store = args.tree_store.clone().or_else(|| {
        let alg = manifest.params().algorithm().name();
        served_trees.join(alg).is_dir().then_some(served_trees)
    });
    let tree_store = tree_store
        .as_deref()
        .map(|p| {
            TreeStore::open(p)
                .map(Arc::new)
                .map_err(|source| MountError::TreeStore {
                    path: p.to_owned(),
                    source,
                })
        })
        .transpose()?;
    let source_err = |source| MountError::Source {
        path: args.source.clone(),
        source,
    };
    // SOURCE is only a content store: names, metadata and the listing come from the manifest.
    let content = match &args.objects {
        Some(dir) => ContentDir::open_objects(dir).map_err(|source| MountError::Objects {
            path: dir.clone(),
            source,
        })?,
        None => ContentDir::open(&args.source).map_err(source_err)?,
    };
    let verity = Verity::new(
        manifest,
        VerityOptions {
            tree_store,
            tree_memory: Some(args.tree_memory.unwrap_or_else(default_tree_memory)),
            ..VerityOptions::default()
        },
    );
    Ok((ManifestFs::new(verity, content, CacheMode::Auto), digest))
}

/// `--tree-memory` size: bytes, or a number with a K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 65536, 64M, 1G)"))
}

/// 4 MiB per GiB of RAM, at least 16 MiB: a 1 GiB file's tree (SHA-256, 4 KiB blocks) is
/// 8 MiB.
fn default_tree_memory() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(1 << 20);
    (total_kib / 1024 * 4 * 1024).max(16 << 20)
}

fn write_ready_file(path: &Path, target: &Path) -> Result<(), MountError> {
    std::fs::write(path, format!("{}\n", target.display())).map_err(|source| {
        MountError::ReadyFile {
            path: path.to_owned(),
            source,
        }
    })
}

/// Runs `verityctl mount` until a termination signal or an external unmount.
pub fn run(args: &MountArgs) -> Result<(), MountError> {
    // Integrity failures are logged (rate-limited) by verity-fs; RUST_LOG tunes the level.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    // Before any thread exists, so that every thread inherits the mask.
    let signals = TerminationSignals::block().map_err(|e| MountError::Setup("signals", e))?;
    let (fs, digest) = build_fs(args)?;
    if args.detach_source {
        confine::detach_source(&args.source)?;
    }
    let server = Arc::new(Server::new(fs));

    let mount_err = |reason: String| MountError::Mount {
        path: args.target.clone(),
        reason,
    };
    let mut session =
        FuseSession::new(&args.target, FSNAME, "", true).map_err(|e| mount_err(e.to_string()))?;
    session.set_allow_other(true);
    session.mount().map_err(|e| mount_err(e.to_string()))?;
    // From here on the session's Drop unmounts on every early return.
    if args.allow_setuid {
        if let Err(e) = confine::allow_setuid(session.mountpoint()) {
            stop(&mut session, Vec::new());
            return Err(e.into());
        }
    }
    if let Err(e) = confine::drop_privileges() {
        stop(&mut session, Vec::new());
        return Err(e.into());
    }
    // Before any thread serves host data; the FUSE threads inherit it.
    let mode = match args.seccomp {
        SeccompArg::Kill => SeccompMode::Kill,
        SeccompArg::Log => SeccompMode::Log,
        SeccompArg::Trap => SeccompMode::Trap,
        SeccompArg::None => SeccompMode::None,
    };
    if let Err(e) = verity_seccomp::install(mode, Profile::GuestMount) {
        stop(&mut session, Vec::new());
        return Err(MountError::Seccomp(e));
    }

    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for i in 0..args.threads {
        let started = session
            .new_channel()
            .map_err(|e| mount_err(e.to_string()))
            .and_then(|ch| {
                spawn_channel(i, Arc::clone(&server), ch, tx.clone())
                    .map_err(|e| MountError::Setup("FUSE threads", e))
            });
        match started {
            Ok(h) => workers.push(h),
            Err(e) => {
                stop(&mut session, workers);
                return Err(e);
            }
        }
    }
    if let Err(e) = spawn_signal_thread(signals, tx) {
        stop(&mut session, workers);
        return Err(MountError::Setup("signal thread", e));
    }
    // The kernel sends INIT at mount time: wait for that answer, so a failed connection is
    // an error, not a "mounted".
    if let Err(e) = std::fs::metadata(session.mountpoint()) {
        stop(&mut session, workers);
        return Err(MountError::Root {
            path: args.source.clone(),
            source: e,
        });
    }
    if let Some(ready) = &args.ready_file {
        if let Err(e) = write_ready_file(ready, &args.target) {
            stop(&mut session, workers);
            return Err(e);
        }
    }
    log::info!("serving FUSE requests on {} threads", args.threads);
    eprintln!(
        "verityctl: mounted {} at {} (read-only, verified against manifest {digest})",
        args.source.display(),
        args.target.display()
    );

    match rx.recv() {
        Ok(Event::Signal(sig)) => eprintln!(
            "verityctl: signal {sig}: unmounting {}",
            args.target.display()
        ),
        Ok(Event::ChannelDone(None)) | Err(_) => {
            eprintln!("verityctl: {} was unmounted", args.target.display())
        }
        Ok(Event::ChannelDone(Some(reason))) => eprintln!(
            "verityctl: the FUSE connection of {} ended ({reason}): unmounted or aborted",
            args.target.display()
        ),
    }
    stop(&mut session, workers);
    if let Some(ready) = &args.ready_file {
        let _ = std::fs::remove_file(ready);
    }
    Ok(())
}

/// Unmounts (lazily, so open files do not keep TARGET mounted), wakes every
/// channel thread and joins them.
fn stop(session: &mut FuseSession, workers: Vec<JoinHandle<()>>) {
    confine::raise_for_unmount();
    if let Err(e) = session.umount() {
        eprintln!("verityctl: unmount: {e}");
    }
    if let Err(e) = session.wake() {
        eprintln!("verityctl: waking the FUSE threads: {e}");
    }
    for w in workers {
        let _ = w.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert!(default_tree_memory() >= 16 << 20);
    }
}

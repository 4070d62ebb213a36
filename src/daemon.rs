// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Process lifetime: build the filesystem and backend, serve one frontend, clean up.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::passthrough::PassthroughFs;
use verity_fs::{
    stored_tree_stays_open, ContentDir, FsConfig, FsLimits, ManifestFs, UnlistedPolicy, VerifyMode,
    Verity, VerityFs,
};
use verity_manifest::{EntryKind, Manifest};
use vhost::vhost_user::Error as VhostUserError;
use vhost_user_backend::{Error as DaemonError, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::config::{DaemonConfig, ListenConfig, RlimitNofile, VerityConfig};
use crate::error::Error;
use crate::insecure;
use crate::privileges;
use crate::queue_worker::QueueWorker;
use crate::sandbox;
use crate::seccomp;
use crate::socket::ListenSocket;
use verity_sys::TerminationSignals;

use crate::sys;
use crate::vhost_user::FsBackend;
use crate::worker_pool::WorkerPool;

/// virtiofsd's default open-file limit cap.
const DEFAULT_NOFILE_CAP: u64 = 1_000_000;
/// The kernel's maximum for RLIMIT_NOFILE.
const NR_OPEN_PATH: &str = "/proc/sys/fs/nr_open";

fn apply_rlimit(setting: RlimitNofile) -> Result<(), Error> {
    let target = match setting {
        RlimitNofile::Unchanged => return Ok(()),
        RlimitNofile::Set(n) => n,
        RlimitNofile::Default => {
            let nr_open = fs::read_to_string(NR_OPEN_PATH)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(DEFAULT_NOFILE_CAP);
            nr_open.min(DEFAULT_NOFILE_CAP)
        }
    };
    let (soft, hard) = sys::nofile_limit().map_err(|e| Error::SetRlimit(target, e))?;
    if soft >= target && setting == RlimitNofile::Default {
        return Ok(());
    }
    match sys::set_nofile_limit(target, target.max(hard)) {
        Ok(()) => Ok(()),
        Err(e) if setting == RlimitNofile::Default => {
            // Unprivileged: raise the soft limit as far as the hard limit allows.
            let reachable = target.min(hard);
            if reachable > soft {
                sys::set_nofile_limit(reachable, hard)
                    .map_err(|e| Error::SetRlimit(reachable, e))?;
            }
            log::info!("open-file limit kept at {} ({e})", reachable.max(soft));
            Ok(())
        }
        Err(e) => Err(Error::SetRlimit(target, e)),
    }
}

/// Descriptors the tree store may hold at once: one per distinct file content of the
/// manifest whose stored tree is too large to be read into memory (such a tree keeps its store
/// file open while its verifier is kept).
fn tree_store_fds(verity: Option<&VerityConfig>) -> u64 {
    let Some(v) = verity.filter(|v| v.options.tree_store.is_some()) else {
        return 0;
    };
    let params = v.manifest.params();
    let digests: HashSet<_> = v
        .manifest
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File { digest, size } if stored_tree_stays_open(params, *size) => {
                Some(*digest)
            }
            _ => None,
        })
        .collect();
    u64::try_from(digests.len()).unwrap_or(u64::MAX)
}

/// The guest's inode and open-file budgets under the open-file limit now in force, after the
/// daemon's reserve and the tree store's descriptors.
fn guest_limits(workers: usize, verity: Option<&VerityConfig>) -> Result<FsLimits, Error> {
    let (soft, _) = sys::nofile_limit().map_err(Error::GetRlimit)?;
    let store = tree_store_fds(verity);
    let reserve = FsLimits::reserve(workers).saturating_add(store);
    let limits = FsLimits::from_nofile(soft.saturating_sub(store), workers);
    if soft <= reserve {
        log::warn!(
            "open-file limit {soft} leaves nothing for the guest after the daemon's reserve of \
             {reserve}; raise --rlimit-nofile"
        );
    }
    log::info!(
        "open-file limit {soft} ({reserve} kept for the daemon): the guest may hold {} inodes \
         and {} open files",
        limits.max_inodes,
        limits.max_handles
    );
    Ok(limits)
}

/// Removes `paths` and exits when a termination signal arrives.
fn spawn_signal_thread(signals: TerminationSignals, paths: Vec<PathBuf>) -> Result<(), Error> {
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = signals.wait() {
                log::info!("terminating on signal {sig}");
                for p in &paths {
                    let _ = fs::remove_file(p);
                }
                std::process::exit(0);
            }
        })
        .map(|_| ())
        .map_err(Error::Signals)
}

fn is_disconnect(e: &DaemonError) -> bool {
    matches!(
        e,
        DaemonError::HandleRequest(
            VhostUserError::Disconnected
                | VhostUserError::PartialMessage
                | VhostUserError::SocketBroken(_)
        )
    )
}

/// Runs the daemon until the frontend disconnects.
pub fn run(mut cfg: DaemonConfig) -> Result<(), Error> {
    // Block termination signals before any thread exists, so all threads inherit the mask
    // and only the signal thread receives them.
    let signals = TerminationSignals::block().map_err(Error::Signals)?;
    for w in insecure::warnings(&cfg) {
        log::warn!("{w}");
    }
    apply_rlimit(cfg.rlimit_nofile)?;
    let limits = guest_limits(cfg.thread_pool_size, cfg.verity.as_ref())?;

    // The socket is bound (or adopted) outside the sandbox; the serving process then gets the
    // filesystem, drops privileges and installs seccomp before any thread starts.
    let socket = ListenSocket::open(&cfg.listen)?;
    // A verified share in enforce mode with unlisted names denied (the defaults) is served
    // from the manifest alone, with the shared directory as its content store; the diagnostic
    // modes serve host objects through the passthrough layer.
    let manifest_served = cfg.verity.as_ref().is_some_and(|v| {
        v.options.mode == VerifyMode::Enforce && v.options.unlisted == UnlistedPolicy::Deny
    });
    // Opened before the sandbox, like the tree store.
    let objects = cfg
        .verity
        .as_ref()
        .and_then(|v| v.objects.as_ref())
        .map(|(_, dir)| Arc::clone(dir));
    let (share, socket) = sandbox::enter(
        cfg.sandbox,
        &cfg.fs.shared_dir,
        cfg.fs.xattr,
        socket,
        |root| {
            if let (true, Some(objects)) = (manifest_served, objects) {
                return Ok(Share::Content(objects));
            }
            if manifest_served {
                return ContentDir::open(root)
                    .map(|c| Share::Content(Arc::new(c)))
                    .map_err(|e| Error::OpenShare(cfg.fs.shared_dir.clone(), e));
            }
            let fs_cfg = FsConfig {
                shared_dir: root.to_owned(),
                ..cfg.fs.clone()
            };
            verity_fs::new_passthrough(&fs_cfg)
                .map(Share::Passthrough)
                .map_err(Error::CreateFs)
        },
    )?;
    privileges::drop_privileges()?;
    seccomp::install(cfg.seccomp, !socket.cleanup_paths().is_empty())?;
    spawn_signal_thread(signals, socket.cleanup_paths())?;

    let readdirplus = cfg.fs.cache.readdirplus();
    match (cfg.verity.take(), share) {
        (Some(v), share) => {
            log::info!(
                "verifying every read against manifest {} ({}, {} entries, {} mode, unlisted names {})",
                v.manifest_path.display(),
                v.manifest.digest(),
                v.manifest.entries().len(),
                if v.options.mode == VerifyMode::Audit { "AUDIT" } else { "enforce" },
                if v.options.unlisted == UnlistedPolicy::Allow { "served UNVERIFIED" } else { "denied" },
            );
            // The configuration's copy is the only one: move it, never copy
            // a manifest of maybe millions of entries.
            let manifest = Arc::try_unwrap(v.manifest).unwrap_or_else(|m| Manifest::clone(&m));
            let verity = Verity::new(manifest, v.options);
            match share {
                Share::Content(content) => {
                    match &v.objects {
                        Some((path, _)) => log::info!("names and metadata come from the manifest; file content from the object store {}", path.display()),
                        None => log::info!("names and metadata come from the manifest; the shared directory is its content store"),
                    }
                    let fs = ManifestFs::new(verity, content, cfg.fs.cache).with_limits(limits);
                    serve(fs, &cfg, socket)
                }
                Share::Passthrough(inner) => serve(
                    VerityFs::verified(inner, readdirplus, verity).with_limits(limits),
                    &cfg,
                    socket,
                ),
            }
        }
        (None, Share::Passthrough(inner)) => {
            log::info!("no --manifest: serving the share read-only WITHOUT verification");
            serve(
                VerityFs::new(inner, readdirplus).with_limits(limits),
                &cfg,
                socket,
            )
        }
        (None, Share::Content(_)) => unreachable!("a content store is opened only with a manifest"),
    }
}

/// What the sandbox hands back: the passthrough layer, or the content store of a
/// manifest-served share. Built once per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Share {
    Passthrough(PassthroughFs<()>),
    Content(Arc<ContentDir>),
}

/// Serves `fs` to one frontend on `socket` until it disconnects.
fn serve<F>(fs: F, cfg: &DaemonConfig, mut socket: ListenSocket) -> Result<(), Error>
where
    F: FileSystem<Inode = u64, Handle = u64> + Send + Sync + 'static,
{
    let server = Arc::new(Server::new(fs));
    let pool = match cfg.thread_pool_size {
        0 => None,
        n => {
            let pool = WorkerPool::new(n).map_err(|e| Error::StartWorkers(n, e))?;
            log::info!("serving requests on {} worker threads", pool.size());
            Some(pool)
        }
    };
    let mem = GuestMemoryAtomic::new(GuestMemoryMmap::<()>::new());
    let backend = Arc::new(FsBackend::new(
        QueueWorker::new(server, pool),
        mem.clone(),
        cfg.tag.clone(),
    ));

    let mut daemon = VhostUserDaemon::new("verityfsd".to_owned(), backend, mem)
        .map_err(|e| Error::StartDaemon(e.to_string()))?;
    match &cfg.listen {
        ListenConfig::Socket { path, .. } => log::info!(
            "serving {} read-only; waiting for a vhost-user frontend on {}",
            cfg.fs.shared_dir.display(),
            path.display()
        ),
        ListenConfig::Fd(fd) => log::info!(
            "serving {} read-only; waiting for a vhost-user frontend on fd {fd}",
            cfg.fs.shared_dir.display()
        ),
    }
    daemon
        .start(&mut socket.listener)
        .map_err(|e| Error::StartDaemon(e.to_string()))?;
    log::info!("frontend connected");

    let result = daemon.wait();
    // Stops and joins the vring threads (through the exit events) and the worker pool.
    drop(daemon);
    drop(socket);
    match result {
        Ok(()) => {
            log::info!("frontend disconnected; exiting");
            Ok(())
        }
        Err(e) if is_disconnect(&e) => {
            log::info!("frontend disconnected ({e}); exiting");
            Ok(())
        }
        Err(e) => Err(Error::Connection(e.to_string())),
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `--sandbox`: confine the serving process to the shared directory.
//!
//! `namespace` and `chroot` both fork. The original process keeps the socket and pid file,
//! forwards termination signals, waits for the serving child, removes the files and exits with
//! the child's status. The child is the only process that talks to the frontend.
//!
//! Namespace layout (child, PID 1 of a new PID namespace, in new mount and network
//! namespaces): a private tmpfs becomes the root and holds only
//!
//! - `/share`: a recursive clone of the shared directory, remounted read-only, nosuid, nodev;
//! - `/proc`: a fresh procfs of the new PID namespace (fuse-backend-rs opens
//!   `/proc/self/fd/N` by absolute path for xattrs and reads `/proc/self/mountinfo`).
//!
//! The tmpfs is remounted read-only after `pivot_root`, and the old root is detached. The
//! passthrough layer is then built with `/share` as its root.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::Error;
use crate::sandbox_sys::{self as ssys, ChildExit, Forked, SupervisorSignals};
use crate::socket::ListenSocket;

/// Where the new root is assembled: a tmpfs mounted over `/proc` in the private mount
/// namespace (`/proc` always exists, and the real procfs is not needed from there on).
const STAGING: &str = "/proc";
/// The shared directory inside the sandbox.
pub const SANDBOX_SHARE: &str = "/share";
/// Exit code base for a child killed by a signal (shell convention: 128 + signal).
const SIGNAL_EXIT_BASE: i32 = 128;

/// Sandbox mode (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// New PID, mount and network namespaces (and a user namespace when not root), with a
    /// tmpfs root holding only the share and a fresh /proc.
    Namespace,
    /// chroot into the shared directory (root only; for containers whose runtime already
    /// made namespaces).
    Chroot,
    /// No sandbox.
    None,
}

/// Errors entering the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Threads exist: fork and unshare need a single-threaded process.
    #[error("internal error: the process has {0} threads before entering the sandbox")]
    NotSingleThreaded(usize),
    /// A sandbox step failed.
    #[error(
        "--sandbox={mode}: cannot {step}; run as root (or where user namespaces are allowed), \
         or pass --sandbox=none"
    )]
    Step {
        /// The mode.
        mode: &'static str,
        /// What was being done.
        step: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// chroot mode and --xattr: xattr calls need /proc inside the root.
    #[error(
        "--sandbox=chroot cannot serve --xattr (extended attributes are read through /proc, \
         which is not inside the shared directory); use --sandbox=namespace"
    )]
    ChrootXattr,
    /// The serving child could not be waited for.
    #[error("cannot wait for the sandboxed daemon process")]
    Wait(#[source] io::Error),
}

fn step(mode: &'static str, step: &'static str) -> impl FnOnce(io::Error) -> SandboxError {
    move |source| SandboxError::Step { mode, step, source }
}

/// Enters the sandbox and builds the filesystem at the right moment.
///
/// `build_fs` receives the shared directory's path as seen from inside the sandbox. Returns,
/// in the serving process, the filesystem and the socket (which, after a fork, removes nothing
/// on drop). In the supervising parent this function does not return: it exits with the
/// child's status after removing the socket and pid file. The caller has blocked the
/// termination signals; the child keeps SIGCHLD blocked too (it has no child processes).
pub fn enter<T>(
    mode: SandboxMode,
    shared_dir: &Path,
    xattr: bool,
    socket: ListenSocket,
    build_fs: impl FnOnce(&Path) -> Result<T, Error>,
) -> Result<(T, ListenSocket), Error> {
    let name = match mode {
        SandboxMode::None => return Ok((build_fs(shared_dir)?, socket)),
        SandboxMode::Namespace => "namespace",
        SandboxMode::Chroot => "chroot",
    };
    if mode == SandboxMode::Chroot && xattr {
        return Err(SandboxError::ChrootXattr.into());
    }
    let threads = thread_count();
    if threads != 1 {
        return Err(SandboxError::NotSingleThreaded(threads).into());
    }
    if mode == SandboxMode::Namespace {
        enter_pid_namespace().map_err(step(name, "create the namespaces"))?;
    }
    let signals = SupervisorSignals::block().map_err(step(name, "block signals"))?;
    match ssys::fork().map_err(step(name, "fork"))? {
        Forked::Parent(child) => supervise(child, socket, &signals),
        Forked::Child => {
            // Die with the supervisor, so no orphan keeps serving without cleanup.
            ssys::set_parent_death_signal(libc::SIGKILL)
                .map_err(step(name, "set the parent-death signal"))?;
            let socket = detach_cleanup(socket);
            let fs = match mode {
                SandboxMode::Namespace => {
                    build_namespace_root(shared_dir)?;
                    build_fs(Path::new(SANDBOX_SHARE))?
                }
                _ => {
                    // The passthrough layer opens /proc/self/fd now; its root "/" is opened
                    // at FUSE INIT, inside the chroot.
                    let fs = build_fs(Path::new("/"))?;
                    std::os::unix::fs::chroot(shared_dir).map_err(step(name, "chroot"))?;
                    std::env::set_current_dir("/").map_err(step(name, "chdir"))?;
                    fs
                }
            };
            log::info!("entered the {name} sandbox");
            Ok((fs, socket))
        }
    }
}

fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

/// Unshares the PID namespace (the next child becomes its PID 1); when not root, first a user
/// namespace mapping the current uid and gid to themselves.
fn enter_pid_namespace() -> io::Result<()> {
    let (uid, gid) = (ssys::geteuid(), ssys::getegid());
    if uid == 0 {
        return ssys::unshare(libc::CLONE_NEWPID);
    }
    ssys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID)?;
    fs::write("/proc/self/setgroups", "deny")?;
    fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))
}

/// The socket as the child keeps it: same listening fd, but the files stay for the parent.
fn detach_cleanup(socket: ListenSocket) -> ListenSocket {
    let ListenSocket {
        listener,
        pid_file,
        path,
    } = socket;
    if let Some(file) = path {
        file.keep();
    }
    if let Some(pid_file) = pid_file {
        pid_file.close_without_removing();
    }
    ListenSocket {
        listener: ssys::listener_without_cleanup(listener),
        pid_file: None,
        path: None,
    }
}

/// Parent side: forward termination signals, wait, clean up, exit with the child's status.
///
/// Single-threaded on purpose: after unshare(CLONE_NEWPID) the parent can no longer create
/// threads.
fn supervise(child: libc::pid_t, socket: ListenSocket, signals: &SupervisorSignals) -> ! {
    let status = loop {
        match signals.wait() {
            Ok(libc::SIGCHLD) => match ssys::try_wait_child(child) {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(e),
            },
            Ok(sig) => {
                log::info!("forwarding signal {sig} to the sandboxed daemon");
                let _ = ssys::kill(child, sig);
            }
            Err(e) => {
                log::error!("signal wait failed ({e}); stopping the daemon");
                let _ = ssys::kill(child, libc::SIGKILL);
                break ssys::wait_child(child);
            }
        }
    };
    drop(socket);
    let code = match status {
        Ok(ChildExit::Code(code)) => code,
        Ok(ChildExit::Signal(sig)) => {
            log::error!("the sandboxed daemon process was killed by signal {sig}");
            SIGNAL_EXIT_BASE + sig
        }
        Err(e) => {
            log::error!("{}", SandboxError::Wait(e));
            1
        }
    };
    std::process::exit(code);
}

/// Child side of `namespace`: new mount and network namespaces, then a tmpfs root holding a
/// read-only clone of the share and a fresh /proc.
fn build_namespace_root(shared_dir: &Path) -> Result<(), SandboxError> {
    let s = |what| step("namespace", what);
    ssys::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET)
        .map_err(s("create the mount and network namespaces"))?;
    // Nothing done here propagates back to the host; host mounts still propagate in.
    ssys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .map_err(s("make / a slave mount"))?;
    let tree = ssys::clone_mount_tree(shared_dir).map_err(s("clone the shared directory"))?;

    let staging = Path::new(STAGING);
    let hardened = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    ssys::mount(
        Some(Path::new("tmpfs")),
        staging,
        Some("tmpfs"),
        hardened,
        Some("mode=0755,size=64k,nr_inodes=16"),
    )
    .map_err(s("mount the tmpfs root"))?;
    let share = staging.join(SANDBOX_SHARE.trim_start_matches('/'));
    let proc_dir = staging.join("proc");
    for dir in [&share, &proc_dir] {
        fs::create_dir(dir).map_err(s("populate the tmpfs root"))?;
    }
    ssys::attach_mount_tree(&tree, &share).map_err(s("mount the shared directory"))?;
    drop(tree);
    remount_read_only(&share)?;
    // A procfs of the new PID namespace: it shows only the sandboxed process.
    ssys::mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        hardened,
        None,
    )
    .map_err(s("mount /proc"))?;

    std::env::set_current_dir(staging).map_err(s("enter the new root"))?;
    let here = Path::new(".");
    ssys::pivot_root(here, here).map_err(s("pivot_root"))?;
    // The old root now sits on top of the new one: detach it.
    ssys::mount(None, here, None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(s("make the old root a slave mount"))?;
    ssys::umount2(here, libc::MNT_DETACH).map_err(s("detach the old root"))?;
    std::env::set_current_dir("/").map_err(s("enter the new root"))?;
    ssys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | hardened,
        None,
    )
    .map_err(s("make the tmpfs root read-only"))?;
    Ok(())
}

/// Read-only, nosuid, nodev on the whole cloned tree (mount_setattr, Linux 5.12); on older
/// kernels the top mount only.
fn remount_read_only(share: &Path) -> Result<(), SandboxError> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    match ssys::set_mount_attrs_recursive(share, attrs) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => ssys::mount(
            None,
            share,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            None,
        ),
        other => other,
    }
    .map_err(step("namespace", "make the shared directory read-only"))
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Syscall wrappers for the sandbox (namespaces, mounts, fork, privileges).
//!
//! Like `sys.rs`, this is one of the two modules allowed to use `unsafe`: each wrapper is a
//! thin, checked call into libc, so the sandbox logic itself stays safe code.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use vhost::vhost_user::Listener;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id.
pub fn getegid() -> u32 {
    // SAFETY: getegid(2) takes no arguments and cannot fail.
    unsafe { libc::getegid() }
}

/// unshare(2) with `flags` (CLONE_NEW*).
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare(2) takes only flags and touches no memory of ours.
    check(unsafe { libc::unshare(flags) })
}

/// Result of [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// fork(2). The caller must be single-threaded (checked by the sandbox before calling).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the process is single-threaded when the sandbox forks (no thread has been spawned
    // yet), so the child is a complete copy with no lock held by a vanished thread.
    let pid = unsafe { libc::fork() };
    match pid {
        p if p < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// exit(code).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Waits for `pid` to terminate (retrying on EINTR).
pub fn wait_child(pid: libc::pid_t) -> io::Result<ChildExit> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a writable local; waitpid(2) writes only to it.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(status) {
            return Ok(ChildExit::Code(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(ChildExit::Signal(libc::WTERMSIG(status)));
        }
    }
}

/// Sends `sig` to `pid`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes no memory.
    check(unsafe { libc::kill(pid, sig) })
}

/// Asks the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })
}

/// Sets PR_SET_NO_NEW_PRIVS: execve can never grant privileges again.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

/// Drops all supplementary groups.
pub fn clear_supplementary_groups() -> io::Result<()> {
    // SAFETY: a zero-length list with a null pointer is valid for setgroups(2).
    check(unsafe { libc::setgroups(0, std::ptr::null()) })
}

/// mount(2). `None` arguments are passed as NULL.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstring).transpose()?;
    let target = cstring(target)?;
    let fstype = fstype
        .map(|s| cstring(Path::new(OsStr::new(s))))
        .transpose()?;
    let data = data
        .map(|s| cstring(Path::new(OsStr::new(s))))
        .transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call;
    // the kernel copies them and keeps no reference.
    check(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })
}

/// umount2(2).
pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: `target` is NUL-terminated and outlives the call.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// pivot_root(2) (no libc wrapper).
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cstring(new_root)?;
    let put_old = cstring(put_old)?;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(|_| ())
}

/// open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC): a detached copy of
/// the mount tree at `path`.
pub fn clone_mount_tree(path: &Path) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    let path = cstring(path)?;
    let flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: `path` is NUL-terminated and outlives the call; open_tree returns a new fd.
    let fd = check_long(unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags)
    })?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: open_tree just returned this fd, nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH): attaches a detached tree.
pub fn attach_mount_tree(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let target = cstring(target)?;
    let empty = c"";
    // SAFETY: `tree` is an open mount fd, the paths are NUL-terminated and outlive the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(|_| ())
}

/// mount_setattr(path, AT_RECURSIVE, attr_set): sets mount attributes on a whole tree.
pub fn set_mount_attrs_recursive(path: &Path, attr_set: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = cstring(path)?;
    // SAFETY: `path` is NUL-terminated, `attr` is a valid `struct mount_attr` whose size is
    // passed alongside; both outlive the call and the kernel only reads them.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

/// The same listening socket, without vhost's "remove the socket file on drop".
///
/// Used by the sandboxed child: the file lives outside its root, and the parent removes it.
pub fn listener_without_cleanup(listener: Listener) -> Listener {
    let fd = listener.as_raw_fd();
    std::mem::forget(listener);
    // SAFETY: `fd` was owned by `listener`, which was just forgotten without closing it, so the
    // new `Listener` becomes its only owner.
    unsafe { Listener::from_raw_fd(fd) }
}

/// _exit(2): ends a forked test child without running atexit handlers or destructors.
#[cfg(test)]
pub fn exit_immediately(code: libc::c_int) -> ! {
    // SAFETY: _exit(2) takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// mkdirat(AT_FDCWD, "/nonexistent/x"): a write syscall outside the seccomp allowlist.
#[cfg(test)]
pub fn mkdir_for_test() -> io::Result<()> {
    // SAFETY: the path is a NUL-terminated literal; mkdirat keeps no reference.
    check(unsafe { libc::mkdirat(libc::AT_FDCWD, c"/nonexistent/x".as_ptr(), 0o700) })
}

/// ioctl(-1, request, &0): reaches the seccomp filter with `request`, then fails with EBADF.
#[cfg(test)]
pub fn ioctl_for_test(request: libc::c_ulong) -> io::Result<()> {
    let mut arg: libc::c_int = 0;
    // SAFETY: `arg` is a writable int that outlives the call; the fd is invalid, so the kernel
    // fails with EBADF before touching it.
    check(unsafe { libc::ioctl(-1, request, &mut arg) })
}

/// The signals the supervising parent waits for: termination signals to forward, and
/// SIGCHLD. Blocked before forking, so a child that exits early is never missed.
pub struct SupervisorSignals {
    set: libc::sigset_t,
}

impl std::fmt::Debug for SupervisorSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupervisorSignals(SIGTERM, SIGINT, SIGHUP, SIGCHLD)")
    }
}

impl SupervisorSignals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD in the calling thread.
    pub fn block() -> io::Result<Self> {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the writable `sigset_t` it is given.
        if unsafe { libc::sigemptyset(set.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sigemptyset returned 0, so `set` is initialised.
        let mut set = unsafe { set.assume_init() };
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            // SAFETY: `set` is an initialised sigset_t and `sig` a valid signal number.
            if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: `set` is initialised and outlives the call; a null old-set pointer is
        // allowed.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(SupervisorSignals { set })
    }

    /// Waits for one of the blocked signals and returns its number.
    pub fn wait(&self) -> io::Result<libc::c_int> {
        let mut sig: libc::c_int = 0;
        // SAFETY: `self.set` is an initialised sigset_t and `sig` a writable local.
        let ret = unsafe { libc::sigwait(&self.set, &mut sig) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(sig)
    }
}

/// waitpid(pid, WNOHANG): `None` while the child runs.
pub fn try_wait_child(pid: libc::pid_t) -> io::Result<Option<ChildExit>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a writable local; waitpid(2) writes only to it.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if ret == 0 {
        return Ok(None);
    }
    if libc::WIFEXITED(status) {
        return Ok(Some(ChildExit::Code(libc::WEXITSTATUS(status))));
    }
    if libc::WIFSIGNALED(status) {
        return Ok(Some(ChildExit::Signal(libc::WTERMSIG(status))));
    }
    Ok(None)
}

/// clone(flags) with invalid arguments: reaches the seccomp filter with `flags`, then fails
/// (CLONE_THREAD without CLONE_VM is EINVAL) or, for a plain fork, creates a child that exits
/// at once.
#[cfg(test)]
pub fn clone_for_test(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: raw clone with a null stack behaves like fork(2); the child exits immediately
    // through _exit without touching any state shared with the parent.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags as libc::c_ulong, 0, 0, 0, 0) };
    if ret == 0 {
        exit_immediately(0);
    }
    check_long(ret).map(|_| ())
}

/// clone3 with a null argument: reaches the seccomp filter, and returns its errno.
#[cfg(test)]
pub fn clone3_for_test() -> io::Error {
    // SAFETY: a null `clone_args` with size 0 is rejected by the kernel (EINVAL) before
    // anything is created; no memory is read.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    if ret >= 0 {
        return io::Error::from_raw_os_error(0);
    }
    io::Error::last_os_error()
}

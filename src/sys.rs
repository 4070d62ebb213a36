// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's only module with `unsafe`: thin wrappers over syscalls std does not offer
//! (umask, rlimits, flock, adopting an inherited socket).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;

/// Sets the process umask and returns the previous one.
pub fn set_umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask(2) only changes the calling process's file mode creation mask and cannot
    // fail; no memory is passed.
    unsafe { libc::umask(mask) }
}

/// Current (soft, hard) RLIMIT_NOFILE.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: `lim` points to writable memory of the size of `struct rlimit`, which
    // getrlimit(2) fills on success; it is read only after checking the return value.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrlimit returned 0, so the kernel initialised `lim`.
    let lim = unsafe { lim.assume_init() };
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets RLIMIT_NOFILE (soft and hard) to `limit`.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid, initialised `struct rlimit` that outlives the call; the
    // kernel only reads it.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes an exclusive, non-blocking flock(2) on `file`.
pub fn try_lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: the fd is owned by `file`, which outlives the call; flock(2) takes no memory.
    let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Adopts an inherited listening socket (for `--fd`).
///
/// Checks that `fd` is open and is a listening socket before taking ownership, and marks it
/// close-on-exec. Must be called at most once per fd.
pub fn adopt_listening_socket(fd: RawFd) -> io::Result<UnixListener> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` points to writable memory of the size of `struct stat`, which fstat(2)
    // fills on success; an invalid fd only makes it fail with EBADF.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so the kernel initialised `st`.
    let st = unsafe { st.assume_init() };
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
    }
    let mut listening: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `listening` and `len` are valid, writable locals whose sizes match what is
    // passed; `fd` was just checked to be an open socket.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            std::ptr::addr_of_mut!(listening).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    if listening == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket is not listening",
        ));
    }
    // SAFETY: F_SETFD with FD_CLOEXEC on an open fd touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is an open, listening socket handed to this process by its launcher;
    // nothing else in the process owns it, and the caller adopts it exactly once, so the
    // returned `UnixListener` becomes its sole owner.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    // A launcher may hand over a non-blocking socket; vhost-user-backend's accept loop
    // expects a blocking one (it retries immediately on EAGAIN).
    listener.set_nonblocking(false)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_limit_round_trips() {
        let (soft, hard) = nofile_limit().unwrap();
        set_nofile_limit(soft, hard).unwrap();
        assert_eq!(nofile_limit().unwrap(), (soft, hard));
    }

    #[test]
    fn adopt_rejects_non_sockets() {
        let file = tempfile::tempfile().unwrap();
        let err = adopt_listening_socket(file.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn flock_is_exclusive() {
        let path = tempfile::NamedTempFile::new().unwrap();
        let a = File::open(path.path()).unwrap();
        let b = File::open(path.path()).unwrap();
        try_lock_exclusive(&a).unwrap();
        assert!(try_lock_exclusive(&b).is_err());
    }
}

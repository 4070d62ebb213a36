// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! System-call wrappers shared by the daemon and `verityctl`.
//!
//! [`TerminationSignals`]: termination signals received synchronously. They are blocked in
//! every thread, then taken with `sigwait` by one thread, so a signal never interrupts a
//! request half-way and shutdown always runs its cleanup.
#![allow(unsafe_code)]
#![deny(missing_docs)]

use std::io;
use std::mem::MaybeUninit;

/// SIGTERM, SIGINT and SIGHUP, blocked.
pub struct TerminationSignals {
    set: libc::sigset_t,
}

impl std::fmt::Debug for TerminationSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminationSignals(SIGTERM, SIGINT, SIGHUP)")
    }
}

impl TerminationSignals {
    /// Blocks the signals in the calling thread and in every thread it
    /// spawns afterwards; call it before any thread exists.
    pub fn block() -> io::Result<Self> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the writable `sigset_t` it is given.
        if unsafe { libc::sigemptyset(set.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sigemptyset returned 0, so `set` is initialised.
        let mut set = unsafe { set.assume_init() };
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: `set` is an initialised sigset_t and `sig` a valid signal number.
            if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: `set` is initialised and outlives the call; a null old-set
        // pointer is allowed.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(TerminationSignals { set })
    }

    /// Waits for one of the blocked signals and returns its number.
    pub fn wait(&self) -> io::Result<i32> {
        let mut sig: libc::c_int = 0;
        // SAFETY: `self.set` is an initialised sigset_t and `sig` a writable local.
        let ret = unsafe { libc::sigwait(&self.set, &mut sig) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_received_by_wait() {
        let signals = TerminationSignals::block().unwrap();
        // SAFETY: raise(3) sends SIGHUP to the calling thread, where it is blocked (pending).
        assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
        assert_eq!(signals.wait().unwrap(), libc::SIGHUP);
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The seccomp allowlists of the two processes that read host data: `verityfsd` (`--seccomp`,
//! installed after the sandbox and before serving) and `verityctl mount` (installed once TARGET
//! is mounted, before its FUSE threads start).
//!
//! The daemon's list was built empirically (strace of the harness tests and of a guest boot, see
//! docs/design.md) and covers the serving process only: the vring and worker threads,
//! fuse-backend-rs's passthrough layer, the vhost-user connection and logging. The guest mount
//! adds what ending its own mount needs ([`Profile::GuestMount`]). Everything else
//! gets the chosen action. `ioctl` is allowed only for `FIONBIO` (std's `set_nonblocking` on
//! sockets); `prctl` only for thread names; `clone` only for threads (`clone3` answers ENOSYS so
//! libc falls back to `clone`); `socket`, `connect`, `execve`, fork, any write to files, mount
//! and namespace calls are absent.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Action for a syscall outside the allowlist (`--seccomp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// Kill the whole process (SIGSYS).
    Kill,
    /// Allow, but log the syscall to the kernel log (audit).
    Log,
    /// Send SIGSYS to the thread (kills the process: no handler is installed).
    Trap,
    /// No filter.
    None,
}

/// Errors building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The filter could not be built (unsupported architecture or bad rule).
    #[error("cannot build the seccomp filter: {0}")]
    Build(String),
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter; pass --seccomp=none to run without one: {0}")]
    Install(String),
}

/// Syscalls allowed with any arguments.
const ALLOWED: &[libc::c_long] = &[
    // memory
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // threads, futexes, scheduling, time
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrandom,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // signals (the signal thread waits in sigtimedwait; std sets up alternate stacks)
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_restart_syscall,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_sigaltstack,
    // event loop and vhost-user socket
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_accept4,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    // file access (read-only) through fds
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_lseek,
    libc::SYS_getdents64,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_fstatfs,
    libc::SYS_statfs,
    libc::SYS_readlinkat,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_name_to_handle_at,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_flock,
    // fuse-backend-rs clears the umask when it imports the root at FUSE INIT
    libc::SYS_umask,
    // xattrs (read side only; fuse-backend-rs uses /proc/self/fd/N paths)
    libc::SYS_getxattr,
    libc::SYS_lgetxattr,
    libc::SYS_fgetxattr,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_flistxattr,
];

/// Syscalls only on x86_64 (aarch64 has only the *at / p* forms).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[libc::c_long] = &[
    libc::SYS_epoll_wait,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_poll,
    libc::SYS_arch_prctl,
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH: &[libc::c_long] = &[];

fn target_arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SeccompError::Build(e.to_string()))
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| SeccompError::Build(e.to_string()))
}

/// A second filter: `clone3` fails with ENOSYS (its flags are in memory, out of reach of
/// BPF), so libc falls back to `clone`, whose flags the allowlist checks. ERRNO takes
/// precedence over the allowlist's ALLOW, so `clone3` never runs.
pub fn build_clone3_filter() -> Result<BpfProgram, SeccompError> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        target_arch()?,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| SeccompError::Build(e.to_string()))
}

fn arg_equals(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SeccompError> {
    values
        .iter()
        .map(|&v| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)
                .and_then(|c| SeccompRule::new(vec![c]))
                .map_err(|e| SeccompError::Build(e.to_string()))
        })
        .collect()
}

/// The number of syscalls in the allowlist (with or without argument rules).
pub fn allowlist_len() -> usize {
    // + clone + ioctl + prctl
    ALLOWED.len() + ALLOWED_ARCH.len() + 3
}

/// Namespace flags a thread never needs (CLONE_NEWTIME is 0x80).
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64
    | 0x80;

/// Removing the socket and pid file, when the serving process does it itself
/// (`--sandbox=none`; otherwise the supervising parent does).
#[cfg(target_arch = "x86_64")]
const CLEANUP: &[libc::c_long] = &[libc::SYS_unlinkat, libc::SYS_unlink];
#[cfg(not(target_arch = "x86_64"))]
const CLEANUP: &[libc::c_long] = &[libc::SYS_unlinkat];

/// What `verityctl mount` needs beyond the daemon's list: unmounting TARGET at exit
/// (`umount2`, after raising `CAP_SYS_ADMIN` again with `capset`; fuse-backend-rs polls the
/// connection first), and removing its `--ready-file`.
const GUEST_MOUNT: &[libc::c_long] = &[
    libc::SYS_umount2,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_ppoll,
];

/// Which process the filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The daemon's serving process; `cleanup` when it removes its socket and pid file itself
    /// (`--sandbox=none`; otherwise the supervising parent does).
    Daemon {
        /// Allow `unlink` of the socket and pid file.
        cleanup: bool,
    },
    /// `verityctl mount` after mounting TARGET.
    GuestMount,
}

/// Builds the BPF program: allowlisted syscalls pass, everything else gets `action`.
pub fn build_filter(action: SeccompAction, profile: Profile) -> Result<BpfProgram, SeccompError> {
    let extra: Vec<libc::c_long> = match profile {
        Profile::Daemon { cleanup: true } => CLEANUP.to_vec(),
        Profile::Daemon { cleanup: false } => Vec::new(),
        Profile::GuestMount => CLEANUP.iter().chain(GUEST_MOUNT).copied().collect(),
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .chain(&extra)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    // std's set_nonblocking on sockets uses ioctl(FIONBIO).
    rules.insert(libc::SYS_ioctl, arg_equals(1, &[libc::FIONBIO])?);
    // clone only for threads (CLONE_THREAD set, no namespace flag): no fork, no namespaces.
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![
            condition(0, SeccompCmpOp::MaskedEq(thread), thread)?,
            condition(0, SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)?,
        ])
        .map_err(|e| SeccompError::Build(e.to_string()))?],
    );
    // Thread names (std::thread::Builder::name).
    rules.insert(libc::SYS_prctl, arg_equals(0, &[libc::PR_SET_NAME as u64])?);
    SeccompFilter::new(rules, action, SeccompAction::Allow, target_arch()?)
        .and_then(BpfProgram::try_from)
        .map_err(|e| SeccompError::Build(e.to_string()))
}

/// Installs the filter for `mode` and `profile` on every thread of the process (no-op for
/// `None`).
///
/// Needs no-new-privs (set when privileges are dropped) or CAP_SYS_ADMIN.
pub fn install(mode: SeccompMode, profile: Profile) -> Result<(), SeccompError> {
    let action = match mode {
        SeccompMode::None => return Ok(()),
        SeccompMode::Kill => SeccompAction::KillProcess,
        SeccompMode::Log => SeccompAction::Log,
        SeccompMode::Trap => SeccompAction::Trap,
    };
    let program = build_filter(action, profile)?;
    let clone3 = build_clone3_filter()?;
    for p in [&clone3, &program] {
        seccompiler::apply_filter_all_threads(p)
            .map_err(|e| SeccompError::Install(e.to_string()))?;
    }
    log::info!(
        "seccomp filter installed ({} syscalls allowed, others: {mode:?})",
        allowlist_len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_builds_for_every_mode_and_profile() {
        for action in [
            SeccompAction::KillProcess,
            SeccompAction::Log,
            SeccompAction::Trap,
        ] {
            for profile in [
                Profile::Daemon { cleanup: false },
                Profile::Daemon { cleanup: true },
                Profile::GuestMount,
            ] {
                assert!(!build_filter(action.clone(), profile).unwrap().is_empty());
            }
        }
        assert!(install(SeccompMode::None, Profile::GuestMount).is_ok());
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `--seccomp`: the daemon's syscall allowlist, from `verity-seccomp` (shared with
//! `verityctl mount`), installed after the sandbox and before serving.

use verity_seccomp::Profile;
pub use verity_seccomp::{SeccompError, SeccompMode};

/// Installs the daemon's filter; `cleanup` when the serving process removes its socket and
/// pid file itself.
pub fn install(mode: SeccompMode, cleanup: bool) -> Result<(), SeccompError> {
    verity_seccomp::install(mode, Profile::Daemon { cleanup })
}

#[cfg(test)]
mod tests {
    use crate::sandbox_sys::{self as ssys, ChildExit, Forked};
    use seccompiler::SeccompAction;
    use verity_seccomp::{build_clone3_filter, build_filter, Profile};

    /// Forks, installs the kill filter in the child, then makes a syscall outside the list
    /// (`mkdirat`, a write) and one with a forbidden ioctl number. Both children must die
    /// with SIGSYS; a child doing only allowed calls exits normally.
    #[test]
    fn forbidden_syscall_kills_the_process() {
        // Build before forking: the child must not allocate while another test thread may
        // hold the allocator lock.
        let program = build_filter(
            SeccompAction::KillProcess,
            Profile::Daemon { cleanup: false },
        )
        .unwrap();
        let clone3 = build_clone3_filter().unwrap();
        let run = |forbidden: fn()| -> ChildExit {
            match ssys::fork().unwrap() {
                Forked::Child => {
                    let code = match ssys::set_no_new_privs()
                        .ok()
                        .and_then(|()| seccompiler::apply_filter(&clone3).ok())
                        .and_then(|()| seccompiler::apply_filter(&program).ok())
                    {
                        Some(()) => {
                            forbidden();
                            0
                        }
                        None => 3,
                    };
                    ssys::exit_immediately(code)
                }
                Forked::Parent(pid) => ssys::wait_child(pid).unwrap(),
            }
        };
        assert_eq!(
            run(|| {
                let _ = ssys::mkdir_for_test();
            }),
            ChildExit::Signal(libc::SIGSYS)
        );
        assert_eq!(
            run(|| {
                let _ = ssys::ioctl_for_test(libc::FIONREAD);
            }),
            ChildExit::Signal(libc::SIGSYS)
        );
        assert_eq!(
            run(|| {
                let _ = ssys::ioctl_for_test(libc::FIONBIO);
            }),
            ChildExit::Code(0)
        );
        // A fork-like clone and a namespace-creating one are refused; clone3 answers ENOSYS.
        assert_eq!(
            run(|| {
                let _ = ssys::clone_for_test(libc::SIGCHLD);
            }),
            ChildExit::Signal(libc::SIGSYS)
        );
        assert_eq!(
            run(|| {
                let _ = ssys::clone_for_test(libc::CLONE_NEWUSER | libc::CLONE_THREAD);
            }),
            ChildExit::Signal(libc::SIGSYS)
        );
        assert_eq!(
            run(|| {
                if ssys::clone3_for_test().raw_os_error() != Some(libc::ENOSYS) {
                    ssys::exit_immediately(4);
                }
            }),
            ChildExit::Code(0)
        );
    }
}

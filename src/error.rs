// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's top-level error and its exit code.

use std::io;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::logging::LogError;
use crate::pidfile::PidFileError;
use crate::privileges::PrivilegeError;
use crate::sandbox::SandboxError;
use crate::seccomp::SeccompError;
use crate::socket::SocketError;

/// Exit code for a bad command line or configuration (clap uses the same).
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for a failure while running.
pub const EXIT_RUNTIME: i32 = 1;

/// Everything that can stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Logging could not be set up.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The socket could not be created or adopted.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The filesystem layer could not be created.
    #[error("cannot set up the shared directory")]
    CreateFs(#[source] verity_fs::FsConfigError),
    /// The shared directory could not be opened as the content store of a verified share.
    #[error("cannot open the shared directory {0:?}")]
    OpenShare(PathBuf, #[source] io::Error),
    /// Worker threads could not be started.
    #[error("cannot start {0} worker threads (--thread-pool-size)")]
    StartWorkers(usize, #[source] io::Error),
    /// The open-file limit could not be set.
    #[error("cannot set the open-file limit to {0} (--rlimit-nofile); pass a lower value or 0")]
    SetRlimit(u64, #[source] io::Error),
    /// The open-file limit could not be read (the guest's budgets derive from it).
    #[error("cannot read the open-file limit")]
    GetRlimit(#[source] io::Error),
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling")]
    Signals(#[source] io::Error),
    /// The sandbox could not be entered.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Privileges could not be dropped.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// The seccomp filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The vhost-user daemon failed to start.
    #[error("cannot start the vhost-user daemon: {0}")]
    StartDaemon(String),
    /// The vhost-user connection failed.
    #[error("vhost-user connection failed: {0}")]
    Connection(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            // The socket options name something unusable: a configuration problem too.
            Error::Socket(
                SocketError::BadFd { .. }
                | SocketError::Bind { .. }
                | SocketError::PathInUse(_)
                | SocketError::PidFile(PidFileError::Write { .. }),
            )
            | Error::Sandbox(SandboxError::ChrootXattr) => EXIT_CONFIG,
            _ => EXIT_RUNTIME,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::other(e)
    }
}

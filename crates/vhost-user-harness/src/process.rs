// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Spawning and supervising a vhost-user daemon process.
//!
//! [`DaemonProcess::spawn`] starts the binary with `--socket-path=<tmp>/vhost.sock`
//! appended to the caller's arguments, captures stdout and stderr to files
//! in the same temporary directory and waits (bounded) for the socket to
//! appear. Dropping the value kills the daemon; if the current thread is
//! panicking (a failing test) the daemon's stderr is printed first.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use thiserror::Error;

/// How often process state and the socket path are polled while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Default time a daemon gets to create its socket.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of stderr shown when a test fails.
const STDERR_TAIL_BYTES: usize = 8192;

/// Errors from [`DaemonProcess`].
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The temporary directory could not be created.
    #[error("cannot create temporary directory")]
    TempDir(#[source] io::Error),
    /// An output capture file could not be created.
    #[error("cannot create capture file {path}")]
    CaptureFile {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The binary could not be started.
    #[error("cannot spawn {binary}")]
    Spawn {
        /// Binary path.
        binary: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The daemon exited before creating its socket.
    #[error("daemon exited with {status} before creating its socket; stderr:\n{stderr}")]
    ExitedEarly {
        /// Exit status.
        status: ExitStatus,
        /// Captured stderr.
        stderr: String,
    },
    /// The socket did not appear in time.
    #[error("daemon socket did not appear within {timeout:?}; stderr:\n{stderr}")]
    SocketTimeout {
        /// How long the harness waited.
        timeout: Duration,
        /// Captured stderr.
        stderr: String,
    },
    /// The daemon did not exit in time.
    #[error("daemon did not exit within {0:?}")]
    ExitTimeout(Duration),
    /// Querying or killing the process failed.
    #[error("cannot query or signal the daemon")]
    Wait(#[source] io::Error),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, ProcessError>;

/// A running daemon with its own socket directory.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
    exit_status: Option<ExitStatus>,
}

impl DaemonProcess {
    /// Starts `binary args... --socket-path=<tmp>/vhost.sock` and waits up to
    /// [`DEFAULT_STARTUP_TIMEOUT`] for the socket.
    pub fn spawn<I, S>(binary: impl AsRef<Path>, args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_with_timeout(binary, args, DEFAULT_STARTUP_TIMEOUT)
    }

    /// Like [`DaemonProcess::spawn`] with an explicit startup timeout.
    pub fn spawn_with_timeout<I, S>(
        binary: impl AsRef<Path>,
        args: I,
        startup_timeout: Duration,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let binary = binary.as_ref();
        let dir = tempfile::Builder::new()
            .prefix("vhost-user-harness")
            .tempdir()
            .map_err(ProcessError::TempDir)?;
        let socket = dir.path().join("vhost.sock");
        let capture = |name: &str| {
            let path = dir.path().join(name);
            File::create(&path).map_err(|source| ProcessError::CaptureFile { path, source })
        };
        let stdout = capture("stdout.log")?;
        let stderr = capture("stderr.log")?;
        let mut socket_arg = std::ffi::OsString::from("--socket-path=");
        socket_arg.push(&socket);
        let child = Command::new(binary)
            .args(args)
            .arg(socket_arg)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let mut daemon = DaemonProcess {
            child,
            dir,
            socket,
            exit_status: None,
        };
        daemon.wait_for_socket(startup_timeout)?;
        Ok(daemon)
    }

    fn wait_for_socket(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Err(ProcessError::ExitedEarly {
                    status,
                    stderr: self.stderr(),
                });
            }
            let is_socket = std::fs::metadata(&self.socket)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false);
            if is_socket {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProcessError::SocketTimeout {
                    timeout,
                    stderr: self.stderr(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The vhost-user socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The pid file vhost-user daemons keep next to the socket (`<socket>.pid`).
    pub fn pid_file_path(&self) -> PathBuf {
        let mut p = self.socket.clone().into_os_string();
        p.push(".pid");
        PathBuf::from(p)
    }

    /// The temporary directory holding the socket and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read(self.dir.path().join("stderr.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the daemon has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit_status.is_none() {
            self.exit_status = self.child.try_wait().map_err(ProcessError::Wait)?;
        }
        Ok(self.exit_status)
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.try_wait()?.is_none())
    }

    /// Waits up to `timeout` for the daemon to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(ProcessError::ExitTimeout(timeout));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the daemon (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.child.kill().map_err(ProcessError::Wait)?;
        let status = self.child.wait().map_err(ProcessError::Wait)?;
        self.exit_status = Some(status);
        Ok(status)
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.kill();
        if std::thread::panicking() {
            let stderr = self.stderr();
            let tail = stderr
                .char_indices()
                .rev()
                .nth(STDERR_TAIL_BYTES)
                .map_or(stderr.as_str(), |(i, _)| &stderr[i..]);
            eprintln!("---- daemon stderr (tail) ----\n{tail}\n---- end daemon stderr ----");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_exit_is_reported_with_status() {
        let err = DaemonProcess::spawn("sh", ["-c", "echo boom >&2; exit 3"]).unwrap_err();
        match err {
            ProcessError::ExitedEarly { status, stderr } => {
                assert_eq!(status.code(), Some(3));
                assert!(stderr.contains("boom"), "{stderr}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_socket_times_out() {
        let start = Instant::now();
        let err = DaemonProcess::spawn_with_timeout(
            "sh",
            ["-c", "sleep 30", "sh"],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, ProcessError::SocketTimeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn wait_exit_is_bounded_and_kill_reaps() {
        // Bind the socket here and run a child that merely sleeps, so the
        // wait logic is tested without a real daemon.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vhost.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let mut child = DaemonProcess {
            child: Command::new("sleep").arg("30").spawn().unwrap(),
            dir,
            socket,
            exit_status: None,
        };
        child.wait_for_socket(Duration::from_secs(1)).unwrap();
        assert!(child.is_running().unwrap());
        assert!(matches!(
            child.wait_exit(Duration::from_millis(50)),
            Err(ProcessError::ExitTimeout(_))
        ));
        assert!(!child.kill().unwrap().success());
        assert!(child
            .pid_file_path()
            .to_string_lossy()
            .ends_with("vhost.sock.pid"));
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The vhost-user listening socket: created at `--socket-path` or inherited via `--fd`.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::RawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use vhost::vhost_user::Listener;

use crate::config::ListenConfig;
use crate::pidfile::{pid_file_path, PidFile, PidFileError};
use crate::sys;

/// Socket file permissions: owner only, or owner and group with `--socket-group`.
const UMASK_OWNER_ONLY: libc::mode_t = 0o077;
const UMASK_OWNER_AND_GROUP: libc::mode_t = 0o007;

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The pid file could not be created or locked.
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    /// Something other than a socket is in the way.
    #[error("--socket-path {0:?} exists and is not a socket; remove it or choose another path")]
    PathInUse(PathBuf),
    /// bind/listen failed.
    #[error(
        "cannot listen on --socket-path {path:?}; check that its directory exists and is writable"
    )]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// chown to the group failed.
    #[error("cannot give group {gid} access to {path:?} (--socket-group)")]
    Chown {
        /// The socket path.
        path: PathBuf,
        /// The group.
        gid: u32,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The inherited fd is not usable.
    #[error("--fd={fd} is not a listening UNIX socket inherited from the launcher")]
    BadFd {
        /// The fd.
        fd: RawFd,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The listener plus what must be removed when the daemon exits.
pub struct ListenSocket {
    /// The vhost-user listener (removes its socket file on drop, if it created one).
    pub listener: Listener,
    /// The locked pid file (removed on drop), only with `--socket-path`.
    pub pid_file: Option<PidFile>,
    /// The socket file, only with `--socket-path` (removed on drop).
    pub path: Option<SocketFile>,
}

/// A socket file this process created; it is removed when dropped unless [`SocketFile::keep`]
/// hands the removal to another process.
#[derive(Debug)]
pub struct SocketFile(Option<PathBuf>);

impl SocketFile {
    /// The socket's path.
    pub fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }

    /// Forgets the file without removing it (another process cleans it up).
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // The socket created at --socket-path is ours to remove (an inherited --fd is not).
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

impl std::fmt::Debug for ListenSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenSocket")
            .field("pid_file", &self.pid_file)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ListenSocket {
    /// Creates or adopts the socket described by `cfg`.
    pub fn open(cfg: &ListenConfig) -> Result<Self, SocketError> {
        match cfg {
            ListenConfig::Fd(fd) => {
                let listener = sys::adopt_listening_socket(*fd)
                    .map_err(|source| SocketError::BadFd { fd: *fd, source })?;
                Ok(ListenSocket {
                    listener: Listener::from(listener),
                    pid_file: None,
                    path: None,
                })
            }
            ListenConfig::Socket { path, gid } => {
                // Lock the pid file first, so a running instance's socket is never replaced.
                let pid_file = PidFile::create(pid_file_path(path))?;
                remove_stale_socket(path)?;
                let mask = if gid.is_some() {
                    UMASK_OWNER_AND_GROUP
                } else {
                    UMASK_OWNER_ONLY
                };
                let old_mask = sys::set_umask(mask);
                let listener = bind_listening(path);
                sys::set_umask(old_mask);
                let listener = listener.map_err(|source| SocketError::Bind {
                    path: path.clone(),
                    source,
                })?;
                if let Some(gid) = *gid {
                    std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| {
                        SocketError::Chown {
                            path: path.clone(),
                            gid,
                            source,
                        }
                    })?;
                }
                Ok(ListenSocket {
                    listener: Listener::from(listener),
                    pid_file: Some(pid_file),
                    path: Some(SocketFile(Some(path.clone()))),
                })
            }
        }
    }

    /// Files to delete if the process is terminated by a signal.
    pub fn cleanup_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .path
            .iter()
            .filter_map(|f| f.path().map(Path::to_path_buf))
            .collect();
        if let Some(pid) = &self.pid_file {
            paths.push(pid.path().to_owned());
        }
        paths
    }
}

/// Binds and listens on a temporary name in the directory of `path`, then renames the socket
/// into place.
///
/// bind(2) makes the path appear before listen(2) makes it connectable; a frontend that polls
/// for the path and connects at once (as launchers do) could hit ECONNREFUSED in between.
/// The rename makes the path appear only once it accepts connections. When the temporary name
/// cannot be bound (e.g. it would exceed the 107-byte socket path limit), `path` is bound
/// directly.
fn bind_listening(path: &Path) -> io::Result<UnixListener> {
    let tmp = path.with_file_name(format!(".verityfsd-{}.sock", std::process::id()));
    // A leftover from a crashed run with the same pid; it is never a live socket of ours.
    let _ = fs::remove_file(&tmp);
    match UnixListener::bind(&tmp) {
        Ok(listener) => match fs::rename(&tmp, path) {
            Ok(()) => Ok(listener),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        },
        Err(_) => UnixListener::bind(path),
    }
}

/// Removes a socket left behind by a previous run; refuses to touch anything else.
fn remove_stale_socket(path: &Path) -> Result<(), SocketError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            let _ = fs::remove_file(path);
            Ok(())
        }
        Ok(_) => Err(SocketError::PathInUse(path.to_owned())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn socket_is_created_private_and_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vfs.sock");
        let cfg = ListenConfig::Socket {
            path: path.clone(),
            gid: None,
        };
        let sock = ListenSocket::open(&cfg).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o077, 0);
        assert!(pid_file_path(&path).exists());
        assert_eq!(sock.cleanup_paths().len(), 2);
        // A second instance on the same path is refused while the first runs.
        assert!(matches!(
            ListenSocket::open(&cfg),
            Err(SocketError::PidFile(PidFileError::Locked(_)))
        ));
        // Only the socket and the pid file are left in the directory (no temporary name).
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        drop(sock);
        assert!(!path.exists());
        assert!(!pid_file_path(&path).exists());
    }

    #[test]
    fn regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious");
        fs::write(&path, b"data").unwrap();
        let cfg = ListenConfig::Socket {
            path: path.clone(),
            gid: None,
        };
        assert!(matches!(
            ListenSocket::open(&cfg),
            Err(SocketError::PathInUse(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `<socket>.pid`: records the daemon's pid and, through an flock, keeps a second instance
//! from taking over the same socket path (as virtiofsd does).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// Errors creating the pid file.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// The file could not be opened or written.
    #[error("cannot write pid file {path:?}; check that its directory exists and is writable")]
    Write {
        /// The pid file path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another process holds the lock.
    #[error("pid file {0:?} is locked: another verityfsd serves this socket; stop it or use another --socket-path")]
    Locked(PathBuf),
}

/// A locked pid file, removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

/// The pid file path for `socket` (`<socket>.pid`).
pub fn pid_file_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

impl PidFile {
    /// Creates and locks `path`, then writes the current pid into it.
    pub fn create(path: PathBuf) -> Result<Self, PidFileError> {
        let write_err = |source| PidFileError::Write {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(write_err)?;
        sys::try_lock_exclusive(&file).map_err(|_| PidFileError::Locked(path.clone()))?;
        file.set_len(0).map_err(write_err)?;
        writeln!(file, "{}", std::process::id()).map_err(write_err)?;
        Ok(PidFile { path, _file: file })
    }

    /// The path of the pid file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file but leaves it in place: for a sandboxed child, whose parent removes it.
    pub fn close_without_removing(mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_appends_pid() {
        assert_eq!(
            pid_file_path(Path::new("/run/vfs.sock")),
            PathBuf::from("/run/vfs.sock.pid")
        );
    }

    #[test]
    fn pid_file_is_written_locked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.pid");
        let pid = PidFile::create(path.clone()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        assert!(matches!(
            PidFile::create(path.clone()),
            Err(PidFileError::Locked(_))
        ));
        drop(pid);
        assert!(!path.exists());
    }
}

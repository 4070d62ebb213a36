// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host files as data sources for the Merkle builders.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use verity_merkle::ReadAt;

/// A file read with positional reads (safe to share between threads).
#[derive(Debug)]
pub struct FileSource<'a>(pub &'a File);

impl ReadAt for FileSource<'_> {
    type Error = io::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, io::Error> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// Opens `path` for reading without blocking on a FIFO (its open would wait
/// for a writer); O_NONBLOCK has no effect on reads of regular files.
pub fn open_for_reading(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

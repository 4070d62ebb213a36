// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The verifying read path: widen to whole Merkle blocks, read them into a private buffer
//! through the inner filesystem, verify every block, and only then copy the requested range to
//! the guest's buffer. No host byte reaches guest memory before its block is verified.

use std::cell::RefCell;
use std::io::{self, Write};

use fuse_backend_rs::api::filesystem::{Context, FileSystem, ZeroCopyWriter};
use fuse_backend_rs::file_buf::FileVolatileSlice;
use fuse_backend_rs::file_traits::FileReadWriteVolatile;
use verity_merkle::{ReadAt, TreeSource, Verifier, VerifyError};
use vm_memory::VolatileSlice;

/// A `ZeroCopyWriter` over a private byte buffer: the inner filesystem `pread`s into it.
#[derive(Debug)]
pub(crate) struct BufWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> BufWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        BufWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.pos
    }
}

impl Write for BufWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.buf.len() - self.pos);
        self.buf[self.pos..self.pos + n].copy_from_slice(&data[..n]);
        self.pos += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ZeroCopyWriter for BufWriter<'_> {
    fn write_from(
        &mut self,
        f: &mut dyn FileReadWriteVolatile,
        count: usize,
        off: u64,
    ) -> io::Result<usize> {
        let n = count.min(self.buf.len() - self.pos);
        let slice = VolatileSlice::from(&mut self.buf[self.pos..self.pos + n]);
        let got = f.read_at_volatile(FileVolatileSlice::from_volatile_slice(&slice), off)?;
        self.pos += got.min(n);
        Ok(got.min(n))
    }

    fn available_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// An open file of the inner filesystem as a [`ReadAt`] (used to build trees).
pub(crate) struct InnerFile<'a, F> {
    pub(crate) fs: &'a F,
    pub(crate) ctx: &'a Context,
    pub(crate) inode: u64,
    pub(crate) handle: u64,
    /// The flags the handle was opened with.
    pub(crate) flags: u32,
}

impl<F> std::fmt::Debug for InnerFile<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InnerFile({}, {})", self.inode, self.handle)
    }
}

impl<F: FileSystem<Inode = u64, Handle = u64> + Sync> ReadAt for InnerFile<'_, F> {
    type Error = io::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_full(
            self.fs,
            self.ctx,
            self.inode,
            self.handle,
            buf,
            offset,
            None,
            self.flags,
        )
    }
}

/// Reads up to `buf.len()` bytes at `offset` through the inner filesystem; short only at EOF.
#[allow(clippy::too_many_arguments)]
fn read_full<F: FileSystem<Inode = u64, Handle = u64>>(
    fs: &F,
    ctx: &Context,
    inode: u64,
    handle: u64,
    buf: &mut [u8],
    offset: u64,
    lock_owner: Option<u64>,
    flags: u32,
) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let want = u32::try_from(buf.len() - filled).unwrap_or(u32::MAX);
        let mut w = BufWriter::new(&mut buf[filled..]);
        let n = fs.read(
            ctx,
            inode,
            handle,
            &mut w,
            want,
            offset + filled as u64,
            lock_owner,
            flags,
        )?;
        let n = n.min(w.len());
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// The block-aligned window covering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// First data block.
    pub(crate) first_block: u64,
    /// File offset of the window (block aligned).
    pub(crate) start: u64,
    /// Window length (whole blocks, the last one clamped at the verified size).
    pub(crate) len: usize,
    /// Offset of the requested range inside the window.
    pub(crate) skip: usize,
    /// Length of the requested range (clamped at the verified size).
    pub(crate) take: usize,
}

/// The window for `size` bytes at `offset` of a file of `data_size` bytes with `block_size`
/// blocks; `None` when nothing is to be returned (at or past EOF, or an empty request).
pub(crate) fn widen(offset: u64, size: u32, data_size: u64, block_size: u64) -> Option<Window> {
    if size == 0 || offset >= data_size || block_size == 0 {
        return None;
    }
    let end = offset.saturating_add(u64::from(size)).min(data_size);
    let first_block = offset / block_size;
    let start = first_block * block_size;
    let wend = end
        .div_ceil(block_size)
        .saturating_mul(block_size)
        .min(data_size);
    Some(Window {
        first_block,
        start,
        len: usize::try_from(wend - start).ok()?,
        skip: usize::try_from(offset - start).ok()?,
        take: usize::try_from(end - offset).ok()?,
    })
}

thread_local! {
    /// One read buffer per serving thread, reused across reads.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads `size` bytes at `offset` of `file`, verifying every block of the widened window before
/// copying the requested range to `w`.
///
/// The whole window must be there: a host file shorter than the verified size (truncated after
/// OPEN) is a failure like a bad block, never a clean EOF. A failure is reported through
/// `on_failure`; it is `EIO` with nothing copied, or with `audit` the bytes are served anyway.
/// Host read errors are returned as they are.
pub(crate) fn verified_read<R, S>(
    file: &R,
    verifier: &Verifier<S>,
    w: &mut dyn ZeroCopyWriter,
    size: u32,
    offset: u64,
    audit: bool,
    on_failure: &dyn Fn(&ReadFailure),
) -> io::Result<usize>
where
    R: ReadAt<Error = io::Error> + ?Sized,
    S: TreeSource<Error = io::Error>,
{
    let g = verifier.geometry();
    let Some(win) = widen(offset, size, g.data_size(), g.block_size()) else {
        return Ok(0);
    };
    READ_BUF.with_borrow_mut(|buf| {
        if buf.len() < win.len {
            buf.resize(win.len, 0);
        }
        let window = &mut buf[..win.len];
        let got = file.read_at(win.start, window)?;
        let failure = if got < win.len {
            Some(ReadFailure::Short {
                at: win.start + got as u64,
                verified_size: g.data_size(),
            })
        } else {
            verifier
                .verify_blocks(win.first_block, window)
                .err()
                .map(ReadFailure::Verify)
        };
        if let Some(f) = failure {
            on_failure(&f);
            if !audit {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        let served = got.min(win.skip + win.take).saturating_sub(win.skip);
        w.write_all(&window[win.skip..win.skip + served])?;
        Ok(served)
    })
}

/// Why a verified read failed.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The host file ended before the verified size.
    Short {
        /// Where the host's data ended.
        at: u64,
        /// The size the manifest pins.
        verified_size: u64,
    },
    /// A block did not verify.
    Verify(VerifyError<io::Error>),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Short { at, verified_size } => write!(
                f,
                "the host file ends at byte {at}, the manifest size is {verified_size}"
            ),
            ReadFailure::Verify(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening() {
        assert_eq!(widen(0, 0, 100, 4096), None);
        assert_eq!(widen(100, 10, 100, 4096), None);
        assert_eq!(
            widen(5000, 100, 10_000, 4096),
            Some(Window {
                first_block: 1,
                start: 4096,
                len: 4096,
                skip: 904,
                take: 100
            })
        );
        // Clamped at EOF inside the last block.
        assert_eq!(
            widen(9000, 4096, 10_000, 4096),
            Some(Window {
                first_block: 2,
                start: 8192,
                len: 1808,
                skip: 808,
                take: 1000
            })
        );
        // 64K blocks: a 1 MiB read at an odd offset spans 17 blocks.
        let w = widen(65_537, 1 << 20, 1 << 30, 65_536).unwrap();
        assert_eq!((w.first_block, w.start, w.len), (1, 65_536, 17 * 65_536));
        assert_eq!((w.skip, w.take), (1, 1 << 20));
        // Near u64::MAX nothing overflows.
        assert!(widen(u64::MAX - 1, u32::MAX, u64::MAX, 4096).is_some());
    }

    #[test]
    fn buf_writer_stops_at_capacity() {
        let mut b = [0u8; 4];
        let mut w = BufWriter::new(&mut b);
        assert_eq!(w.write(b"abcdef").unwrap(), 4);
        assert_eq!(w.available_bytes(), 0);
        assert_eq!(&b, b"abcd");
    }
}

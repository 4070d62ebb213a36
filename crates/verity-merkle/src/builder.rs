// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Tree builders: a streaming one over any byte stream and a parallel one over
//! a positional source. Both keep only the tree in memory, never the file, and
//! produce identical bytes (spec §1.3-1.6).

use std::io::{self, Read};
use std::sync::Mutex;

use crate::descriptor::Descriptor;
use crate::geometry::{Geometry, GeometryError};
use crate::hash::BlockHasher;
use crate::params::MerkleParams;
use crate::tree::MerkleTree;

/// Bytes of input each parallel work item covers.
const PARALLEL_CHUNK_BYTES: usize = 4 << 20;

/// Bytes read at a time: small enough to stay in the CPU cache while hashed.
const READ_BYTES: usize = 32 << 10;

/// Errors building a tree.
#[derive(Debug, thiserror::Error)]
pub enum BuildError<E> {
    /// The input is too large for a tree.
    #[error("cannot build a tree")]
    Geometry(#[source] GeometryError),
    /// The source failed.
    #[error("reading the data failed")]
    Source(#[source] E),
    /// The source ended before the announced size.
    #[error("data ended at byte {at} before the expected size {expected}")]
    ShortRead {
        /// Offset where the data ended.
        at: u64,
        /// The size that was expected.
        expected: u64,
    },
}

/// A positional byte source, such as a file opened for reading.
pub trait ReadAt {
    /// The source's error type.
    type Error;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of data.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error>;
}

impl ReadAt for [u8] {
    type Error = std::convert::Infallible;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Builds a tree incrementally from bytes fed in order.
#[derive(Debug)]
pub struct TreeBuilder {
    params: MerkleParams,
    hasher: BlockHasher,
    /// Partial data block not yet hashed.
    pending: Vec<u8>,
    /// Hashes of the data blocks so far (level 0 contents, unpadded).
    level0: Vec<u8>,
    data_size: u64,
}

impl TreeBuilder {
    /// Starts an empty tree.
    pub fn new(params: MerkleParams) -> Self {
        let hasher = BlockHasher::new(&params);
        TreeBuilder {
            pending: Vec::with_capacity(params.block_size()),
            params,
            hasher,
            level0: Vec::new(),
            data_size: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        let bs = self.params.block_size();
        self.data_size += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (bs - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < bs {
                return;
            }
            let block = std::mem::take(&mut self.pending);
            self.push_block(&block);
            self.pending = block;
            self.pending.clear();
        }
        let whole = data.len() / bs * bs;
        self.push_blocks(&data[..whole]);
        self.pending.extend_from_slice(&data[whole..]);
    }

    fn push_block(&mut self, block: &[u8]) {
        let d = self.hasher.digest_size();
        let at = self.level0.len();
        self.level0.resize(at + d, 0);
        self.hasher.hash_block_into(block, &mut self.level0[at..]);
    }

    fn push_blocks(&mut self, blocks: &[u8]) {
        let bs = self.params.block_size();
        let d = self.hasher.digest_size();
        let at = self.level0.len();
        self.level0.resize(at + blocks.len() / bs * d, 0);
        for (block, out) in blocks
            .chunks_exact(bs)
            .zip(self.level0[at..].chunks_exact_mut(d))
        {
            self.hasher.hash_block_into(block, out);
        }
    }

    /// Finishes the tree.
    pub fn finish(mut self) -> Result<MerkleTree, GeometryError> {
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.push_block(&block);
        }
        finish_tree(&self.params, &self.hasher, self.data_size, self.level0)
    }
}

/// Builds the tree of everything `reader` yields, reading 1 MiB at a time.
pub fn build_from_reader<R: Read>(
    params: MerkleParams,
    mut reader: R,
) -> Result<MerkleTree, BuildError<io::Error>> {
    let mut builder = TreeBuilder::new(params);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BuildError::Source(e)),
        };
        builder.update(&buf[..n]);
    }
    builder.finish().map_err(BuildError::Geometry)
}

/// Builds the tree of a whole in-memory buffer.
pub fn build_from_bytes(params: MerkleParams, data: &[u8]) -> Result<MerkleTree, GeometryError> {
    let mut b = TreeBuilder::new(params);
    b.update(data);
    b.finish()
}

/// Builds the tree of the first `data_size` bytes of `source` on `threads`
/// threads (at least one). The bytes are identical to the streaming builder's.
pub fn build_parallel<S>(
    params: MerkleParams,
    source: &S,
    data_size: u64,
    threads: usize,
) -> Result<MerkleTree, BuildError<S::Error>>
where
    S: ReadAt + Sync + ?Sized,
    S::Error: Send,
{
    let geometry = Geometry::new(&params, data_size).map_err(BuildError::Geometry)?;
    let hasher = BlockHasher::new(&params);
    let bs = params.block_size();
    let d = params.digest_size();
    let blocks = usize::try_from(geometry.data_blocks())
        .map_err(|_| BuildError::Geometry(GeometryError::TooLarge(data_size)))?;
    let mut level0 = vec![
        0u8;
        blocks
            .checked_mul(d)
            .ok_or(BuildError::Geometry(GeometryError::TooLarge(data_size)))?
    ];
    let blocks_per_chunk = (PARALLEL_CHUNK_BYTES / bs).max(1);
    let work: Mutex<_> = Mutex::new(level0.chunks_mut(blocks_per_chunk * d).enumerate());
    let failure: Mutex<Option<BuildError<S::Error>>> = Mutex::new(None);
    // Reads go through a small buffer that stays in the CPU cache while it is
    // hashed; each work item (a slice of level 0) spans several reads.
    let blocks_per_read = (READ_BYTES / bs).max(1);
    let worker = || {
        let mut buf = vec![0u8; blocks_per_read * bs];
        loop {
            if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                return;
            }
            let item = work.lock().ok().and_then(|mut w| w.next());
            let Some((chunk, hashes)) = item else { return };
            let mut block = (chunk * blocks_per_chunk) as u64;
            for outs in hashes.chunks_mut(blocks_per_read * d) {
                let start = block * bs as u64;
                let want = usize::try_from((data_size - start).min((outs.len() / d * bs) as u64))
                    .unwrap_or(usize::MAX);
                if let Err(e) = read_full(source, start, &mut buf[..want], data_size) {
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
                for (i, out) in outs.chunks_exact_mut(d).enumerate() {
                    let lo = i * bs;
                    let hi = (lo + bs).min(want);
                    hasher.hash_block_into(&buf[lo..hi], out);
                }
                block += (outs.len() / d) as u64;
            }
        }
    };
    let threads = threads.max(1);
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(worker);
            }
        });
    }
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    finish_tree(&params, &hasher, data_size, level0).map_err(BuildError::Geometry)
}

fn read_full<S: ReadAt + ?Sized>(
    source: &S,
    offset: u64,
    buf: &mut [u8],
    expected: u64,
) -> Result<(), BuildError<S::Error>> {
    let mut done = 0;
    while done < buf.len() {
        let n = source
            .read_at(offset + done as u64, &mut buf[done..])
            .map_err(BuildError::Source)?;
        if n == 0 {
            return Err(BuildError::ShortRead {
                at: offset + done as u64,
                expected,
            });
        }
        done += n;
    }
    Ok(())
}

/// Builds the levels above level 0 and the descriptor from the data-block hashes.
fn finish_tree(
    params: &MerkleParams,
    hasher: &BlockHasher,
    data_size: u64,
    level0: Vec<u8>,
) -> Result<MerkleTree, GeometryError> {
    let geometry = Geometry::new(params, data_size)?;
    let bs = params.block_size();
    let d = params.digest_size();
    let mut levels: Vec<Vec<u8>> = Vec::with_capacity(geometry.levels());
    let mut current = level0;
    let root = loop {
        if current.len() <= d {
            // 0 hashes (empty file: root is zero) or exactly one.
            let mut root = vec![0u8; d];
            root[..current.len()].copy_from_slice(&current);
            break root;
        }
        let padded = current.len().div_ceil(bs) * bs;
        current.resize(padded, 0);
        let mut next = vec![0u8; padded / bs * d];
        for (block, out) in current.chunks_exact(bs).zip(next.chunks_exact_mut(d)) {
            hasher.hash_block_into(block, out);
        }
        levels.push(current);
        current = next;
    };
    debug_assert_eq!(levels.len(), geometry.levels());
    let mut tree = Vec::with_capacity(usize::try_from(geometry.tree_size()).unwrap_or(0));
    for level in levels.iter().rev() {
        tree.extend_from_slice(level);
    }
    Ok(MerkleTree::new(
        Descriptor::new(params.clone(), data_size, &root),
        tree,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::HashAlgorithm;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((31 * (i % 251) + 7) % 251) as u8).collect()
    }

    #[test]
    fn known_answers_for_small_files() {
        let p = MerkleParams::default();
        let d = |n| {
            build_from_bytes(p.clone(), &data(n))
                .unwrap()
                .digest()
                .to_string()
        };
        assert_eq!(
            d(0),
            "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
        let t = build_from_bytes(p.clone(), &data(4097)).unwrap();
        assert_eq!(
            hex::encode(t.root_hash()),
            "331cecb58d7b64413ac2c611c345b06f9ca92842dc6146b9dc46443da9aa3dce"
        );
        assert_eq!(t.tree_bytes().len(), 4096);
    }

    #[test]
    fn streaming_in_odd_pieces_equals_one_shot() {
        let input = data(300_000);
        let p = MerkleParams::new(HashAlgorithm::Sha512, 1024, b"salt").unwrap();
        let whole = build_from_bytes(p.clone(), &input).unwrap();
        let mut b = TreeBuilder::new(p.clone());
        for piece in input.chunks(777) {
            b.update(piece);
        }
        assert_eq!(b.finish().unwrap(), whole);
        let from_reader = build_from_reader(p, &input[..]).unwrap();
        assert_eq!(from_reader, whole);
    }

    #[test]
    fn parallel_equals_streaming() {
        for size in [0usize, 1, 4096, 4097, (4 << 20) + 12345, 9 << 20] {
            let input = data(size);
            for p in [
                MerkleParams::default(),
                MerkleParams::new(HashAlgorithm::Sha256, 1024, b"x").unwrap(),
            ] {
                let want = build_from_bytes(p.clone(), &input).unwrap();
                for threads in [1, 2, 3] {
                    let got = build_parallel(p.clone(), &input[..], size as u64, threads).unwrap();
                    assert_eq!(got, want, "size {size} threads {threads}");
                }
            }
        }
    }

    #[test]
    fn parallel_reports_short_source() {
        let input = data(10_000);
        let err = build_parallel(MerkleParams::default(), &input[..], 20_000, 2).unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::ShortRead {
                    at: 10_000,
                    expected: 20_000
                }
            ),
            "{err:?}"
        );
    }
}

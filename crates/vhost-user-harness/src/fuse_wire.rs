// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! FUSE message encoding and reply decoding (Linux FUSE ABI, as used by
//! virtio-fs: one request = `fuse_in_header` + arguments in the readable
//! buffers, one reply = `fuse_out_header` + payload in the writable ones).
//!
//! The structs come from `fuse_backend_rs::abi::fuse_abi`; decoding copies
//! bytes into a default value so that unaligned reply buffers are fine.

use std::mem::size_of;

use fuse_backend_rs::abi::fuse_abi::{Attr, Dirent, EntryOut, InHeader, InitOut, OutHeader};
use thiserror::Error;
use vm_memory::ByteValued;

use crate::harness::HarnessError;

/// Size of `fuse_in_header`.
pub const IN_HEADER_SIZE: usize = size_of::<InHeader>();
/// Size of `fuse_out_header`.
pub const OUT_HEADER_SIZE: usize = size_of::<OutHeader>();
/// Directory entries are padded to 8 bytes (`FUSE_DIRENT_ALIGN`).
const DIRENT_ALIGN: usize = 8;

/// Errors from FUSE requests.
#[derive(Debug, Error)]
pub enum FuseError {
    /// The daemon answered with an error (positive errno).
    #[error("daemon replied with errno {0} ({err})", err = std::io::Error::from_raw_os_error(*.0))]
    Errno(i32),
    /// The transport failed (timeout, bad chain, control plane...).
    #[error(transparent)]
    Transport(#[from] HarnessError),
    /// The reply is shorter than `fuse_out_header`.
    #[error("reply of {0} bytes has no complete fuse_out_header")]
    NoHeader(usize),
    /// `fuse_out_header.len` disagrees with the length in the used ring.
    #[error("fuse_out_header.len {header} but {used} bytes were written")]
    LengthMismatch {
        /// Length in the header.
        header: u32,
        /// Length from the used ring.
        used: usize,
    },
    /// The reply is for another request.
    #[error("reply unique {got} does not match request unique {expected}")]
    UniqueMismatch {
        /// Unique of the request.
        expected: u64,
        /// Unique in the reply.
        got: u64,
    },
    /// An error reply carried a payload, or a positive error value.
    #[error("malformed error reply: error {error}, {payload} payload bytes")]
    MalformedError {
        /// The `error` field.
        error: i32,
        /// Payload length.
        payload: usize,
    },
    /// A successful reply payload is too short or inconsistent.
    #[error("malformed {what} reply: {detail}")]
    MalformedPayload {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl FuseError {
    /// The errno if the daemon replied with an error, `None` for transport
    /// or decoding failures.
    pub fn errno(&self) -> Option<i32> {
        match self {
            FuseError::Errno(e) => Some(*e),
            _ => None,
        }
    }
}

/// Result alias for FUSE operations.
pub type Result<T> = std::result::Result<T, FuseError>;

/// A decoded reply: `error` is the raw header value (0 or a negative errno).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseReply {
    /// `fuse_out_header.unique`.
    pub unique: u64,
    /// `fuse_out_header.error` (0 or `-errno`).
    pub error: i32,
    /// Bytes after the header.
    pub payload: Vec<u8>,
}

impl FuseReply {
    /// `Ok(payload)` for success, `Err(Errno(e))` for an error reply.
    pub fn into_result(self) -> Result<Vec<u8>> {
        match self.error {
            0 => Ok(self.payload),
            e if e < 0 && self.payload.is_empty() => Err(FuseError::Errno(-e)),
            e => Err(FuseError::MalformedError {
                error: e,
                payload: self.payload.len(),
            }),
        }
    }

    /// The positive errno of an error reply, 0 for success.
    pub fn errno(&self) -> i32 {
        self.error.saturating_neg()
    }
}

/// A looked-up inode (`fuse_entry_out`).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Node id to use in later requests (0 = negative entry).
    pub nodeid: u64,
    /// Inode generation.
    pub generation: u64,
    /// Attributes.
    pub attr: Attr,
}

impl From<EntryOut> for Entry {
    fn from(e: EntryOut) -> Self {
        Entry {
            nodeid: e.nodeid,
            generation: e.generation,
            attr: e.attr,
        }
    }
}

/// One `fuse_dirent` from READDIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Offset to pass to the next READDIR to continue after this entry.
    pub offset: u64,
    /// `DT_*` type.
    pub kind: u32,
    /// Name bytes.
    pub name: Vec<u8>,
}

/// One `fuse_direntplus` from READDIRPLUS.
#[derive(Debug, Clone)]
pub struct DirEntryPlus {
    /// Lookup result (counts as a lookup when `nodeid != 0`).
    pub entry: Entry,
    /// The directory entry.
    pub dirent: DirEntry,
}

/// Reply of GETXATTR / LISTXATTR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrReply {
    /// Answer to a size probe (`size == 0` in the request).
    Size(u32),
    /// The value (or the NUL-separated name list).
    Data(Vec<u8>),
}

/// Reply of IOCTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoctlReply {
    /// `fuse_ioctl_out.result` (what the guest's ioctl returns).
    pub result: i32,
    /// `fuse_ioctl_out.flags`.
    pub flags: u32,
    /// Output data after `fuse_ioctl_out`.
    pub data: Vec<u8>,
}

/// Result of INIT.
#[derive(Debug, Clone, Copy)]
pub struct InitInfo {
    /// Raw `fuse_init_out` (zero-extended if the daemon sent a short one).
    pub out: InitOut,
    /// Length of the reply payload.
    pub reply_len: usize,
}

impl InitInfo {
    /// Negotiated flags, including `flags2` when `INIT_EXT` was used.
    pub fn flags(&self) -> u64 {
        u64::from(self.out.flags) | (u64::from(self.out.flags2) << 32)
    }

    /// Largest READ the client should send, in bytes.
    pub fn max_read(&self) -> u32 {
        const PAGE: u32 = 4096;
        /// Linux's `FUSE_DEFAULT_MAX_PAGES_PER_REQ`.
        const DEFAULT_MAX_PAGES: u32 = 32;
        if self.flags() & FLAG_MAX_PAGES != 0 && self.out.max_pages != 0 {
            u32::from(self.out.max_pages) * PAGE
        } else {
            DEFAULT_MAX_PAGES * PAGE
        }
    }
}

/// `FUSE_MAX_PAGES` init flag.
pub const FLAG_MAX_PAGES: u64 = 1 << 22;

/// Encodes a request with a correct `fuse_in_header`.
pub fn encode_request(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(IN_HEADER_SIZE + body.len()).unwrap_or(u32::MAX);
    encode_request_with_len(len, opcode, unique, nodeid, body)
}

/// Encodes a request whose `fuse_in_header.len` is `header_len` regardless
/// of the real size (for truncated/oversized framing tests).
pub fn encode_request_with_len(
    header_len: u32,
    opcode: u32,
    unique: u64,
    nodeid: u64,
    body: &[u8],
) -> Vec<u8> {
    let header = InHeader {
        len: header_len,
        opcode,
        unique,
        nodeid,
        uid: 0,
        gid: 0,
        pid: std::process::id(),
        padding: 0,
    };
    let mut out = Vec::with_capacity(IN_HEADER_SIZE + body.len());
    out.extend_from_slice(header.as_slice());
    out.extend_from_slice(body);
    out
}

/// Decodes reply bytes as written by the daemon.
pub fn decode_reply(bytes: &[u8], expected_unique: u64) -> Result<FuseReply> {
    let header: OutHeader = decode(bytes).ok_or(FuseError::NoHeader(bytes.len()))?;
    if header.len as usize != bytes.len() {
        return Err(FuseError::LengthMismatch {
            header: header.len,
            used: bytes.len(),
        });
    }
    if header.unique != expected_unique {
        return Err(FuseError::UniqueMismatch {
            expected: expected_unique,
            got: header.unique,
        });
    }
    Ok(FuseReply {
        unique: header.unique,
        error: header.error,
        payload: bytes[OUT_HEADER_SIZE..].to_vec(),
    })
}

/// Copies the start of `bytes` into a `T`; `None` if too short.
pub fn decode<T: ByteValued + Default>(bytes: &[u8]) -> Option<T> {
    let mut value = T::default();
    let n = size_of::<T>();
    value.as_mut_slice().copy_from_slice(bytes.get(..n)?);
    Some(value)
}

/// Decodes a fixed-size reply struct, requiring at least its size.
pub fn decode_payload<T: ByteValued + Default>(what: &'static str, payload: &[u8]) -> Result<T> {
    decode(payload).ok_or_else(|| FuseError::MalformedPayload {
        what,
        detail: format!("{} bytes, need {}", payload.len(), size_of::<T>()),
    })
}

/// Appends `name` and its NUL terminator.
pub fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(name);
    out.push(0);
}

/// Parses a READDIR payload.
pub fn parse_dirents(mut payload: &[u8]) -> Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let (entry, rest) = parse_one_dirent(payload)?;
        out.push(entry);
        payload = rest;
    }
    Ok(out)
}

/// Parses a READDIRPLUS payload.
pub fn parse_direntplus(mut payload: &[u8]) -> Result<Vec<DirEntryPlus>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let entry: EntryOut = decode_payload("readdirplus", payload)?;
        let (dirent, rest) = parse_one_dirent(&payload[size_of::<EntryOut>()..])?;
        out.push(DirEntryPlus {
            entry: entry.into(),
            dirent,
        });
        payload = rest;
    }
    Ok(out)
}

fn parse_one_dirent(payload: &[u8]) -> Result<(DirEntry, &[u8])> {
    let d: Dirent = decode_payload("readdir", payload)?;
    let name_start = size_of::<Dirent>();
    let malformed = |detail: String| FuseError::MalformedPayload {
        what: "readdir",
        detail,
    };
    let namelen = d.namelen as usize;
    let name_end = name_start
        .checked_add(namelen)
        .filter(|&e| e <= payload.len())
        .ok_or_else(|| malformed(format!("name of {namelen} bytes overruns payload")))?;
    let padded = name_end.div_ceil(DIRENT_ALIGN) * DIRENT_ALIGN;
    let next = padded.min(payload.len());
    Ok((
        DirEntry {
            ino: d.ino,
            offset: d.off,
            kind: d.type_,
            name: payload[name_start..name_end].to_vec(),
        },
        &payload[next..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirent_bytes(ino: u64, off: u64, kind: u32, name: &[u8]) -> Vec<u8> {
        let d = Dirent {
            ino,
            off,
            namelen: name.len() as u32,
            type_: kind,
        };
        let mut v = d.as_slice().to_vec();
        v.extend_from_slice(name);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn request_header_layout() {
        let r = encode_request(15, 7, 3, &[1, 2, 3]);
        assert_eq!(r.len(), 43);
        assert_eq!(&r[0..4], &43u32.to_le_bytes());
        assert_eq!(&r[4..8], &15u32.to_le_bytes());
        assert_eq!(&r[8..16], &7u64.to_le_bytes());
        assert_eq!(&r[16..24], &3u64.to_le_bytes());
        assert_eq!(&r[40..], &[1, 2, 3]);
    }

    #[test]
    fn reply_decoding_checks_framing() {
        let mut ok = OutHeader {
            len: 20,
            error: 0,
            unique: 9,
        }
        .as_slice()
        .to_vec();
        ok.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(decode_reply(&ok, 9).unwrap().payload, vec![1, 2, 3, 4]);
        assert!(matches!(
            decode_reply(&ok, 8),
            Err(FuseError::UniqueMismatch { .. })
        ));
        assert!(matches!(
            decode_reply(&ok[..18], 9),
            Err(FuseError::LengthMismatch { .. })
        ));
        assert!(matches!(
            decode_reply(&ok[..3], 9),
            Err(FuseError::NoHeader(3))
        ));
        let err = OutHeader {
            len: 16,
            error: -libc::EROFS,
            unique: 1,
        };
        let reply = decode_reply(err.as_slice(), 1).unwrap();
        assert_eq!(reply.errno(), libc::EROFS);
        assert_eq!(reply.into_result().unwrap_err().errno(), Some(libc::EROFS));
    }

    #[test]
    fn dirents_parse_with_padding() {
        let mut p = dirent_bytes(5, 1, 4, b".");
        p.extend(dirent_bytes(6, 2, 8, b"file-with-long-name"));
        let v = parse_dirents(&p).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, b"file-with-long-name");
        assert_eq!(v[1].offset, 2);
        let mut bad = dirent_bytes(5, 1, 4, b"abc");
        bad[16..20].copy_from_slice(&200u32.to_le_bytes());
        assert!(parse_dirents(&bad).is_err());
    }

    #[test]
    fn init_max_read() {
        let mut info = InitInfo {
            out: InitOut::default(),
            reply_len: 64,
        };
        assert_eq!(info.max_read(), 128 * 1024);
        info.out.flags = FLAG_MAX_PAGES as u32;
        info.out.max_pages = 256;
        assert_eq!(info.max_read(), 1 << 20);
    }
}

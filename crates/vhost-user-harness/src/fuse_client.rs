// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A small virtio-fs driver: FUSE requests over the harness's vrings.
//!
//! Requests go to the request queue (queue 1 by default), FORGET goes to the
//! hiprio queue 0, as in the Linux virtio-fs driver. Every operation returns
//! `Err(FuseError::Errno(e))` when the daemon answers with an error, so tests
//! read as `assert_eq!(client.mkdir(ROOT_ID, "x", 0o755).unwrap_err().errno(), Some(libc::EROFS))`.
//! Mutating operations are in `fuse_mutations.rs`.

use std::mem::size_of;
use std::path::Path;

use fuse_backend_rs::abi::fuse_abi::{
    AttrOut, EntryOut, ForgetIn, FsOptions, GetattrIn, GetxattrIn, GetxattrOut, InitIn, IoctlIn,
    IoctlOut, Kstatfs, LseekIn, LseekOut, Opcode, OpenIn, OpenOut, ReadIn, ReleaseIn, StatfsOut,
    ROOT_ID,
};
use vm_memory::ByteValued;

use crate::fuse_wire::{
    decode_payload, decode_reply, encode_request, parse_direntplus, parse_dirents, push_name,
    DirEntry, DirEntryPlus, Entry, FuseError, FuseReply, InitInfo, IoctlReply, Result, XattrReply,
    OUT_HEADER_SIZE,
};
use crate::harness::{ChainLayout, Harness, HarnessConfig, PendingRequest};

pub use fuse_backend_rs::abi::fuse_abi::Attr;

/// The virtio-fs hiprio queue (FORGET, INTERRUPT).
pub const HIPRIO_QUEUE: u16 = 0;
/// The first virtio-fs request queue.
pub const REQUEST_QUEUE: u16 = 1;
/// Reply capacity for requests whose reply is small and bounded
/// (entries, attributes, link targets up to `PATH_MAX`).
pub const DEFAULT_REPLY_CAPACITY: usize = 8192;
/// Size used for each READDIR / READDIRPLUS request.
pub const READDIR_SIZE: u32 = 64 * 1024;
/// FUSE protocol major version sent in INIT.
pub const FUSE_MAJOR: u32 = 7;
/// FUSE protocol minor version sent in INIT (no `INIT_EXT`, 16-byte `fuse_init_in`).
pub const FUSE_MINOR: u32 = 31;
/// Readahead offered in INIT, as the Linux driver does by default.
pub const DEFAULT_MAX_READAHEAD: u32 = 128 * 1024;
/// INIT flags offered by default: what a Linux guest typically asks for,
/// minus `WRITEBACK_CACHE` and DAX (all in the low 32 bits).
pub const DEFAULT_INIT_FLAGS: u32 = (FsOptions::ASYNC_READ.bits()
    | FsOptions::ATOMIC_O_TRUNC.bits()
    | FsOptions::EXPORT_SUPPORT.bits()
    | FsOptions::BIG_WRITES.bits()
    | FsOptions::HAS_IOCTL_DIR.bits()
    | FsOptions::AUTO_INVAL_DATA.bits()
    | FsOptions::DO_READDIRPLUS.bits()
    | FsOptions::READDIRPLUS_AUTO.bits()
    | FsOptions::ASYNC_DIO.bits()
    | FsOptions::PARALLEL_DIROPS.bits()
    | FsOptions::MAX_PAGES.bits()) as u32;

/// A FUSE request submitted but not yet collected.
#[derive(Debug)]
#[must_use = "a pending request must be waited for"]
pub struct PendingFuse {
    pending: PendingRequest,
    unique: u64,
}

impl PendingFuse {
    /// The request's `unique`.
    pub fn unique(&self) -> u64 {
        self.unique
    }
}

/// A FUSE client speaking virtio-fs through a [`Harness`].
#[derive(Debug)]
pub struct VirtioFsClient {
    harness: Harness,
    next_unique: u64,
    init: Option<InitInfo>,
    request_queue: u16,
    layout: ChainLayout,
}

impl VirtioFsClient {
    /// Wraps a connected harness; INIT is not sent.
    pub fn new(harness: Harness) -> Self {
        VirtioFsClient {
            harness,
            next_unique: 1,
            init: None,
            request_queue: REQUEST_QUEUE,
            layout: ChainLayout::Simple,
        }
    }

    /// Connects with the default [`HarnessConfig`]; INIT is not sent.
    pub fn connect(socket: &Path) -> Result<Self> {
        Self::connect_with(socket, &HarnessConfig::default())
    }

    /// Connects with `config`; INIT is not sent.
    pub fn connect_with(socket: &Path, config: &HarnessConfig) -> Result<Self> {
        Ok(Self::new(Harness::connect(socket, config)?))
    }

    /// Connects with the default configuration and sends INIT.
    pub fn connect_and_init(socket: &Path) -> Result<Self> {
        let mut client = Self::connect(socket)?;
        client.init()?;
        Ok(client)
    }

    /// The underlying harness.
    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    /// The underlying harness, for raw queue access.
    pub fn harness_mut(&mut self) -> &mut Harness {
        &mut self.harness
    }

    /// Gives the harness back.
    pub fn into_harness(self) -> Harness {
        self.harness
    }

    /// Closes the vhost-user connection (same as dropping the client); a
    /// well-behaved daemon then exits.
    pub fn disconnect(self) {
        self.harness.disconnect();
    }

    /// Chooses how requests are laid out as chains (default `Simple`).
    pub fn set_layout(&mut self, layout: ChainLayout) {
        self.layout = layout;
    }

    /// Chooses the request queue (default 1).
    pub fn set_request_queue(&mut self, queue: u16) {
        self.request_queue = queue;
    }

    /// The INIT result, once INIT succeeded.
    pub fn init_info(&self) -> Option<&InitInfo> {
        self.init.as_ref()
    }

    /// Allocates a fresh `unique` (for hand-built requests).
    pub fn next_unique(&mut self) -> u64 {
        let u = self.next_unique;
        self.next_unique += 1;
        u
    }

    /// Largest READ size to use: from INIT, or the Linux default.
    pub fn max_read(&self) -> u32 {
        self.init.map_or(128 * 1024, |i| i.max_read())
    }

    // ---- transport -------------------------------------------------------

    /// Submits a request without waiting; collect it with [`VirtioFsClient::wait`].
    pub fn submit(
        &mut self,
        opcode: u32,
        nodeid: u64,
        body: &[u8],
        reply_capacity: usize,
    ) -> Result<PendingFuse> {
        let unique = self.next_unique();
        let bytes = encode_request(opcode, unique, nodeid, body);
        self.submit_bytes(&bytes, unique, reply_capacity)
    }

    /// Submits hand-built request bytes (e.g. a lying `fuse_in_header.len`);
    /// `unique` is what the reply is checked against.
    pub fn submit_bytes(
        &mut self,
        request: &[u8],
        unique: u64,
        reply_capacity: usize,
    ) -> Result<PendingFuse> {
        let pending =
            self.harness
                .submit(self.request_queue, request, reply_capacity, self.layout)?;
        Ok(PendingFuse { pending, unique })
    }

    /// Waits for a submitted request and decodes its header.
    pub fn wait(&mut self, pending: PendingFuse) -> Result<FuseReply> {
        let bytes = self.harness.wait(pending.pending)?;
        decode_reply(&bytes, pending.unique)
    }

    /// Sends any opcode with any body and returns the raw reply
    /// (`error` may be non-zero; that is not an `Err`).
    pub fn raw_request(&mut self, opcode: u32, nodeid: u64, body: &[u8]) -> Result<FuseReply> {
        self.raw_request_with_capacity(opcode, nodeid, body, DEFAULT_REPLY_CAPACITY)
    }

    /// [`VirtioFsClient::raw_request`] with an explicit reply buffer size.
    pub fn raw_request_with_capacity(
        &mut self,
        opcode: u32,
        nodeid: u64,
        body: &[u8],
        reply_capacity: usize,
    ) -> Result<FuseReply> {
        let pending = self.submit(opcode, nodeid, body, reply_capacity)?;
        self.wait(pending)
    }

    /// Sends hand-built request bytes and returns the raw reply.
    pub fn send_bytes(
        &mut self,
        request: &[u8],
        unique: u64,
        reply_capacity: usize,
    ) -> Result<FuseReply> {
        let pending = self.submit_bytes(request, unique, reply_capacity)?;
        self.wait(pending)
    }

    /// Sends a request and returns the payload of a successful reply.
    pub(crate) fn call(
        &mut self,
        opcode: Opcode,
        nodeid: u64,
        body: &[u8],
        reply_capacity: usize,
    ) -> Result<Vec<u8>> {
        self.raw_request_with_capacity(opcode as u32, nodeid, body, reply_capacity)?
            .into_result()
    }

    /// Like `call`, for replies that must be empty.
    pub(crate) fn call_empty(&mut self, opcode: Opcode, nodeid: u64, body: &[u8]) -> Result<()> {
        let payload = self.call(opcode, nodeid, body, DEFAULT_REPLY_CAPACITY)?;
        if payload.is_empty() {
            Ok(())
        } else {
            Err(FuseError::MalformedPayload {
                what: "empty",
                detail: format!("{} unexpected payload bytes", payload.len()),
            })
        }
    }

    // ---- INIT --------------------------------------------------------------

    /// Sends INIT with the default version, readahead and flags.
    pub fn init(&mut self) -> Result<InitInfo> {
        self.init_with(InitIn {
            major: FUSE_MAJOR,
            minor: FUSE_MINOR,
            max_readahead: DEFAULT_MAX_READAHEAD,
            flags: DEFAULT_INIT_FLAGS,
        })
    }

    /// Sends INIT with explicit parameters and records the result.
    pub fn init_with(&mut self, init: InitIn) -> Result<InitInfo> {
        let payload = self.call(Opcode::Init, 0, init.as_slice(), DEFAULT_REPLY_CAPACITY)?;
        /// `FUSE_COMPAT_22_INIT_OUT_SIZE`: the smallest reply a 7.23+ daemon sends.
        const MIN_INIT_OUT: usize = 24;
        if payload.len() < MIN_INIT_OUT {
            return Err(FuseError::MalformedPayload {
                what: "init",
                detail: format!("{} bytes", payload.len()),
            });
        }
        let mut padded = payload.clone();
        padded.resize(
            padded
                .len()
                .max(size_of::<fuse_backend_rs::abi::fuse_abi::InitOut>()),
            0,
        );
        let info = InitInfo {
            out: decode_payload("init", &padded)?,
            reply_len: payload.len(),
        };
        self.init = Some(info);
        Ok(info)
    }

    // ---- metadata --------------------------------------------------------

    /// LOOKUP `name` in directory `parent`.
    pub fn lookup(&mut self, parent: u64, name: impl AsRef<[u8]>) -> Result<Entry> {
        let mut body = Vec::new();
        push_name(&mut body, name.as_ref());
        let payload = self.call(Opcode::Lookup, parent, &body, DEFAULT_REPLY_CAPACITY)?;
        Ok(decode_payload::<EntryOut>("lookup", &payload)?.into())
    }

    /// Looks up each `/`-separated component from the root. `""` and `"/"`
    /// give the root itself (via GETATTR).
    pub fn lookup_path(&mut self, path: &str) -> Result<Entry> {
        let mut entry = Entry {
            nodeid: ROOT_ID,
            generation: 0,
            attr: self.getattr(ROOT_ID)?,
        };
        for component in path.split('/').filter(|c| !c.is_empty()) {
            entry = self.lookup(entry.nodeid, component)?;
        }
        Ok(entry)
    }

    /// FORGET `nlookup` references to `nodeid` (sent on the hiprio queue; no reply).
    pub fn forget(&mut self, nodeid: u64, nlookup: u64) -> Result<()> {
        let unique = self.next_unique();
        let body = ForgetIn { nlookup };
        let bytes = encode_request(Opcode::Forget as u32, unique, nodeid, body.as_slice());
        let pending = self
            .harness
            .submit(HIPRIO_QUEUE, &bytes, 0, ChainLayout::Simple)?;
        self.harness.wait(pending)?;
        Ok(())
    }

    /// GETATTR.
    pub fn getattr(&mut self, nodeid: u64) -> Result<Attr> {
        let body = GetattrIn::default();
        let payload = self.call(
            Opcode::Getattr,
            nodeid,
            body.as_slice(),
            DEFAULT_REPLY_CAPACITY,
        )?;
        Ok(decode_payload::<AttrOut>("getattr", &payload)?.attr)
    }

    /// READLINK.
    pub fn readlink(&mut self, nodeid: u64) -> Result<Vec<u8>> {
        self.call(Opcode::Readlink, nodeid, &[], DEFAULT_REPLY_CAPACITY)
    }

    /// STATFS.
    pub fn statfs(&mut self, nodeid: u64) -> Result<Kstatfs> {
        let payload = self.call(Opcode::Statfs, nodeid, &[], DEFAULT_REPLY_CAPACITY)?;
        Ok(decode_payload::<StatfsOut>("statfs", &payload)?.st)
    }

    /// LSEEK (`SEEK_DATA`, `SEEK_HOLE`, ...) on an open file; the resulting offset.
    pub fn lseek(&mut self, nodeid: u64, fh: u64, offset: u64, whence: u32) -> Result<u64> {
        let body = LseekIn {
            fh,
            offset,
            whence,
            padding: 0,
        };
        let payload = self.call(
            Opcode::Lseek,
            nodeid,
            body.as_slice(),
            DEFAULT_REPLY_CAPACITY,
        )?;
        Ok(decode_payload::<LseekOut>("lseek", &payload)?.offset)
    }

    /// GETXATTR; `size == 0` probes the value's length.
    pub fn getxattr(
        &mut self,
        nodeid: u64,
        name: impl AsRef<[u8]>,
        size: u32,
    ) -> Result<XattrReply> {
        let mut body = GetxattrIn { size, padding: 0 }.as_slice().to_vec();
        push_name(&mut body, name.as_ref());
        let cap = OUT_HEADER_SIZE + (size as usize).max(size_of::<GetxattrOut>());
        let payload = self.call(Opcode::Getxattr, nodeid, &body, cap)?;
        xattr_reply("getxattr", size, payload)
    }

    /// LISTXATTR; `size == 0` probes the list's length.
    pub fn listxattr(&mut self, nodeid: u64, size: u32) -> Result<XattrReply> {
        let body = GetxattrIn { size, padding: 0 };
        let cap = OUT_HEADER_SIZE + (size as usize).max(size_of::<GetxattrOut>());
        let payload = self.call(Opcode::Listxattr, nodeid, body.as_slice(), cap)?;
        xattr_reply("listxattr", size, payload)
    }

    /// IOCTL with raw parameters; returns the daemon's result and output data.
    pub fn ioctl(
        &mut self,
        nodeid: u64,
        fh: u64,
        cmd: u32,
        flags: u32,
        in_data: &[u8],
        out_size: u32,
    ) -> Result<IoctlReply> {
        let header = IoctlIn {
            fh,
            flags,
            cmd,
            arg: 0,
            in_size: u32::try_from(in_data.len()).unwrap_or(u32::MAX),
            out_size,
        };
        let mut body = header.as_slice().to_vec();
        body.extend_from_slice(in_data);
        let cap = OUT_HEADER_SIZE + size_of::<IoctlOut>() + out_size as usize;
        let payload = self.call(Opcode::Ioctl, nodeid, &body, cap)?;
        let out: IoctlOut = decode_payload("ioctl", &payload)?;
        Ok(IoctlReply {
            result: out.result,
            flags: out.flags,
            data: payload[size_of::<IoctlOut>()..].to_vec(),
        })
    }

    // ---- files -----------------------------------------------------------

    /// OPEN with `flags` (`libc::O_*`); returns the file handle.
    pub fn open(&mut self, nodeid: u64, flags: i32) -> Result<OpenOut> {
        self.open_op(Opcode::Open, nodeid, flags)
    }

    /// OPENDIR; returns the directory handle.
    pub fn opendir(&mut self, nodeid: u64) -> Result<OpenOut> {
        self.open_op(Opcode::Opendir, nodeid, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    fn open_op(&mut self, opcode: Opcode, nodeid: u64, flags: i32) -> Result<OpenOut> {
        let body = OpenIn {
            flags: flags as u32,
            fuse_flags: 0,
        };
        let payload = self.call(opcode, nodeid, body.as_slice(), DEFAULT_REPLY_CAPACITY)?;
        decode_payload("open", &payload)
    }

    /// READ `size` bytes at `offset`.
    pub fn read(&mut self, nodeid: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let pending = self.submit_read(nodeid, fh, offset, size)?;
        self.wait_read(pending, size)
    }

    /// Submits a READ without waiting (for many reads in flight).
    pub fn submit_read(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<PendingFuse> {
        let body = read_in(fh, offset, size, libc::O_RDONLY as u32);
        self.submit(
            Opcode::Read as u32,
            nodeid,
            body.as_slice(),
            OUT_HEADER_SIZE + size as usize,
        )
    }

    /// Collects a READ submitted with [`VirtioFsClient::submit_read`].
    pub fn wait_read(&mut self, pending: PendingFuse, size: u32) -> Result<Vec<u8>> {
        let data = self.wait(pending)?.into_result()?;
        if data.len() > size as usize {
            return Err(FuseError::MalformedPayload {
                what: "read",
                detail: format!("{} bytes for a {size}-byte read", data.len()),
            });
        }
        Ok(data)
    }

    /// RELEASE a file handle.
    pub fn release(&mut self, nodeid: u64, fh: u64) -> Result<()> {
        let body = ReleaseIn {
            fh,
            flags: libc::O_RDONLY as u32,
            release_flags: 0,
            lock_owner: 0,
        };
        self.call_empty(Opcode::Release, nodeid, body.as_slice())
    }

    /// RELEASEDIR a directory handle.
    pub fn releasedir(&mut self, nodeid: u64, fh: u64) -> Result<()> {
        let body = ReleaseIn {
            fh,
            flags: libc::O_RDONLY as u32,
            release_flags: 0,
            lock_owner: 0,
        };
        self.call_empty(Opcode::Releasedir, nodeid, body.as_slice())
    }

    /// One READDIR of up to `size` bytes from `offset`.
    pub fn readdir(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<Vec<DirEntry>> {
        let body = read_in(fh, offset, size, 0);
        let payload = self.call(
            Opcode::Readdir,
            nodeid,
            body.as_slice(),
            OUT_HEADER_SIZE + size as usize,
        )?;
        parse_dirents(&payload)
    }

    /// One READDIRPLUS of up to `size` bytes from `offset`.
    pub fn readdirplus(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<Vec<DirEntryPlus>> {
        let body = read_in(fh, offset, size, 0);
        let payload = self.call(
            Opcode::Readdirplus,
            nodeid,
            body.as_slice(),
            OUT_HEADER_SIZE + size as usize,
        )?;
        parse_direntplus(&payload)
    }

    // ---- convenience -----------------------------------------------------

    /// Reads a whole file: LOOKUP the path, OPEN, READ in `max_read()` chunks
    /// until an empty reply, RELEASE.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let entry = self.lookup_path(path)?;
        self.read_node(entry.nodeid)
    }

    /// Reads a whole file by node id (OPEN, READs, RELEASE).
    pub fn read_node(&mut self, nodeid: u64) -> Result<Vec<u8>> {
        let fh = self.open(nodeid, libc::O_RDONLY)?.fh;
        let chunk = self.max_read();
        let mut data = Vec::new();
        let result = loop {
            match self.read(nodeid, fh, data.len() as u64, chunk) {
                Ok(bytes) if bytes.is_empty() => break Ok(()),
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(e) => break Err(e),
            }
        };
        let released = self.release(nodeid, fh);
        result.and(released)?;
        Ok(data)
    }

    /// Reads a whole file with up to `depth` READs of `chunk` bytes in
    /// flight (like an `iodepth` benchmark). The size comes from GETATTR;
    /// the file must not change meanwhile.
    pub fn read_node_pipelined(
        &mut self,
        nodeid: u64,
        chunk: u32,
        depth: usize,
    ) -> Result<Vec<u8>> {
        let size = self.getattr(nodeid)?.size;
        let fh = self.open(nodeid, libc::O_RDONLY)?.fh;
        let result = self.pipelined_reads(nodeid, fh, size, chunk.max(1), depth.max(1));
        let released = self.release(nodeid, fh);
        let data = result?;
        released?;
        Ok(data)
    }

    fn pipelined_reads(
        &mut self,
        nodeid: u64,
        fh: u64,
        size: u64,
        chunk: u32,
        depth: usize,
    ) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut in_flight = std::collections::VecDeque::with_capacity(depth);
        let mut next_offset = 0u64;
        loop {
            while in_flight.len() < depth && next_offset < size {
                in_flight.push_back(self.submit_read(nodeid, fh, next_offset, chunk)?);
                next_offset += u64::from(chunk);
            }
            let Some(pending) = in_flight.pop_front() else {
                return Ok(data);
            };
            let bytes = self.wait_read(pending, chunk)?;
            let expected = (size - data.len() as u64).min(u64::from(chunk));
            if bytes.len() as u64 != expected {
                return Err(FuseError::MalformedPayload {
                    what: "read",
                    detail: format!(
                        "short read of {} bytes at offset {}",
                        bytes.len(),
                        data.len()
                    ),
                });
            }
            data.extend_from_slice(&bytes);
        }
    }

    /// Lists a directory: LOOKUP, OPENDIR, READDIR until empty, RELEASEDIR.
    /// The result includes `.` and `..` if the daemon returns them.
    pub fn list_dir(&mut self, path: &str) -> Result<Vec<DirEntry>> {
        let nodeid = self.lookup_path(path)?.nodeid;
        let fh = self.opendir(nodeid)?.fh;
        let mut entries: Vec<DirEntry> = Vec::new();
        let mut offset = 0;
        let result = loop {
            match self.readdir(nodeid, fh, offset, READDIR_SIZE) {
                Ok(batch) if batch.is_empty() => break Ok(()),
                Ok(batch) => {
                    offset = batch.last().map_or(offset, |e| e.offset);
                    entries.extend(batch);
                }
                Err(e) => break Err(e),
            }
        };
        let released = self.releasedir(nodeid, fh);
        result.and(released)?;
        Ok(entries)
    }
}

/// Builds a `fuse_read_in` (also used by READDIR).
fn read_in(fh: u64, offset: u64, size: u32, flags: u32) -> ReadIn {
    ReadIn {
        fh,
        offset,
        size,
        read_flags: 0,
        lock_owner: 0,
        flags,
        padding: 0,
    }
}

/// Decodes a GETXATTR/LISTXATTR reply: a size for probes, data otherwise.
fn xattr_reply(what: &'static str, size: u32, payload: Vec<u8>) -> Result<XattrReply> {
    if size == 0 {
        let out: GetxattrOut = decode_payload(what, &payload)?;
        Ok(XattrReply::Size(out.size))
    } else if payload.len() > size as usize {
        Err(FuseError::MalformedPayload {
            what,
            detail: format!("{} bytes for a {size}-byte buffer", payload.len()),
        })
    } else {
        Ok(XattrReply::Data(payload))
    }
}

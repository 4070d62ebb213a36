// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Mutating FUSE requests. A read-only daemon must refuse all of them
//! (EROFS); they exist so tests can say so one line per operation.

use std::mem::size_of;

use fuse_backend_rs::abi::fuse_abi::{
    AttrOut, CopyFileRangeIn, CreateIn, EntryOut, FallocateIn, LinkIn, MkdirIn, MknodIn, Opcode,
    OpenOut, RenameIn, SetattrIn, SetxattrIn, WriteIn, WriteOut,
};
use vm_memory::ByteValued;

use crate::fuse_client::{Attr, VirtioFsClient, DEFAULT_REPLY_CAPACITY};
use crate::fuse_wire::{decode_payload, push_name, Entry, Result};

impl VirtioFsClient {
    /// WRITE `data` at `offset`; returns the byte count the daemon wrote.
    pub fn write(&mut self, nodeid: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let header = WriteIn {
            fh,
            offset,
            size: u32::try_from(data.len()).unwrap_or(u32::MAX),
            fuse_flags: 0,
            lock_owner: 0,
            flags: libc::O_RDWR as u32,
            padding: 0,
        };
        let mut body = header.as_slice().to_vec();
        body.extend_from_slice(data);
        let payload = self.call(Opcode::Write, nodeid, &body, DEFAULT_REPLY_CAPACITY)?;
        Ok(decode_payload::<WriteOut>("write", &payload)?.size)
    }

    /// SETATTR with a raw `fuse_setattr_in` (set `valid` to the `FATTR_*` bits).
    pub fn setattr(&mut self, nodeid: u64, attr: SetattrIn) -> Result<Attr> {
        let payload = self.call(
            Opcode::Setattr,
            nodeid,
            attr.as_slice(),
            DEFAULT_REPLY_CAPACITY,
        )?;
        Ok(decode_payload::<AttrOut>("setattr", &payload)?.attr)
    }

    /// CREATE (open with `O_CREAT`) `name` in `parent`.
    pub fn create(
        &mut self,
        parent: u64,
        name: impl AsRef<[u8]>,
        mode: u32,
        flags: i32,
    ) -> Result<(Entry, OpenOut)> {
        let header = CreateIn {
            flags: flags as u32,
            mode,
            umask: 0,
            fuse_flags: 0,
        };
        let mut body = header.as_slice().to_vec();
        push_name(&mut body, name.as_ref());
        let payload = self.call(Opcode::Create, parent, &body, DEFAULT_REPLY_CAPACITY)?;
        let entry: EntryOut = decode_payload("create", &payload)?;
        let open: OpenOut = decode_payload(
            "create",
            payload.get(size_of::<EntryOut>()..).unwrap_or(&[]),
        )?;
        Ok((entry.into(), open))
    }

    /// MKNOD `name` in `parent`.
    pub fn mknod(
        &mut self,
        parent: u64,
        name: impl AsRef<[u8]>,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        let header = MknodIn {
            mode,
            rdev,
            umask: 0,
            padding: 0,
        };
        let mut body = header.as_slice().to_vec();
        push_name(&mut body, name.as_ref());
        self.entry_call(Opcode::Mknod, parent, &body)
    }

    /// MKDIR `name` in `parent`.
    pub fn mkdir(&mut self, parent: u64, name: impl AsRef<[u8]>, mode: u32) -> Result<Entry> {
        let mut body = MkdirIn { mode, umask: 0 }.as_slice().to_vec();
        push_name(&mut body, name.as_ref());
        self.entry_call(Opcode::Mkdir, parent, &body)
    }

    /// UNLINK `name` in `parent`.
    pub fn unlink(&mut self, parent: u64, name: impl AsRef<[u8]>) -> Result<()> {
        let mut body = Vec::new();
        push_name(&mut body, name.as_ref());
        self.call_empty(Opcode::Unlink, parent, &body)
    }

    /// RMDIR `name` in `parent`.
    pub fn rmdir(&mut self, parent: u64, name: impl AsRef<[u8]>) -> Result<()> {
        let mut body = Vec::new();
        push_name(&mut body, name.as_ref());
        self.call_empty(Opcode::Rmdir, parent, &body)
    }

    /// RENAME `old_parent/old_name` to `new_parent/new_name`.
    pub fn rename(
        &mut self,
        old_parent: u64,
        old_name: impl AsRef<[u8]>,
        new_parent: u64,
        new_name: impl AsRef<[u8]>,
    ) -> Result<()> {
        let mut body = RenameIn { newdir: new_parent }.as_slice().to_vec();
        push_name(&mut body, old_name.as_ref());
        push_name(&mut body, new_name.as_ref());
        self.call_empty(Opcode::Rename, old_parent, &body)
    }

    /// LINK existing `nodeid` as `new_parent/new_name`.
    pub fn link(
        &mut self,
        nodeid: u64,
        new_parent: u64,
        new_name: impl AsRef<[u8]>,
    ) -> Result<Entry> {
        let mut body = LinkIn { oldnodeid: nodeid }.as_slice().to_vec();
        push_name(&mut body, new_name.as_ref());
        self.entry_call(Opcode::Link, new_parent, &body)
    }

    /// SYMLINK `parent/name` pointing to `target`.
    pub fn symlink(
        &mut self,
        parent: u64,
        name: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> Result<Entry> {
        let mut body = Vec::new();
        push_name(&mut body, name.as_ref());
        push_name(&mut body, target.as_ref());
        self.entry_call(Opcode::Symlink, parent, &body)
    }

    /// SETXATTR `name` = `value` (8-byte `fuse_setxattr_in`, no `SETXATTR_EXT`).
    pub fn setxattr(
        &mut self,
        nodeid: u64,
        name: impl AsRef<[u8]>,
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        let header = SetxattrIn {
            size: u32::try_from(value.len()).unwrap_or(u32::MAX),
            flags,
        };
        let mut body = header.as_slice().to_vec();
        push_name(&mut body, name.as_ref());
        body.extend_from_slice(value);
        self.call_empty(Opcode::Setxattr, nodeid, &body)
    }

    /// REMOVEXATTR `name`.
    pub fn removexattr(&mut self, nodeid: u64, name: impl AsRef<[u8]>) -> Result<()> {
        let mut body = Vec::new();
        push_name(&mut body, name.as_ref());
        self.call_empty(Opcode::Removexattr, nodeid, &body)
    }

    /// FALLOCATE on an open handle.
    pub fn fallocate(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        length: u64,
        mode: u32,
    ) -> Result<()> {
        let body = FallocateIn {
            fh,
            offset,
            length,
            mode,
            padding: 0,
        };
        self.call_empty(Opcode::Fallocate, nodeid, body.as_slice())
    }

    /// COPY_FILE_RANGE between two open handles; returns the bytes copied.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_file_range(
        &mut self,
        nodeid_in: u64,
        fh_in: u64,
        offset_in: u64,
        nodeid_out: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> Result<u32> {
        let body = CopyFileRangeIn {
            fh_in,
            offset_in,
            nodeid_out,
            fh_out,
            offset_out,
            len,
            flags: 0,
        };
        let payload = self.call(
            Opcode::CopyFileRange,
            nodeid_in,
            body.as_slice(),
            DEFAULT_REPLY_CAPACITY,
        )?;
        Ok(decode_payload::<WriteOut>("copy_file_range", &payload)?.size)
    }

    fn entry_call(&mut self, opcode: Opcode, nodeid: u64, body: &[u8]) -> Result<Entry> {
        let payload = self.call(opcode, nodeid, body, DEFAULT_REPLY_CAPACITY)?;
        Ok(decode_payload::<EntryOut>("entry", &payload)?.into())
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! [`refuse_mutations!`]: the FUSE methods that change a share, each answered `EROFS`, for the
//! `FileSystem` impls of this crate (the share is read-only by construction: fuse-backend-rs's
//! defaults answer `ENOSYS`, which would not say why).

/// Expands, inside an `impl FileSystem for ...`, to every mutating method returning `EROFS`.
macro_rules! refuse_mutations {
    () => {
        fn setattr(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _attr: ::fuse_backend_rs::abi::fuse_abi::stat64,
            _handle: Option<Self::Handle>,
            _valid: ::fuse_backend_rs::api::filesystem::SetattrValid,
        ) -> ::std::io::Result<(
            ::fuse_backend_rs::abi::fuse_abi::stat64,
            ::std::time::Duration,
        )> {
            Err($crate::errno::erofs())
        }

        fn symlink(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _linkname: &::std::ffi::CStr,
            _parent: Self::Inode,
            _name: &::std::ffi::CStr,
        ) -> ::std::io::Result<::fuse_backend_rs::api::filesystem::Entry> {
            Err($crate::errno::erofs())
        }

        fn mknod(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _name: &::std::ffi::CStr,
            _mode: u32,
            _rdev: u32,
            _umask: u32,
        ) -> ::std::io::Result<::fuse_backend_rs::api::filesystem::Entry> {
            Err($crate::errno::erofs())
        }

        fn mkdir(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _parent: Self::Inode,
            _name: &::std::ffi::CStr,
            _mode: u32,
            _umask: u32,
        ) -> ::std::io::Result<::fuse_backend_rs::api::filesystem::Entry> {
            Err($crate::errno::erofs())
        }

        fn unlink(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _parent: Self::Inode,
            _name: &::std::ffi::CStr,
        ) -> ::std::io::Result<()> {
            Err($crate::errno::erofs())
        }

        fn rmdir(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _parent: Self::Inode,
            _name: &::std::ffi::CStr,
        ) -> ::std::io::Result<()> {
            Err($crate::errno::erofs())
        }

        fn rename(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _olddir: Self::Inode,
            _oldname: &::std::ffi::CStr,
            _newdir: Self::Inode,
            _newname: &::std::ffi::CStr,
            _flags: u32,
        ) -> ::std::io::Result<()> {
            Err($crate::errno::erofs())
        }

        fn link(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _newparent: Self::Inode,
            _newname: &::std::ffi::CStr,
        ) -> ::std::io::Result<::fuse_backend_rs::api::filesystem::Entry> {
            Err($crate::errno::erofs())
        }

        fn write(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _handle: Self::Handle,
            _r: &mut dyn ::fuse_backend_rs::api::filesystem::ZeroCopyReader,
            _size: u32,
            _offset: u64,
            _lock_owner: Option<u64>,
            _delayed_write: bool,
            _flags: u32,
            _fuse_flags: u32,
        ) -> ::std::io::Result<usize> {
            Err($crate::errno::erofs())
        }

        fn fallocate(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _handle: Self::Handle,
            _mode: u32,
            _offset: u64,
            _length: u64,
        ) -> ::std::io::Result<()> {
            Err($crate::errno::erofs())
        }

        fn setxattr(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _name: &::std::ffi::CStr,
            _value: &[u8],
            _flags: u32,
        ) -> ::std::io::Result<()> {
            Err($crate::errno::erofs())
        }

        fn removexattr(
            &self,
            _ctx: &::fuse_backend_rs::api::filesystem::Context,
            _inode: Self::Inode,
            _name: &::std::ffi::CStr,
        ) -> ::std::io::Result<()> {
            Err($crate::errno::erofs())
        }
    };
}

pub(crate) use refuse_mutations;

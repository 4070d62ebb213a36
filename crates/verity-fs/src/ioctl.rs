// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! FUSE_IOCTL handling: the single place where ioctl commands are decided
//! (`docs/guest-abi.md`).
//!
//! Host ioctls are never forwarded: the inner filesystem is not asked, so a guest cannot reach
//! host-side ioctls on the shared files. Supported: `FS_IOC_MEASURE_VERITY` (the digest from
//! the manifest), `FS_IOC_GETFLAGS` (`FS_VERITY_FL` on verified files), `FS_IOC_FSGETXATTR`
//! (`FS_XFLAG_VERITY` in `fsx_xflags` on verified files), and `FS_IOC_ENABLE_VERITY` and
//! `FS_IOC_FSSETXATTR` (refused with `EROFS`). Everything else is `ENOTTY`. Unrestricted
//! ioctls (`FUSE_IOCTL_UNRESTRICTED`, which only CUSE uses; the server would have to ask for
//! retries with its own iovecs) are `EPERM`, and no reply ever carries `FUSE_IOCTL_RETRY`.
//!
//! Failures of the supported commands are sent as a negative `result` with no payload: the
//! guest kernel copies any payload to the caller even on failure.

use std::io;

use fuse_backend_rs::api::filesystem::IoctlData;

use crate::errno::enotty;

/// `FS_IOC_MEASURE_VERITY` (`_IOWR('f', 134, struct fsverity_digest)`).
pub const FS_IOC_MEASURE_VERITY: u32 = 0xc004_6686;
/// `FS_IOC_ENABLE_VERITY` (`_IOW('f', 133, struct fsverity_enable_arg)`).
pub const FS_IOC_ENABLE_VERITY: u32 = 0x4080_6685;
/// `FS_IOC_READ_VERITY_METADATA` (`_IOWR('f', 135, ...)`).
pub const FS_IOC_READ_VERITY_METADATA: u32 = 0xc028_6687;
/// `FS_IOC_GETFLAGS` as a 64-bit guest sends it.
pub const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FS_IOC32_GETFLAGS` (32-bit guests).
pub const FS_IOC32_GETFLAGS: u32 = 0x8004_6601;
/// `FS_VERITY_FL` in the GETFLAGS word.
pub const FS_VERITY_FL: u32 = 0x0010_0000;

/// `FS_IOC_FSGETXATTR` (`_IOR('X', 31, struct fsxattr)`).
pub const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
/// `FS_IOC_FSSETXATTR` (`_IOW('X', 32, struct fsxattr)`).
pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
/// `FS_XFLAG_VERITY` in `fsx_xflags`, as new kernels define it.
pub const FS_XFLAG_VERITY: u32 = 0x0002_0000;
/// `sizeof(struct fsxattr)`.
const FSXATTR_SIZE: usize = 28;

/// `FUSE_IOCTL_UNRESTRICTED` in `fuse_ioctl_in.flags`.
pub const FUSE_IOCTL_UNRESTRICTED: u32 = 1 << 1;

/// Size of `struct fsverity_digest`'s header (`le16 alg`, `le16 size`).
const DIGEST_HEADER: usize = 4;

static VERITY_FLAGS: [u8; 4] = FS_VERITY_FL.to_le_bytes();
/// `struct fsxattr` of a verity file: `fsx_xflags = FS_XFLAG_VERITY`, everything else zero.
static VERITY_FSXATTR: [u8; FSXATTR_SIZE] = {
    let mut b = [0u8; FSXATTR_SIZE];
    let x = FS_XFLAG_VERITY.to_le_bytes();
    b[0] = x[0];
    b[1] = x[1];
    b[2] = x[2];
    b[3] = x[3];
    b
};
static NO_FSXATTR: [u8; FSXATTR_SIZE] = [0; FSXATTR_SIZE];
static NO_FLAGS: [u8; 4] = [0; 4];

/// One FUSE_IOCTL request, as the server decoded it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IoctlRequest {
    /// The ioctl command number (`cmd` in `fuse_ioctl_in`).
    pub(crate) cmd: u32,
    /// `FUSE_IOCTL_*` flags (for example `FUSE_IOCTL_DIR`).
    pub(crate) flags: u32,
    /// How many bytes the guest accepts in the reply.
    pub(crate) out_size: u32,
}

/// What the inode is, as far as ioctls are concerned.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IoctlTarget<'a> {
    /// The precomputed `struct fsverity_digest` (header + digest) of a verified file.
    pub(crate) measure: Option<&'a [u8]>,
}

fn fail<'a>(errno: i32) -> io::Result<IoctlData<'a>> {
    Ok(IoctlData {
        result: -errno,
        data: None,
    })
}

/// Decides the answer to `req`. `input` is the request's input payload.
pub(crate) fn handle_ioctl<'a>(
    req: IoctlRequest,
    input: &[u8],
    target: IoctlTarget<'a>,
) -> io::Result<IoctlData<'a>> {
    if req.flags & FUSE_IOCTL_UNRESTRICTED != 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    match req.cmd {
        FS_IOC_MEASURE_VERITY => measure(req, input, target),
        FS_IOC_GETFLAGS | FS_IOC32_GETFLAGS => verity_word(req, target, &VERITY_FLAGS, &NO_FLAGS),
        FS_IOC_FSGETXATTR => verity_word(req, target, &VERITY_FSXATTR, &NO_FSXATTR),
        FS_IOC_ENABLE_VERITY | FS_IOC_FSSETXATTR => fail(libc::EROFS),
        _ => {
            log::debug!(
                "ioctl cmd={:#x} flags={:#x} in_len={} out_size={}: not supported",
                req.cmd,
                req.flags,
                input.len(),
                req.out_size
            );
            Err(enotty())
        }
    }
}

/// A fixed-size reply that says whether the file is a verity file (`verity` or `plain`, both
/// of the struct's size); `EINVAL` when the guest's buffer is smaller.
fn verity_word<'a>(
    req: IoctlRequest,
    target: IoctlTarget<'_>,
    verity: &'static [u8],
    plain: &'static [u8],
) -> io::Result<IoctlData<'a>> {
    if (req.out_size as usize) < verity.len() {
        return fail(libc::EINVAL);
    }
    let data = if target.measure.is_some() {
        verity
    } else {
        plain
    };
    Ok(IoctlData {
        result: 0,
        data: Some(data),
    })
}

/// `FS_IOC_MEASURE_VERITY` as Linux 6.10+ forwards it: `in_size == out_size == 4 + D`.
/// The capacity comes from `out_size`, not from the forwarded `digest_size` field (the two are
/// separate copies a racing guest thread could make differ). A pre-6.10 guest sends only the
/// 4-byte header (`out_size == 4`), so it gets `EOVERFLOW` like any too-small buffer.
fn measure<'a>(
    req: IoctlRequest,
    input: &[u8],
    target: IoctlTarget<'a>,
) -> io::Result<IoctlData<'a>> {
    if input.len() < DIGEST_HEADER || (req.out_size as usize) < DIGEST_HEADER {
        return fail(libc::EINVAL);
    }
    let Some(reply) = target.measure else {
        return fail(libc::ENODATA);
    };
    let cap = req.out_size as usize - DIGEST_HEADER;
    if cap < reply.len() - DIGEST_HEADER {
        return fail(libc::EOVERFLOW);
    }
    Ok(IoctlData {
        result: 0,
        data: Some(reply),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsgetxattr_reports_the_verity_xflag() {
        let reply = [0u8; 36];
        let verity = IoctlTarget {
            measure: Some(&reply),
        };
        let got = handle_ioctl(req(FS_IOC_FSGETXATTR, 28), &[], verity).unwrap();
        let data = got.data.unwrap();
        assert_eq!((got.result, data.len()), (0, 28));
        assert_eq!(
            u32::from_le_bytes(data[..4].try_into().unwrap()),
            FS_XFLAG_VERITY
        );
        assert!(data[4..].iter().all(|&b| b == 0));
        let plain = handle_ioctl(req(FS_IOC_FSGETXATTR, 28), &[], IoctlTarget::default()).unwrap();
        assert_eq!(plain.data.unwrap(), &[0u8; 28][..]);
        let short = handle_ioctl(req(FS_IOC_FSGETXATTR, 27), &[], verity).unwrap();
        assert_eq!((short.result, short.data), (-libc::EINVAL, None));
        let set = handle_ioctl(req(FS_IOC_FSSETXATTR, 0), &[0; 28], verity).unwrap();
        assert_eq!((set.result, set.data), (-libc::EROFS, None));
    }

    fn req(cmd: u32, out_size: u32) -> IoctlRequest {
        IoctlRequest {
            cmd,
            flags: 0,
            out_size,
        }
    }

    fn result(r: io::Result<IoctlData<'_>>) -> (i32, Option<Vec<u8>>) {
        let d = r.unwrap();
        (d.result, d.data.map(<[u8]>::to_vec))
    }

    #[test]
    fn unknown_commands_are_enotty() {
        for cmd in [FS_IOC_READ_VERITY_METADATA, 0x1234, 0x4008_6602] {
            match handle_ioctl(req(cmd, 40), &[0u8; 40], IoctlTarget::default()) {
                Err(err) => assert_eq!(err.raw_os_error(), Some(libc::ENOTTY)),
                Ok(_) => panic!("ioctl {cmd:#x} was answered"),
            }
        }
    }

    #[test]
    fn measure_sizes() {
        let mut reply = vec![1, 0, 32, 0];
        reply.extend(0xa0u8..0xc0);
        let t = IoctlTarget {
            measure: Some(&reply),
        };
        assert_eq!(
            result(handle_ioctl(req(FS_IOC_MEASURE_VERITY, 68), &[0; 68], t)),
            (0, Some(reply.clone()))
        );
        assert_eq!(
            result(handle_ioctl(req(FS_IOC_MEASURE_VERITY, 36), &[0; 36], t)),
            (0, Some(reply.clone()))
        );
        for size in [4u32, 20, 35] {
            assert_eq!(
                result(handle_ioctl(
                    req(FS_IOC_MEASURE_VERITY, size),
                    &vec![0; size as usize],
                    t
                )),
                (-libc::EOVERFLOW, None)
            );
        }
        assert_eq!(
            result(handle_ioctl(req(FS_IOC_MEASURE_VERITY, 2), &[0; 2], t)),
            (-libc::EINVAL, None)
        );
        assert_eq!(
            result(handle_ioctl(
                req(FS_IOC_MEASURE_VERITY, 68),
                &[0; 68],
                IoctlTarget::default()
            )),
            (-libc::ENODATA, None)
        );
    }

    #[test]
    fn flags_and_enable() {
        let reply = [1u8, 0, 32, 0];
        let t = IoctlTarget {
            measure: Some(&reply),
        };
        for cmd in [FS_IOC_GETFLAGS, FS_IOC32_GETFLAGS] {
            assert_eq!(
                result(handle_ioctl(req(cmd, 4), &[], t)),
                (0, Some(vec![0, 0, 0x10, 0]))
            );
            assert_eq!(
                result(handle_ioctl(req(cmd, 4), &[], IoctlTarget::default())),
                (0, Some(vec![0; 4]))
            );
        }
        assert_eq!(
            result(handle_ioctl(req(FS_IOC_ENABLE_VERITY, 0), &[0; 128], t)),
            (-libc::EROFS, None)
        );
    }

    #[test]
    fn unrestricted_ioctls_are_eperm() {
        let reply = [1u8, 0, 32, 0];
        let t = IoctlTarget {
            measure: Some(&reply),
        };
        for cmd in [FS_IOC_MEASURE_VERITY, FS_IOC_GETFLAGS, 0x1234] {
            let r = IoctlRequest {
                cmd,
                flags: FUSE_IOCTL_UNRESTRICTED,
                out_size: 36,
            };
            let errno = handle_ioctl(r, &[0; 36], t)
                .err()
                .and_then(|e| e.raw_os_error());
            assert_eq!(errno, Some(libc::EPERM), "cmd {cmd:#x}");
        }
    }
}

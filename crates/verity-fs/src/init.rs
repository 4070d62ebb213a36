// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! FUSE INIT flag negotiation for a read-only share.
//!
//! fuse-backend-rs's `PassthroughFs::init` only asks for readdirplus (and per-file DAX when the
//! guest offers it). The server enables `capable & wanted`, so flags the passthrough layer does
//! not ask for stay off. Without `ASYNC_READ` the guest sends readahead synchronously, one
//! request at a time (about a third slower sequential reads than upstream virtiofsd); without
//! `MAX_PAGES` every request is capped at 128 KiB (fuse-backend-rs issue #117).

use fuse_backend_rs::api::filesystem::FsOptions;

/// Flags added to the inner filesystem's answer (the server still masks them with what the
/// guest offered).
pub const ADDED_INIT_FLAGS: FsOptions = FsOptions::ASYNC_READ
    .union(FsOptions::PARALLEL_DIROPS)
    .union(FsOptions::BIG_WRITES)
    .union(FsOptions::AUTO_INVAL_DATA)
    .union(FsOptions::ASYNC_DIO)
    .union(FsOptions::MAX_PAGES);

/// Flags never enabled: the writeback cache would let the guest buffer writes, and DAX maps
/// host pages into the guest, bypassing `read` (and thus any verification). Both are also
/// hidden from the inner filesystem, so it does not switch into those modes internally.
pub const FORBIDDEN_INIT_FLAGS: FsOptions = FsOptions::WRITEBACK_CACHE
    .union(FsOptions::PERFILE_DAX)
    .union(FsOptions::HANDLE_KILLPRIV)
    .union(FsOptions::HANDLE_KILLPRIV_V2);

/// Readdirplus flags; turned off with `cache=never`, as virtiofsd does.
const READDIRPLUS_FLAGS: FsOptions = FsOptions::DO_READDIRPLUS.union(FsOptions::READDIRPLUS_AUTO);

/// Runs the INIT negotiation around `inner`.
///
/// `inner` receives the guest's flags minus [`FORBIDDEN_INIT_FLAGS`]; its answer gains
/// [`ADDED_INIT_FLAGS`] and loses the forbidden flags (and readdirplus when `readdirplus` is
/// false).
pub fn negotiate_init<E>(
    capable: FsOptions,
    readdirplus: bool,
    inner: impl FnOnce(FsOptions) -> Result<FsOptions, E>,
) -> Result<FsOptions, E> {
    let wanted = inner(capable.difference(FORBIDDEN_INIT_FLAGS))?;
    let mut reply = wanted
        .union(ADDED_INIT_FLAGS)
        .difference(FORBIDDEN_INIT_FLAGS);
    if !readdirplus {
        reply.remove(READDIRPLUS_FLAGS);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_never_sees_forbidden_flags_and_reply_has_added_flags() {
        let capable = FsOptions::all();
        let reply = negotiate_init::<()>(capable, true, |seen| {
            assert!(!seen.intersects(FORBIDDEN_INIT_FLAGS));
            Ok(FsOptions::DO_READDIRPLUS | FsOptions::PERFILE_DAX | FsOptions::WRITEBACK_CACHE)
        })
        .unwrap();
        assert!(reply.contains(ADDED_INIT_FLAGS));
        assert!(reply.contains(FsOptions::DO_READDIRPLUS));
        assert!(!reply.intersects(FORBIDDEN_INIT_FLAGS));
    }

    #[test]
    fn readdirplus_can_be_turned_off() {
        let reply = negotiate_init::<()>(FsOptions::all(), false, |_| {
            Ok(FsOptions::DO_READDIRPLUS | FsOptions::READDIRPLUS_AUTO)
        })
        .unwrap();
        assert!(!reply.intersects(READDIRPLUS_FLAGS));
    }

    #[test]
    fn inner_error_is_returned() {
        assert_eq!(negotiate_init(FsOptions::empty(), true, |_| Err(7)), Err(7));
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzz targets for verityfsd's request path.
//!
//! Each target is a `pub fn` taking the fuzzer's bytes. The cargo-fuzz package (`crates/fuzz`,
//! nightly, coverage-guided) and the stable randomized loop (`tests/loop.rs`, run by `cargo
//! test`) call exactly these functions, so both exercise the same code and the same
//! invariants; an invariant that does not hold panics, which both runners report.
//!
//! Both targets drive the daemon's real queue worker
//! ([`verityfsd::queue_worker::QueueWorker::process_queue`]) over mock guest memory: the
//! request checks, fuse-backend-rs's `Server` and [`verity_fs::VerityFs`] over a
//! `PassthroughFs` of a small verified share built once per process ([`share`]).
//!
//! - [`fuse_requests`]: a session of FUSE requests decoded from the input, one well-formed
//!   descriptor chain each.
//! - [`descriptor_chain`]: hostile descriptor tables, available rings and guest memory layouts.

/// Picks one of the listed values by the next input byte. The values are all evaluated first
/// (they may draw from the input themselves).
macro_rules! pick {
    ($u:expr, [$($v:expr),+ $(,)?] $(,)?) => {{
        let choices = [$($v),+];
        crate::input::pick($u, &choices)
    }};
}

mod descriptor_chain;
mod fuse_requests;
mod input;
mod mock_queue;
pub mod share;

pub use descriptor_chain::descriptor_chain;
pub use fuse_requests::fuse_requests;

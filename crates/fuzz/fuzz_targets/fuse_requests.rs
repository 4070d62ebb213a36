// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! libFuzzer entry for `verityfsd_fuzz::fuse_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verityfsd_fuzz::fuse_requests(data));

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! verityfsd: a read-only virtio-fs vhost-user backend (see the library, [`verityfsd::run`]).

fn main() -> std::process::ExitCode {
    verityfsd::run()
}

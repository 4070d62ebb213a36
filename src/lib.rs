// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! verityfsd: a read-only virtio-fs vhost-user backend.
//!
//! The daemon is the `verityfsd` binary, a thin caller of [`run`]: it parses the command
//! line, validates it into a configuration and runs the daemon; errors become one message
//! and an exit code (2 for bad CLI or configuration, 1 for runtime failures).
//!
//! The library exposes the request path ([`queue_worker`], [`request_check`],
//! [`worker_pool`]) so that the fuzz targets serve descriptor chains exactly as the daemon
//! does.

mod cli;
mod config;
mod daemon;
mod error;
mod insecure;
mod logging;
mod pidfile;
mod privileges;
pub mod queue_worker;
pub mod request_check;
mod sandbox;
mod sandbox_sys;
mod seccomp;
mod socket;
mod sys;
mod vhost_user;
pub mod worker_pool;

use std::process::ExitCode;

use clap::Parser;
// Guest-triggerable log lines (queue worker) share the filesystem layer's rate limiter.
use verity_fs::warn_ratelimited;

use crate::cli::Args;
use crate::config::DaemonConfig;
use crate::error::{Error, EXIT_CONFIG};

/// The vhost-user backend capability document (vhost-user "backend program conventions"),
/// printed by `--print-capabilities` for libvirt.
const CAPABILITIES_JSON: &str = "{\n  \"type\": \"fs\",\n  \"features\": []\n}";

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs the daemon with the process's command line; returns the exit status.
pub fn run() -> ExitCode {
    let args = Args::parse();
    if args.print_capabilities {
        println!("{CAPABILITIES_JSON}");
        return ExitCode::SUCCESS;
    }
    let log_cfg = config::LogConfig {
        level: args.log_level,
        syslog: args.syslog,
    };
    let cfg = match DaemonConfig::try_from(args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("verityfsd: {}", error_chain(&Error::from(e)));
            return exit_code(EXIT_CONFIG);
        }
    };
    if let Err(e) = logging::init(log_cfg) {
        eprintln!("verityfsd: {}", error_chain(&Error::from(e)));
        return exit_code(error::EXIT_RUNTIME);
    }
    match daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", error_chain(&e));
            exit_code(e.exit_code())
        }
    }
}

/// "outer: cause: cause" for an error and its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

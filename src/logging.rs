// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Logger setup: env_logger filtering, stderr or syslog output.
//!
//! fuse-backend-rs 0.14 formats `Opcode::from(opcode)` in a `trace!` line for every request,
//! and that conversion transmutes the raw number (undefined behaviour for opcode gaps). The
//! queue worker never hands such opcodes to the server; in addition its log target is kept at
//! `debug` at most here.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};

use crate::config::LogConfig;

/// Log target prefix of fuse-backend-rs.
const FUSE_BACKEND_TARGET: &str = "fuse_backend_rs";
/// The syslog socket.
const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog facility LOG_DAEMON.
const FACILITY_DAEMON: u8 = 3;

/// Errors setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `log::set_boxed_logger` failed (a logger was already installed).
    #[error("cannot install the logger")]
    Install(#[from] log::SetLoggerError),
}

enum Sink {
    Stderr,
    Syslog(Mutex<UnixDatagram>),
}

struct DaemonLogger {
    filter: env_logger::Logger,
    sink: Sink,
}

fn capped(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with(FUSE_BACKEND_TARGET) && metadata.level() > log::Level::Debug
}

fn syslog_severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

impl Log for DaemonLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !capped(metadata) && self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match &self.sink {
            Sink::Stderr => self.filter.log(record),
            Sink::Syslog(sock) => {
                let pri = FACILITY_DAEMON * 8 + syslog_severity(record.level());
                let line = format!(
                    "<{pri}>verityfsd[{}]: {}: {}",
                    std::process::id(),
                    record.target(),
                    record.args()
                );
                if let Ok(sock) = sock.lock() {
                    // Nothing sensible can be done if syslog is gone; do not block or panic.
                    let _ = sock.send(line.as_bytes());
                }
            }
        }
    }

    fn flush(&self) {
        if let Sink::Stderr = self.sink {
            let _ = std::io::stderr().flush();
        }
    }
}

/// Installs the process logger. `RUST_LOG`, if set, takes precedence over the level.
pub fn init(cfg: LogConfig) -> Result<(), LogError> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(cfg.level);
    builder.filter_module(FUSE_BACKEND_TARGET, cfg.level.min(LevelFilter::Debug));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    let filter = builder.build();
    let max = filter.filter();

    let (sink, syslog_error) = if cfg.syslog {
        match UnixDatagram::unbound().and_then(|s| s.connect(SYSLOG_SOCKET).map(|()| s)) {
            Ok(sock) => (Sink::Syslog(Mutex::new(sock)), None),
            Err(e) => (Sink::Stderr, Some(e)),
        }
    } else {
        (Sink::Stderr, None)
    };

    log::set_boxed_logger(Box::new(DaemonLogger { filter, sink }))?;
    log::set_max_level(max);
    if let Some(e) = syslog_error {
        log::warn!("--syslog: cannot connect to {SYSLOG_SOCKET} ({e}); logging to stderr");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_backend_trace_is_capped() {
        let trace = Metadata::builder()
            .target("fuse_backend_rs::api::server::sync_io")
            .level(log::Level::Trace)
            .build();
        assert!(capped(&trace));
        let debug = Metadata::builder()
            .target("fuse_backend_rs")
            .level(log::Level::Debug)
            .build();
        assert!(!capped(&debug));
        let ours = Metadata::builder()
            .target("verityfsd")
            .level(log::Level::Trace)
            .build();
        assert!(!capped(&ours));
    }

    #[test]
    fn syslog_severities() {
        assert_eq!(syslog_severity(log::Level::Error), 3);
        assert_eq!(syslog_severity(log::Level::Info), 6);
    }
}

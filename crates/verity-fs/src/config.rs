// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Filesystem-layer configuration and the inner `PassthroughFs` built from it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use fuse_backend_rs::passthrough::{CachePolicy, Config, PassthroughFs};

/// Guest caching policy, with virtiofsd's names and meaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Close-to-open consistency; metadata valid for 1 s (the default).
    #[default]
    Auto,
    /// The guest may keep file data across opens; metadata valid for 1 day.
    Always,
    /// No data or metadata caching in the guest; files open with DIRECT_IO.
    Never,
    /// Metadata cached for 1 day, file data not cached (DIRECT_IO).
    Metadata,
}

impl CacheMode {
    /// Entry and attribute timeout for this mode (virtiofsd's values).
    pub fn timeout(self) -> Duration {
        match self {
            CacheMode::Never => Duration::ZERO,
            CacheMode::Auto => Duration::from_secs(1),
            CacheMode::Always | CacheMode::Metadata => Duration::from_secs(86_400),
        }
    }

    /// Whether readdirplus is offered (virtiofsd turns it off with `cache=never`).
    pub fn readdirplus(self) -> bool {
        self != CacheMode::Never
    }

    fn policy(self) -> CachePolicy {
        match self {
            CacheMode::Auto => CachePolicy::Auto,
            CacheMode::Always => CachePolicy::Always,
            CacheMode::Never => CachePolicy::Never,
            CacheMode::Metadata => CachePolicy::Metadata,
        }
    }
}

/// Everything the filesystem layer needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    /// The shared directory. Must already be canonical (no symlinks): the passthrough layer
    /// opens it with `O_NOFOLLOW`, and a symlinked root gives `EIO` on every request.
    pub shared_dir: PathBuf,
    /// Guest caching policy.
    pub cache: CacheMode,
    /// Pass extended attributes through (read-only).
    pub xattr: bool,
}

/// Errors building the inner filesystem.
#[derive(Debug, thiserror::Error)]
pub enum FsConfigError {
    /// The shared directory path is not valid UTF-8 (fuse-backend-rs takes a `String`).
    #[error("shared directory {0:?} is not valid UTF-8; use a path with UTF-8 characters only")]
    NonUtf8SharedDir(PathBuf),
    /// `PassthroughFs::new` failed (for example `/proc/self/fd` could not be opened).
    #[error("cannot create the passthrough filesystem (is /proc mounted?)")]
    CreatePassthrough(#[source] io::Error),
}

/// The `PassthroughFs` configuration for `cfg`.
///
/// Guest `O_DIRECT` is not passed to host files (`allow_direct_io = false`, as virtiofsd by
/// default): direct host I/O is slower and gains nothing for a read-only share.
pub fn passthrough_config(cfg: &FsConfig) -> Result<Config, FsConfigError> {
    let root_dir = cfg
        .shared_dir
        .to_str()
        .ok_or_else(|| FsConfigError::NonUtf8SharedDir(cfg.shared_dir.clone()))?
        .to_owned();
    let timeout = cfg.cache.timeout();
    Ok(Config {
        root_dir,
        cache_policy: cfg.cache.policy(),
        attr_timeout: timeout,
        entry_timeout: timeout,
        xattr: cfg.xattr,
        writeback: false,
        allow_direct_io: false,
        do_import: true,
        dax_file_size: None,
        ..Config::default()
    })
}

/// Builds the inner passthrough filesystem for `cfg`.
pub fn new_passthrough(cfg: &FsConfig) -> Result<PassthroughFs<()>, FsConfigError> {
    PassthroughFs::new(passthrough_config(cfg)?).map_err(FsConfigError::CreatePassthrough)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_match_virtiofsd() {
        assert_eq!(CacheMode::Never.timeout(), Duration::ZERO);
        assert_eq!(CacheMode::Auto.timeout(), Duration::from_secs(1));
        assert_eq!(CacheMode::Always.timeout(), Duration::from_secs(86_400));
        assert_eq!(CacheMode::Metadata.timeout(), Duration::from_secs(86_400));
        assert!(!CacheMode::Never.readdirplus());
        assert!(CacheMode::Auto.readdirplus());
    }

    #[test]
    fn passthrough_config_is_read_only_friendly() {
        let cfg = FsConfig {
            shared_dir: PathBuf::from("/srv/share"),
            cache: CacheMode::Always,
            xattr: true,
        };
        let pt = passthrough_config(&cfg).unwrap();
        assert_eq!(pt.root_dir, "/srv/share");
        assert_eq!(pt.cache_policy, CachePolicy::Always);
        assert_eq!(pt.attr_timeout, Duration::from_secs(86_400));
        assert!(pt.xattr);
        assert!(!pt.allow_direct_io);
        assert!(!pt.writeback);
        assert!(pt.do_import);
    }
}

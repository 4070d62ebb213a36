// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The vhost-user control plane, driven the way a VMM drives it.
//!
//! [`VhostUserConnection::connect`] opens the daemon's socket and negotiates
//! features like QEMU does for `vhost-user-fs-pci` without a vIOMMU:
//! `SET_OWNER`, `GET_FEATURES`, `GET_PROTOCOL_FEATURES`,
//! `SET_PROTOCOL_FEATURES`, `GET_QUEUE_NUM`, `SET_FEATURES`. The memory table
//! and the vrings are then configured with [`VhostUserConnection::set_mem_table`]
//! and [`VhostUserConnection::setup_vring`].
//!
//! Every group of control messages runs under a [`Watchdog`] deadline, so a
//! hung daemon fails the caller instead of blocking it forever.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;
use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::{
    Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::VhostBackend;
use virtio_bindings::bindings::virtio_config::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1};
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};

use crate::memory::{GuestMemory, MemoryError};
use crate::virtqueue::{QueueError, SplitQueue};
use crate::watchdog::Watchdog;

/// `VIRTIO_F_VERSION_1` as a feature mask.
pub const FEATURE_VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
/// `VIRTIO_RING_F_INDIRECT_DESC` as a feature mask.
pub const FEATURE_INDIRECT_DESC: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;
/// `VIRTIO_RING_F_EVENT_IDX` as a feature mask.
pub const FEATURE_EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;
/// `VIRTIO_F_ACCESS_PLATFORM` as a feature mask (never acked: no vIOMMU).
pub const FEATURE_ACCESS_PLATFORM: u64 = 1 << VIRTIO_F_ACCESS_PLATFORM;

/// Pause between connection attempts while the daemon starts listening.
const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// Errors from the control plane.
#[derive(Debug, Error)]
pub enum FrontendError {
    /// The socket could not be connected before the deadline.
    #[error("cannot connect to {path}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Last connection error.
        #[source]
        source: io::Error,
    },
    /// The control-plane watchdog could not be started.
    #[error("cannot start the control-plane watchdog")]
    Watchdog(#[source] io::Error),
    /// The daemon did not answer in time; the connection was shut down.
    #[error("vhost-user {step} did not complete within {timeout:?}")]
    Timeout {
        /// The step that timed out.
        step: &'static str,
        /// The control timeout.
        timeout: Duration,
    },
    /// A vhost-user request failed (includes timeouts and NACKs).
    #[error("vhost-user {step} failed")]
    Request {
        /// The request that failed, e.g. `SET_MEM_TABLE`.
        step: &'static str,
        /// Underlying error.
        #[source]
        source: vhost::Error,
    },
    /// The daemon does not offer a feature virtio-fs needs.
    #[error("daemon does not offer required virtio feature bits {0:#x}")]
    MissingFeature(u64),
    /// The daemon has fewer queues than requested.
    #[error("daemon supports {available} queues, {requested} requested")]
    NotEnoughQueues {
        /// Queues the harness wants to configure.
        requested: usize,
        /// Queues the daemon reported.
        available: u64,
    },
    /// Guest memory could not be described to the daemon.
    #[error("cannot describe guest memory")]
    Memory(#[source] MemoryError),
    /// A ring address could not be translated.
    #[error("cannot compute vring addresses")]
    Queue(#[source] QueueError),
    /// Creating the backend request channel failed.
    #[error("cannot create backend request socket pair")]
    BackendChannel(#[source] io::Error),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, FrontendError>;

/// What the frontend offers to negotiate.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// Number of vrings to configure: queue 0 (hiprio) plus request queues.
    pub num_queues: usize,
    /// Size of every vring (power of two).
    pub queue_size: u16,
    /// Ack `VIRTIO_RING_F_INDIRECT_DESC` when offered (needed for indirect chains).
    pub ack_indirect_desc: bool,
    /// Ack `VIRTIO_RING_F_EVENT_IDX` when offered (as a Linux guest does).
    pub ack_event_idx: bool,
    /// Ack `VHOST_USER_PROTOCOL_F_BACKEND_REQ` when offered; the harness then
    /// sends one end of a socket pair and keeps the other open.
    pub ack_backend_req: bool,
    /// Timeout for each control-plane message and for connecting.
    pub control_timeout: Duration,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            num_queues: 2,
            queue_size: 256,
            ack_indirect_desc: true,
            ack_event_idx: false,
            ack_backend_req: false,
            control_timeout: Duration::from_secs(10),
        }
    }
}

/// Result of feature negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Virtio feature bits the daemon offered.
    pub offered_features: u64,
    /// Virtio feature bits the harness acked.
    pub acked_features: u64,
    /// Protocol feature bits the daemon offered (0 without `PROTOCOL_FEATURES`).
    pub offered_protocol_features: u64,
    /// Protocol feature bits the harness acked.
    pub acked_protocol_features: u64,
    /// Queue count from `GET_QUEUE_NUM` (only with `MQ`).
    pub queue_num: Option<u64>,
}

impl Negotiated {
    /// Whether `VIRTIO_RING_F_INDIRECT_DESC` was negotiated.
    pub fn indirect_desc(&self) -> bool {
        self.acked_features & FEATURE_INDIRECT_DESC != 0
    }

    /// Whether `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    pub fn event_idx(&self) -> bool {
        self.acked_features & FEATURE_EVENT_IDX != 0
    }

    /// Whether `VHOST_USER_F_PROTOCOL_FEATURES` was negotiated.
    pub fn protocol_features(&self) -> bool {
        self.acked_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0
    }
}

/// A negotiated vhost-user control connection.
pub struct VhostUserConnection {
    frontend: Frontend,
    negotiated: Negotiated,
    /// Our end of the backend request channel, kept open for the daemon.
    backend_channel: Option<UnixStream>,
    watchdog: Watchdog,
    timeout: Duration,
}

impl VhostUserConnection {
    /// Connects to `socket` (retrying until `config.control_timeout`) and
    /// negotiates features; the whole negotiation must finish within
    /// `config.control_timeout`.
    pub fn connect(socket: &Path, config: &FrontendConfig) -> Result<Self> {
        let stream = connect_with_retry(socket, config.control_timeout)?;
        let watchdog = stream
            .try_clone()
            .and_then(Watchdog::new)
            .map_err(FrontendError::Watchdog)?;
        let max_queues = u64::try_from(config.num_queues).unwrap_or(u64::MAX);
        let mut connection = VhostUserConnection {
            frontend: Frontend::from_stream(stream, max_queues),
            negotiated: Negotiated {
                offered_features: 0,
                acked_features: 0,
                offered_protocol_features: 0,
                acked_protocol_features: 0,
                queue_num: None,
            },
            backend_channel: None,
            watchdog,
            timeout: config.control_timeout,
        };
        let (negotiated, channel) =
            connection.guarded("feature negotiation", |f| negotiate(f, config))?;
        connection.negotiated = negotiated;
        connection.backend_channel = channel;
        Ok(connection)
    }

    /// The negotiated features.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Runs raw `Frontend` calls (for control-plane tests) under the
    /// control timeout; if it passes, the connection is shut down and
    /// `Timeout` is returned.
    pub fn with_frontend<T>(
        &mut self,
        f: impl FnOnce(&mut Frontend) -> std::result::Result<T, vhost::Error>,
    ) -> Result<T> {
        self.guarded("raw request", |frontend| {
            f(frontend).map_err(|source| FrontendError::Request {
                step: "raw request",
                source,
            })
        })
    }

    /// Whether the backend request channel was set up.
    pub fn has_backend_channel(&self) -> bool {
        self.backend_channel.is_some()
    }

    /// Sends `VHOST_USER_SET_MEM_TABLE` for all regions of `mem`.
    pub fn set_mem_table(&mut self, mem: &GuestMemory) -> Result<()> {
        let regions = mem.region_infos().map_err(FrontendError::Memory)?;
        self.guarded("SET_MEM_TABLE", |f| {
            f.set_mem_table(&regions)
                .map_err(|source| FrontendError::Request {
                    step: "SET_MEM_TABLE",
                    source,
                })
        })
    }

    /// Configures and enables one vring: `SET_VRING_NUM`, `SET_VRING_BASE`,
    /// `SET_VRING_ADDR`, `SET_VRING_KICK`, `SET_VRING_CALL`, `SET_VRING_ENABLE`.
    pub fn setup_vring(&mut self, mem: &GuestMemory, queue: &SplitQueue) -> Result<()> {
        let index = usize::from(queue.index());
        let config = queue.config_data(mem).map_err(FrontendError::Queue)?;
        let enable = self.negotiated.protocol_features();
        self.guarded("vring setup", |f| {
            let req = |step| move |source| FrontendError::Request { step, source };
            f.set_vring_num(index, queue.size())
                .map_err(req("SET_VRING_NUM"))?;
            f.set_vring_base(index, 0).map_err(req("SET_VRING_BASE"))?;
            f.set_vring_addr(index, &config)
                .map_err(req("SET_VRING_ADDR"))?;
            f.set_vring_kick(index, queue.kick_fd())
                .map_err(req("SET_VRING_KICK"))?;
            f.set_vring_call(index, queue.call_fd())
                .map_err(req("SET_VRING_CALL"))?;
            if enable {
                f.set_vring_enable(index, true)
                    .map_err(req("SET_VRING_ENABLE"))?;
            }
            Ok(())
        })
    }

    /// Runs `f` under the control timeout.
    fn guarded<T>(
        &mut self,
        step: &'static str,
        f: impl FnOnce(&mut Frontend) -> Result<T>,
    ) -> Result<T> {
        let timeout = self.timeout;
        let frontend = &mut self.frontend;
        let result = self.watchdog.run(timeout, || f(frontend));
        if self.watchdog.fired() {
            return Err(FrontendError::Timeout { step, timeout });
        }
        result
    }
}

/// The negotiation sequence QEMU uses for vhost-user-fs without a vIOMMU.
fn negotiate(
    frontend: &mut Frontend,
    config: &FrontendConfig,
) -> Result<(Negotiated, Option<UnixStream>)> {
    let req = |step| move |source| FrontendError::Request { step, source };
    let max_queues = u64::try_from(config.num_queues).unwrap_or(u64::MAX);
    frontend.set_owner().map_err(req("SET_OWNER"))?;
    let offered_features = frontend.get_features().map_err(req("GET_FEATURES"))?;
    if offered_features & FEATURE_VERSION_1 == 0 {
        return Err(FrontendError::MissingFeature(FEATURE_VERSION_1));
    }
    let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
    let mut wanted = FEATURE_VERSION_1 | protocol_bit;
    if config.ack_indirect_desc {
        wanted |= FEATURE_INDIRECT_DESC;
    }
    if config.ack_event_idx {
        wanted |= FEATURE_EVENT_IDX;
    }
    // ACCESS_PLATFORM is deliberately absent: like QEMU without a vIOMMU,
    // guest addresses are plain guest-physical addresses.
    let acked_features = offered_features & wanted;

    let mut negotiated = Negotiated {
        offered_features,
        acked_features,
        offered_protocol_features: 0,
        acked_protocol_features: 0,
        queue_num: None,
    };
    let mut backend_channel = None;
    if offered_features & protocol_bit != 0 {
        let offered = frontend
            .get_protocol_features()
            .map_err(req("GET_PROTOCOL_FEATURES"))?;
        let mut wanted = VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS;
        if config.ack_backend_req {
            wanted |= VhostUserProtocolFeatures::BACKEND_REQ;
        }
        let acked = offered & wanted;
        frontend
            .set_protocol_features(acked)
            .map_err(req("SET_PROTOCOL_FEATURES"))?;
        negotiated.offered_protocol_features = offered.bits();
        negotiated.acked_protocol_features = acked.bits();
        if acked.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            // Every following request gets an explicit ACK/NACK.
            frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        if acked.contains(VhostUserProtocolFeatures::MQ) {
            let n = frontend.get_queue_num().map_err(req("GET_QUEUE_NUM"))?;
            negotiated.queue_num = Some(n);
            if n < max_queues {
                return Err(FrontendError::NotEnoughQueues {
                    requested: config.num_queues,
                    available: n,
                });
            }
        }
        if acked.contains(VhostUserProtocolFeatures::BACKEND_REQ) {
            let (ours, theirs) = UnixStream::pair().map_err(FrontendError::BackendChannel)?;
            frontend
                .set_backend_request_fd(&theirs)
                .map_err(req("SET_BACKEND_REQ_FD"))?;
            backend_channel = Some(ours);
        }
    }
    frontend
        .set_features(acked_features)
        .map_err(req("SET_FEATURES"))?;
    Ok((negotiated, backend_channel))
}

impl std::fmt::Debug for VhostUserConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserConnection")
            .field("negotiated", &self.negotiated)
            .field("backend_channel", &self.backend_channel.is_some())
            .finish_non_exhaustive()
    }
}

/// Connects to a unix socket, retrying while it does not exist or refuses.
fn connect_with_retry(path: &Path, timeout: Duration) -> Result<UnixStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(CONNECT_RETRY_INTERVAL);
            }
            Err(source) => {
                return Err(FrontendError::Connect {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn silent_backend_fails_within_the_control_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // Accept and hold the connection, never answer.
        let holder = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let config = FrontendConfig {
            control_timeout: Duration::from_millis(200),
            ..FrontendConfig::default()
        };
        let start = Instant::now();
        let err = VhostUserConnection::connect(&path, &config).unwrap_err();
        assert!(matches!(err, FrontendError::Timeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(holder.join().unwrap());
    }

    #[test]
    fn missing_socket_fails_after_retrying() {
        let dir = tempfile::tempdir().unwrap();
        let config = FrontendConfig {
            control_timeout: Duration::from_millis(100),
            ..FrontendConfig::default()
        };
        let err = VhostUserConnection::connect(&dir.path().join("none.sock"), &config).unwrap_err();
        assert!(matches!(err, FrontendError::Connect { .. }), "{err:?}");
    }
}

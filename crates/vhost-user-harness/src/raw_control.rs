// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Raw vhost-user control messages, for control-plane abuse tests.
//!
//! [`crate::frontend::VhostUserConnection`] only sends what
//! `vhost::vhost_user::Frontend` can express. A hostile or broken frontend
//! can send more: a header whose `size` is larger than the protocol allows,
//! a payload shorter than its header announces, file descriptors on a
//! message that takes none, or half a header followed by a hang-up.
//! [`RawControl`] writes such bytes as they are, with any file descriptors
//! attached (`SCM_RIGHTS`), and observes how the daemon reacts: a reply, or
//! the connection closed. Every read is bounded by a timeout.
//!
//! Message layout (QEMU `docs/interop/vhost-user.rst`): a 12-byte header
//! `u32 request, u32 flags, u32 size` in native byte order, then `size`
//! payload bytes.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::{VhostUserHeaderFlag, MAX_MSG_SIZE};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Size of the vhost-user message header.
pub const HEADER_SIZE: usize = 12;
/// Largest payload the protocol allows (`MAX_MSG_SIZE` of the vhost crate).
pub const MAX_PAYLOAD_SIZE: u32 = MAX_MSG_SIZE as u32;
/// Header flags of a request: protocol version 1.
pub const FLAGS_VERSION_1: u32 = 0x1;
/// Header flag asking for an explicit reply (`REPLY_ACK`).
pub const FLAG_NEED_REPLY: u32 = VhostUserHeaderFlag::NEED_REPLY.bits();

/// A decoded reply header and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// `request` field of the reply header (the request it answers).
    pub request: u32,
    /// `flags` field of the reply header.
    pub flags: u32,
    /// Payload bytes (as many as the header's `size` says).
    pub payload: Vec<u8>,
}

/// How a bounded wait on the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// The daemon closed (or reset) the connection.
    Closed,
    /// The connection was still open when the timeout passed.
    Open,
}

/// Encodes a header with an arbitrary `size` field.
pub fn header(request: u32, flags: u32, size: u32) -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    h[0..4].copy_from_slice(&request.to_ne_bytes());
    h[4..8].copy_from_slice(&flags.to_ne_bytes());
    h[8..12].copy_from_slice(&size.to_ne_bytes());
    h
}

/// Encodes a well-framed message: header (version 1, `size = payload.len()`) and payload.
pub fn message(request: u32, payload: &[u8]) -> Vec<u8> {
    let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut m = header(request, FLAGS_VERSION_1, size).to_vec();
    m.extend_from_slice(payload);
    m
}

/// A raw vhost-user control connection.
#[derive(Debug)]
pub struct RawControl {
    stream: UnixStream,
}

impl RawControl {
    /// Connects to the daemon's socket (which must already exist).
    pub fn connect(socket: &Path) -> io::Result<Self> {
        Ok(RawControl {
            stream: UnixStream::connect(socket)?,
        })
    }

    /// Sends `bytes` in one `sendmsg` with `fds` attached (none if empty).
    pub fn send(&self, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
        if fds.is_empty() {
            return (&self.stream).write_all(bytes);
        }
        let sent = self
            .stream
            .send_with_fds(&[bytes], fds)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        if sent == bytes.len() {
            Ok(())
        } else {
            // The fds went with the first part; the rest follows as plain bytes.
            (&self.stream).write_all(&bytes[sent..])
        }
    }

    /// Reads one reply within `timeout`; `Ok(None)` if the daemon closed the
    /// connection first.
    pub fn recv_reply(&mut self, timeout: Duration) -> io::Result<Option<RawReply>> {
        let deadline = Instant::now() + timeout;
        let mut hdr = [0u8; HEADER_SIZE];
        if !self.read_exact_by(&mut hdr, deadline)? {
            return Ok(None);
        }
        let word = |i: usize| u32::from_ne_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
        let (request, flags, size) = (word(0), word(4), word(8));
        if size > MAX_PAYLOAD_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reply announces {size} payload bytes"),
            ));
        }
        let mut payload = vec![0u8; size as usize];
        if !self.read_exact_by(&mut payload, deadline)? {
            return Ok(None);
        }
        Ok(Some(RawReply {
            request,
            flags,
            payload,
        }))
    }

    /// Waits up to `timeout` for the daemon to close the connection,
    /// discarding anything it sends meanwhile.
    pub fn wait_closed(&mut self, timeout: Duration) -> io::Result<PeerState> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 256];
        loop {
            match self.read_by(&mut buf, deadline)? {
                Some(0) => return Ok(PeerState::Closed),
                Some(_) => continue,
                None => return Ok(PeerState::Open),
            }
        }
    }

    /// Closes both directions of the connection now.
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Both)
    }

    /// Fills `buf` before `deadline`; `Ok(false)` if the peer closed first.
    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_by(&mut buf[filled..], deadline)? {
                Some(0) => return Ok(false),
                Some(n) => filled += n,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no reply from the daemon",
                    ))
                }
            }
        }
        Ok(true)
    }

    /// One read before `deadline`: `Some(0)` when the peer closed or reset
    /// the connection, `None` on timeout.
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Some(0)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn frames_messages_and_sees_replies_and_hangups() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut raw = RawControl { stream: a };
        let file = std::fs::File::open("/dev/null").unwrap();
        raw.send(&message(5, &[1, 2, 3]), &[file.as_raw_fd()])
            .unwrap();
        let mut got = [0u8; HEADER_SIZE + 3];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got[..], &message(5, &[1, 2, 3])[..]);
        assert_eq!(u32::from_ne_bytes(got[8..12].try_into().unwrap()), 3);

        b.write_all(&message(1, &[9; 8])).unwrap();
        let reply = raw
            .recv_reply(Duration::from_secs(5))
            .unwrap()
            .expect("a reply");
        assert_eq!(reply.request, 1);
        assert_eq!(reply.payload, vec![9; 8]);

        let start = Instant::now();
        assert_eq!(
            raw.wait_closed(Duration::from_millis(50)).unwrap(),
            PeerState::Open
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(b);
        assert_eq!(
            raw.wait_closed(Duration::from_secs(5)).unwrap(),
            PeerState::Closed
        );
        assert_eq!(raw.recv_reply(Duration::from_secs(1)).unwrap(), None);
    }
}

// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A deadline for blocking control-plane calls.
//!
//! `vhost::vhost_user::Frontend` retries `EAGAIN` forever, so a socket
//! receive timeout does not bound a call to a daemon that never answers.
//! The watchdog does: while armed, a background thread shuts the socket down
//! once the deadline passes, which makes the pending call fail.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    deadline: Option<Instant>,
    fired: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// Shuts a socket down when an armed deadline passes.
#[derive(Debug)]
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching `socket` (a clone of the control connection).
    pub fn new(socket: UnixStream) -> io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vhost-user-watchdog".into())
            .spawn(move || watch(&worker, &socket))?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `f` with the deadline `now + timeout` armed.
    pub fn run<T>(&self, timeout: Duration, f: impl FnOnce() -> T) -> T {
        self.set_deadline(Some(Instant::now() + timeout));
        let result = f();
        self.set_deadline(None);
        result
    }

    /// Whether a deadline has passed (the socket is then shut down).
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    fn set_deadline(&self, deadline: Option<Instant>) {
        self.lock().deadline = deadline;
        self.shared.wake.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only waits on the condvar; a panic there is a bug
            // that the join result would not help with.
            let _ = thread.join();
        }
    }
}

fn watch(shared: &Shared, socket: &UnixStream) {
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if state.stop {
            return;
        }
        state = match state.deadline {
            None => shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    state.fired = true;
                    state.deadline = None;
                    // Best effort: the peer may already be gone.
                    let _ = socket.shutdown(Shutdown::Both);
                    continue;
                }
                shared
                    .wake
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn fires_only_when_the_deadline_passes() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let dog = Watchdog::new(a.try_clone().unwrap()).unwrap();
        assert_eq!(dog.run(Duration::from_secs(5), || 7), 7);
        assert!(!dog.fired());
        let start = Instant::now();
        let mut buf = [0u8; 1];
        // The read blocks until the watchdog shuts the socket down.
        let n = dog.run(Duration::from_millis(50), || b.read(&mut buf).unwrap());
        assert_eq!(n, 0);
        assert!(dog.fired());
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(a);
    }
}

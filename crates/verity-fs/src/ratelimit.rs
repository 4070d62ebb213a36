// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Per-call-site rate limiting for log lines a guest can trigger repeatedly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Length of one rate-limit window.
const WINDOW_MS: u64 = 5_000;
/// Lines allowed per call site and window.
const LINES_PER_WINDOW: u64 = 10;

/// State of one call site.
#[derive(Debug)]
pub struct RateLimit {
    window: AtomicU64,
    count: AtomicU64,
    suppressed: AtomicU64,
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

impl RateLimit {
    /// A fresh limiter (usable in a `static`).
    pub const fn new() -> Self {
        RateLimit {
            window: AtomicU64::new(0),
            count: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns `Some(n)` if a line may be logged now, where `n` lines were suppressed since
    /// the last one that was logged; `None` if this line must be dropped.
    pub fn check(&self) -> Option<u64> {
        self.check_at(now_ms())
    }

    fn check_at(&self, now: u64) -> Option<u64> {
        let window = now / WINDOW_MS;
        if self.window.swap(window, Ordering::Relaxed) != window {
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < LINES_PER_WINDOW {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// `log::warn!` limited to a few lines per call site and window.
#[macro_export]
macro_rules! warn_ratelimited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if let Some(suppressed) = LIMIT.check() {
            if suppressed > 0 {
                ::log::warn!("({suppressed} similar messages suppressed)");
            }
            ::log::warn!($($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_window_and_reports_suppressed() {
        let rl = RateLimit::new();
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(rl.check_at(10), Some(0));
        }
        assert_eq!(rl.check_at(20), None);
        assert_eq!(rl.check_at(30), None);
        assert_eq!(rl.check_at(WINDOW_MS + 1), Some(2));
    }
}

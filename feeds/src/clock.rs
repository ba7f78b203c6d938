//! The local clock for receive timestamps: nanoseconds since the Unix epoch, so that they can
//! be compared with venues' timestamps and carried across threads. `clock_gettime` through the
//! vDSO: no syscall, about 20 ns.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ns since the Unix epoch (0 if the system clock is before 1970).
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

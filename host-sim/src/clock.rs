//! The simulated clock: time moves only when the simulation says so (or, in real-time mode, at
//! the speed of the wall clock, for tests that send real signals).

use facegate::hal::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A clock shared by the simulated devices and the daemon.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nanos: AtomicU64,
    wall0: SystemTime,
    realtime: Option<Instant>,
    /// How many times slower the modelled machine is (real-time mode).
    slowdown: f64,
}

impl SimClock {
    /// A clock at zero. With `realtime`, moving it forward also waits that long for real.
    pub fn new(realtime: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                nanos: AtomicU64::new(0),
                wall0: SystemTime::now(),
                realtime: realtime.then(Instant::now),
                slowdown: 1.0,
            }),
        }
    }

    /// The same clock with its wall time starting at `wall0` (schedules, time zones).
    pub fn with_wall(self, wall0: SystemTime) -> Self {
        let realtime = self.inner.realtime;
        Self {
            inner: Arc::new(Inner {
                nanos: AtomicU64::new(self.inner.nanos.load(std::sync::atomic::Ordering::SeqCst)),
                wall0,
                realtime,
                slowdown: self.inner.slowdown,
            }),
        }
    }

    /// The same clock modelling a machine `factor` times slower than this one: in real-time
    /// mode the daemon's recognition work on each frame takes `factor` times as long.
    pub fn with_slowdown(self, factor: f64) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                nanos: AtomicU64::new(i.nanos.load(Ordering::SeqCst)),
                wall0: i.wall0,
                realtime: i.realtime,
                slowdown: factor.max(1.0),
            }),
        }
    }

    /// Moves the clock forward to `t` (never backwards).
    pub fn advance_to(&self, t: Duration) {
        if let Some(start) = self.inner.realtime {
            let now = start.elapsed();
            if t > now {
                std::thread::sleep(t - now);
            }
        }
        self.inner
            .nanos
            .fetch_max(t.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        let t = Duration::from_nanos(self.inner.nanos.load(Ordering::SeqCst));
        // In real time, time also passes while the daemon works.
        match self.inner.realtime {
            Some(start) => t.max(start.elapsed()),
            None => t,
        }
    }
    fn wall(&self) -> SystemTime {
        self.inner.wall0 + self.now()
    }
    fn sleep(&self, d: Duration) {
        self.advance_to(self.now() + d)
    }
    fn realtime(&self) -> bool {
        self.inner.realtime.is_some()
    }
    fn worked(&self, worked: Duration) {
        // The slower machine's extra time, spent for real so the camera runs on meanwhile.
        if self.inner.realtime.is_some() && self.inner.slowdown > 1.0 {
            std::thread::sleep(worked.mul_f64(self.inner.slowdown - 1.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_forward_and_fast() {
        let c = SimClock::new(false);
        let started = Instant::now();
        c.sleep(Duration::from_secs(3600));
        c.advance_to(Duration::from_secs(10));
        assert_eq!(c.now(), Duration::from_secs(3600));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            c.wall().duration_since(c.inner.wall0).unwrap(),
            Duration::from_secs(3600)
        );
    }
}

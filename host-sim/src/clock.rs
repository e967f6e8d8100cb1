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
    /// The machine modelled (real-time mode).
    machine: Machine,
    /// Frames whose real work took longer than the modelled machine's cost ([`Machine::Cost`]).
    over_cost: AtomicU64,
}

/// The machine the real-time simulation models, for the time recognition of a frame takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Machine {
    /// This machine: recognition takes what it takes here.
    Host,
    /// A machine this many times slower than this one (`--slowdown`): what it models depends on
    /// the host, so it is for people trying things, never for tests.
    Slowdown(f64),
    /// A machine on which recognising a frame costs this long (`recognition_ms`), whatever the
    /// host: the host's own work counts towards it, the rest is waited for real. A host slower
    /// than the cost cannot model it; such frames are counted ([`SimClock::over_cost`]).
    Cost(Duration),
}

impl SimClock {
    /// A clock at zero. With `realtime`, moving it forward also waits that long for real.
    pub fn new(realtime: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                nanos: AtomicU64::new(0),
                wall0: SystemTime::now(),
                realtime: realtime.then(Instant::now),
                machine: Machine::Host,
                over_cost: AtomicU64::new(0),
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
                machine: self.inner.machine,
                over_cost: AtomicU64::new(0),
            }),
        }
    }

    /// The same clock modelling `machine`: in real-time mode the daemon's recognition of each
    /// frame takes as long as it would there.
    pub fn with_machine(self, machine: Machine) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                nanos: AtomicU64::new(i.nanos.load(Ordering::SeqCst)),
                wall0: i.wall0,
                realtime: i.realtime,
                machine,
                over_cost: AtomicU64::new(0),
            }),
        }
    }

    /// Frames whose real work on this host took longer than the modelled machine's cost: the
    /// host was too slow (or too loaded) to model that machine for them.
    pub fn over_cost(&self) -> u64 {
        self.inner.over_cost.load(Ordering::Relaxed)
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
        if self.inner.realtime.is_none() {
            return;
        }
        // The modelled machine's extra time, spent for real so the camera runs on meanwhile.
        let extra = match self.inner.machine {
            Machine::Host => Duration::ZERO,
            Machine::Slowdown(f) => worked.mul_f64((f - 1.0).max(0.0)),
            Machine::Cost(cost) => {
                if worked > cost {
                    self.inner.over_cost.fetch_add(1, Ordering::Relaxed);
                }
                cost.saturating_sub(worked)
            }
        };
        if !extra.is_zero() {
            std::thread::sleep(extra);
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

    /// The fixed cost is the modelled machine's, whatever the host's own work took: a fast
    /// host waits the rest, a host slower than the cost is counted, never hidden.
    #[test]
    fn a_fixed_recognition_cost_does_not_depend_on_the_hosts_speed() {
        let cost = Duration::from_millis(40);
        let c = SimClock::new(true).with_machine(Machine::Cost(cost));
        for host_work in [Duration::ZERO, Duration::from_millis(10)] {
            let started = Instant::now();
            std::thread::sleep(host_work);
            c.worked(started.elapsed());
            assert!(started.elapsed() >= cost, "{:?}", started.elapsed());
        }
        assert_eq!(c.over_cost(), 0);
        c.worked(Duration::from_millis(41));
        assert_eq!(c.over_cost(), 1);
        // In simulated time nothing is waited for.
        let sim = SimClock::new(false).with_machine(Machine::Cost(Duration::from_secs(60)));
        let started = Instant::now();
        sim.worked(Duration::ZERO);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

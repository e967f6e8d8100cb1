//! The daemon's real-time parts: a one-slot mailbox that keeps only the newest camera frame, the
//! capture thread that fills it (re-opening the camera with backoff, noticing a frozen stream),
//! the one-line service status, and the spread of its timings (frame age, relock lateness).
//! The control loop in `daemon` wires them together.

use crate::hal::{CameraError, CameraErrorKind, Clock, FrameSource};
use image::RgbImage;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A stream whose frames do not change (same V4L2 sequence number, or identical pixels) for this
/// long is frozen: a live sensor's noise makes two identical frames practically impossible.
pub const FROZEN_AFTER: Duration = Duration::from_secs(3);
/// Longest wait between two attempts to re-open a failed camera.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First wait before re-opening a failed camera.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest single wait of the capture thread, so a stop request is seen promptly.
const STEP: Duration = Duration::from_millis(20);

/// A frame with the time it was delivered (defined with the camera's trait).
pub use crate::hal::Captured;

/// Holds at most one item: a new one replaces the one not yet taken (which is counted as
/// dropped), so the taker always gets the newest and never works through a backlog.
#[derive(Debug)]
pub struct Mailbox<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Slot<T> {
    item: Option<T>,
    closed: bool,
    /// Items taken so far: numbers them in the order they were put.
    taken: u64,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(Slot {
                item: None,
                closed: false,
                taken: 0,
            }),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
        }
    }
}

impl<T> Mailbox<T> {
    /// Puts `item`, replacing (dropping) one not yet taken.
    pub fn put(&self, item: T) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.item.replace(item).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Takes the item, waiting up to `timeout` for one; `None` on timeout or once closed.
    pub fn take(&self, timeout: Duration) -> Option<T> {
        self.take_numbered(timeout).map(|(_, item)| item)
    }

    /// As [`Mailbox::take`], with the item's number among those taken (0, 1, 2...): with
    /// several takers, the numbers give the order the items were put in, whoever took them.
    pub fn take_numbered(&self, timeout: Duration) -> Option<(u64, T)> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let (mut slot, _) = self
            .ready
            .wait_timeout_while(slot, timeout, |s| s.item.is_none() && !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        let item = slot.item.take()?;
        let n = slot.taken;
        slot.taken += 1;
        Some((n, item))
    }

    /// Wakes every taker for good: the daemon is stopping.
    pub fn close(&self) {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.ready.notify_all();
    }

    /// Whether [`Mailbox::close`] was called (a taker then stops waiting).
    pub fn is_closed(&self) -> bool {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).closed
    }

    /// Items replaced before they were taken.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Notices a frozen stream: the same sequence number, or the same pixels, for [`FROZEN_AFTER`].
#[derive(Debug, Default)]
pub struct FrozenWatch {
    last_sequence: Option<u64>,
    last_pixels: Vec<u8>,
    unchanged_since: Option<Duration>,
}

impl FrozenWatch {
    /// Looks at the frame delivered at `now`; an error once nothing has changed for too long.
    pub fn check(
        &mut self,
        now: Duration,
        sequence: Option<u64>,
        frame: &RgbImage,
    ) -> Result<(), CameraError> {
        let same_sequence = sequence.is_some() && sequence == self.last_sequence;
        let same_pixels = frame.as_raw() == &self.last_pixels[..];
        if !(same_sequence || same_pixels) {
            self.last_sequence = sequence;
            self.last_pixels.clear();
            self.last_pixels.extend_from_slice(frame.as_raw());
            self.unchanged_since = None;
            return Ok(());
        }
        let since = *self.unchanged_since.get_or_insert(now);
        if now.saturating_sub(since) >= FROZEN_AFTER {
            self.unchanged_since = None;
            return Err(CameraError::new(
                CameraErrorKind::Frozen,
                format!(
                    "the stream is frozen: {} for {:.1} s",
                    if same_sequence {
                        "the same frame sequence number"
                    } else {
                        "identical frames"
                    },
                    (now - since).as_secs_f64()
                ),
            ));
        }
        Ok(())
    }

    /// Forgets the stream (after a re-open).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// What the capture thread tells the control loop about the camera.
#[derive(Debug)]
pub enum CameraNews {
    /// A read failed (the capture thread re-opens the camera itself, with backoff).
    Error(CameraError),
    /// Frames come again after an error.
    Recovered,
}

/// The capture thread: reads frames as fast as the camera gives them into `frames` (newest
/// only), re-opens the camera with backoff after errors, until `stop` is set.
pub fn capture<C: FrameSource>(
    camera: &mut C,
    clock: &dyn Clock,
    stop: &AtomicBool,
    frames: &Mailbox<Captured>,
    news: &Sender<CameraNews>,
    delivered: &AtomicU64,
) {
    let mut buf = RgbImage::new(0, 0);
    let mut frozen = FrozenWatch::default();
    let mut failing = false;
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::SeqCst) {
        let read = camera.next_frame(&mut buf).and_then(|()| {
            let now = clock.now();
            frozen.check(now, camera.sequence(), &buf).map(|()| now)
        });
        match read {
            Ok(taken) => {
                if failing {
                    failing = false;
                    backoff = FIRST_BACKOFF;
                    let _ = news.send(CameraNews::Recovered);
                }
                delivered.fetch_add(1, Ordering::Relaxed);
                frames.put(Captured {
                    image: buf.clone(),
                    taken,
                });
            }
            Err(e) if stop.load(Ordering::SeqCst) => {
                tracing::debug!("camera read cut short by the stop: {e}");
            }
            Err(e) if e.kind == CameraErrorKind::BadFrame => {
                let _ = news.send(CameraNews::Error(e));
            }
            Err(e) => {
                failing = true;
                let _ = news.send(CameraNews::Error(e));
                let end = clock.now() + backoff;
                while !stop.load(Ordering::SeqCst) && clock.now() < end {
                    clock.sleep(STEP.min(end.saturating_sub(clock.now())));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                frozen.reset();
                if let Err(e) = camera.reopen() {
                    tracing::debug!("camera re-open failed: {e}");
                }
            }
        }
    }
}

/// How many of the latest samples a [`Spread`] keeps for its percentiles.
pub const SPREAD_WINDOW: usize = 4096;

/// The spread of a timing (how old frames were, how late relocks came): the maximum and count
/// since start, percentiles over the latest [`SPREAD_WINDOW`] samples (bounded memory in a
/// daemon that runs for months).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spread {
    latest: VecDeque<Duration>,
    /// The largest sample since start.
    pub max: Duration,
    /// Samples since start.
    pub count: u64,
}

impl Spread {
    /// Adds a sample.
    pub fn add(&mut self, d: Duration) {
        if self.latest.len() == SPREAD_WINDOW {
            self.latest.pop_front();
        }
        self.latest.push_back(d);
        self.max = self.max.max(d);
        self.count += 1;
    }

    /// The `p`-th percentile (0..=100, nearest rank) of the latest samples; zero with none.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v: Vec<Duration> = self.latest.iter().copied().collect();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v.sort_unstable();
        let rank = (p.clamp(0.0, 100.0) / 100.0 * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// "p50 A ms, p95 B ms, max C ms (N)".
    pub fn describe(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} samples)",
            ms(self.percentile(50.0)),
            ms(self.percentile(95.0)),
            ms(self.max),
            self.count
        )
    }
}

/// What the door is doing, for the service status line (`systemctl status`).
#[derive(Debug, Default)]
pub struct StatusLine {
    last_sent: Option<Duration>,
    window_start: Duration,
    window_frames: u64,
    fps: f64,
    /// The camera's error since it failed, if it is failing.
    pub camera_lost: Option<(Duration, String)>,
    /// The last decision: its time and what it was ("granted alice", "denied: unknown").
    pub last_decision: Option<(Duration, String)>,
    /// An alarm that stays at the front of the line (the audit log cannot be written).
    pub alarm: Option<String>,
    /// NIR mode is on and its camera fails: no face is let in (`crate::access::cues`).
    pub nir_lost: Option<String>,
}

impl StatusLine {
    /// The line at `now`, if one is due (at most one a second); `frames` counts frames recognised
    /// so far.
    pub fn due(&mut self, now: Duration, frames: u64) -> Option<String> {
        let span = now.saturating_sub(self.window_start);
        if span >= Duration::from_secs(1) {
            self.fps = frames.saturating_sub(self.window_frames) as f64 / span.as_secs_f64();
            self.window_start = now;
            self.window_frames = frames;
        }
        if self
            .last_sent
            .is_some_and(|t| now.saturating_sub(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_sent = Some(now);
        Some(self.line(now))
    }

    /// The line now.
    pub fn line(&self, now: Duration) -> String {
        let ago = |t: Duration| format!("{:.0} s ago", now.saturating_sub(t).as_secs_f64());
        let mut s = self
            .alarm
            .as_ref()
            .map(|a| format!("{a}; "))
            .unwrap_or_default();
        if let Some(e) = &self.nir_lost {
            s += &format!("{e}: NO FACE IS LET IN; ");
        }
        s += &match &self.camera_lost {
            Some((t, e)) => format!(
                "CAMERA LOST for {:.0} s: {e}",
                now.saturating_sub(*t).as_secs_f64()
            ),
            None => format!("watching the door, {:.1} fps recognised", self.fps),
        };
        match &self.last_decision {
            Some((t, d)) => s.push_str(&format!("; last decision: {d}, {}", ago(*t))),
            None => s.push_str("; no decision yet"),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailbox_keeps_only_the_newest() {
        let m = Mailbox::default();
        m.put(1);
        m.put(2);
        m.put(3);
        assert_eq!(m.take(Duration::ZERO), Some(3));
        assert_eq!(m.dropped(), 2);
        assert_eq!(m.take(Duration::from_millis(1)), None);
        m.close();
        assert_eq!(m.take(Duration::from_secs(60)), None);
    }

    /// Several workers take frames; the numbers put their answers back in the camera's order.
    #[test]
    fn numbered_takes_follow_the_order_items_were_put_whoever_takes_them() {
        let m = Mailbox::default();
        let got = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    while let Some((n, item)) = m.take_numbered(Duration::from_secs(5)) {
                        got.lock().unwrap().push((n, item));
                    }
                });
            }
            for i in 0..2000u64 {
                m.put(i);
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
            }
            // Let the takers drain the last item before closing.
            while m.slot.lock().unwrap().item.is_some() {
                std::thread::yield_now();
            }
            m.close();
        });
        let mut got = got.into_inner().unwrap();
        got.sort();
        assert!(!got.is_empty());
        let numbers: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            numbers,
            (0..got.len() as u64).collect::<Vec<_>>(),
            "no gap, no repeat"
        );
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "a later number is always a later item"
        );
        assert_eq!(
            got.len() as u64 + m.dropped(),
            2000,
            "every item taken or dropped"
        );
    }

    #[test]
    fn the_spread_gives_nearest_rank_percentiles_over_a_bounded_window() {
        let ms = Duration::from_millis;
        let mut s = Spread::default();
        assert_eq!(s.percentile(50.0), Duration::ZERO);
        for i in 1..=100 {
            s.add(ms(i));
        }
        assert_eq!(s.percentile(50.0), ms(50));
        assert_eq!(s.percentile(95.0), ms(95));
        assert_eq!(s.percentile(100.0), ms(100));
        assert_eq!(s.percentile(0.0), ms(1));
        // Old samples leave the window; the maximum and count are since start.
        for _ in 0..SPREAD_WINDOW {
            s.add(ms(2));
        }
        assert_eq!(s.percentile(99.0), ms(2));
        assert_eq!((s.max, s.count), (ms(100), 100 + SPREAD_WINDOW as u64));
        assert!(s
            .describe()
            .starts_with("p50 2.0 ms, p95 2.0 ms, max 100.0 ms"));
    }

    #[test]
    fn a_frozen_stream_is_noticed_and_a_live_one_is_not() {
        let a = RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
        let mut b = a.clone();
        b.put_pixel(0, 0, image::Rgb([1, 2, 4]));
        let mut w = FrozenWatch::default();
        // A live stream: pixels change even while the scene does not.
        for i in 0..100u64 {
            let f = if i % 2 == 0 { &a } else { &b };
            w.check(Duration::from_millis(100 * i), Some(i), f).unwrap();
        }
        // The driver repeats its sequence number: frozen after FROZEN_AFTER.
        let mut w = FrozenWatch::default();
        let mut err = None;
        for i in 0..100u64 {
            let f = if i % 2 == 0 { &a } else { &b };
            if let Err(e) = w.check(Duration::from_millis(100 * i), Some(7), f) {
                err = Some((i, e));
                break;
            }
        }
        let (i, e) = err.expect("not noticed");
        assert_eq!(e.kind, CameraErrorKind::Frozen);
        assert_eq!(i, 31, "{e}");
        // Identical pixels with an advancing sequence: frozen too.
        let mut w = FrozenWatch::default();
        let frozen = (0..100u64).find(|i| {
            w.check(Duration::from_millis(100 * i), Some(*i), &a)
                .is_err()
        });
        assert_eq!(frozen, Some(31));
    }

    #[test]
    fn the_status_says_what_the_door_does_at_most_once_a_second() {
        let mut s = StatusLine::default();
        assert!(s
            .due(Duration::ZERO, 0)
            .unwrap()
            .contains("no decision yet"));
        assert!(s.due(Duration::from_millis(500), 5).is_none());
        s.last_decision = Some((Duration::from_millis(900), "granted obama".into()));
        let line = s.due(Duration::from_secs(2), 30).unwrap();
        assert!(line.contains("15.0 fps"), "{line}");
        assert!(line.contains("granted obama, 1 s ago"), "{line}");
        s.camera_lost = Some((Duration::from_secs(2), "no frame within 1 s".into()));
        let line = s.due(Duration::from_secs(5), 30).unwrap();
        assert!(line.starts_with("CAMERA LOST for 3 s: no frame"), "{line}");
        s.nir_lost = Some("NIR camera: gone".into());
        let line = s.line(Duration::from_secs(6));
        assert!(
            line.starts_with("NIR camera: gone: NO FACE IS LET IN; CAMERA LOST"),
            "{line}"
        );
    }
}

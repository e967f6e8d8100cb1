//! Wiegand output: a credential's frame clocked out as low pulses on D0 (a 0 bit) or D1 (a 1
//! bit), and the decoder that reads frames back from recorded line edges with their timing (the
//! simulator's and the tests' panel side).

use crate::panel::reader::{CredentialOutput, OutputError, WiegandConfig};
use crate::people::credential::Credential;
use std::time::Duration;

/// The two data lines. Idle is released (high); a pulse pulls one line low.
pub trait WiegandLines {
    /// Pulls D1 (`one`) or D0 low for `width`, then releases it.
    fn pulse(&mut self, one: bool, width: Duration) -> Result<(), OutputError>;
    /// Waits `d` with both lines released.
    fn gap(&mut self, d: Duration);
}

/// Pulse timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Pulse length.
    pub pulse: Duration,
    /// Start of one pulse to the start of the next.
    pub interval: Duration,
}

impl Timing {
    /// From `[output.wiegand]`.
    pub fn of(c: &WiegandConfig) -> Self {
        Self {
            pulse: Duration::from_micros(c.pulse_us.into()),
            interval: Duration::from_micros(c.interval_us.into()),
        }
    }
}

/// A Wiegand reader output on two lines.
pub struct WiegandOutput<L> {
    lines: L,
    timing: Timing,
}

impl<L: WiegandLines> WiegandOutput<L> {
    /// An output on `lines` with `timing`.
    pub fn new(lines: L, timing: Timing) -> Self {
        Self { lines, timing }
    }
}

impl<L: WiegandLines> CredentialOutput for WiegandOutput<L> {
    fn send(&mut self, credential: &Credential) -> Result<String, OutputError> {
        let frame = credential.wiegand_frame()?;
        for (i, bit) in frame.iter().enumerate() {
            self.lines.pulse(*bit, self.timing.pulse)?;
            if i + 1 < frame.len() {
                self.lines
                    .gap(self.timing.interval.saturating_sub(self.timing.pulse));
            }
        }
        // The panel ends a frame after a quiet line: keep the next one apart.
        self.lines.gap(FRAME_GAP);
        Ok(format!("{credential} ({} bits on Wiegand)", frame.len()))
    }
}

/// A quiet line this long ends a frame (panels wait 20 to 50 ms).
pub const FRAME_GAP: Duration = Duration::from_millis(25);

/// One recorded edge: when, which line (`true` for D1), and whether it went low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// When.
    pub t: Duration,
    /// D1 (`true`) or D0.
    pub d1: bool,
    /// Pulled low (`true`) or released.
    pub low: bool,
}

/// A frame read back from edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When its first pulse began.
    pub start: Duration,
    /// Its bits, first received first.
    pub bits: Vec<bool>,
}

/// Decodes edges the way a panel does: each pulse is a bit, a gap of [`FRAME_GAP`] or more ends
/// a frame. Refuses pulses outside `timing` (width and interval within 20 % or 20 us) and both
/// lines low at once, naming when.
pub fn decode(edges: &[Edge], timing: Timing) -> Result<Vec<Frame>, String> {
    let tol = |d: Duration| (d / 5).max(Duration::from_micros(20));
    let mut frames: Vec<Frame> = Vec::new();
    let mut low: [Option<Duration>; 2] = [None, None];
    let mut last_start: Option<Duration> = None;
    for e in edges {
        let line = usize::from(e.d1);
        if e.low {
            if low[0].is_some() || low[1].is_some() {
                return Err(format!("{:?}: a line pulled low while one already is", e.t));
            }
            low[line] = Some(e.t);
            match last_start {
                Some(s) if e.t - s < FRAME_GAP => {
                    let gap = e.t - s;
                    if gap.abs_diff(timing.interval) > tol(timing.interval) {
                        return Err(format!(
                            "{:?}: pulses {gap:?} apart, expected {:?}",
                            e.t, timing.interval
                        ));
                    }
                    if let Some(f) = frames.last_mut() {
                        f.bits.push(e.d1);
                    }
                }
                _ => frames.push(Frame {
                    start: e.t,
                    bits: vec![e.d1],
                }),
            }
            last_start = Some(e.t);
        } else {
            let Some(s) = low[line].take() else {
                return Err(format!("{:?}: a line released that was not low", e.t));
            };
            let w = e.t - s;
            if w.abs_diff(timing.pulse) > tol(timing.pulse) {
                return Err(format!(
                    "{:?}: a pulse {w:?} long, expected {:?}",
                    s, timing.pulse
                ));
            }
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines that record edges on their own timeline.
    #[derive(Default)]
    struct Recorder {
        t: Duration,
        edges: Vec<Edge>,
    }

    impl WiegandLines for Recorder {
        fn pulse(&mut self, one: bool, width: Duration) -> Result<(), OutputError> {
            self.edges.push(Edge {
                t: self.t,
                d1: one,
                low: true,
            });
            self.t += width;
            self.edges.push(Edge {
                t: self.t,
                d1: one,
                low: false,
            });
            Ok(())
        }
        fn gap(&mut self, d: Duration) {
            self.t += d;
        }
    }

    const STD: Timing = Timing {
        pulse: Duration::from_micros(50),
        interval: Duration::from_millis(2),
    };

    #[test]
    fn frames_sent_are_decoded_from_their_edges() {
        let a = Credential::Wiegand26 {
            facility: 18,
            card: 36363,
        };
        let b = Credential::Wiegand34 {
            facility: 700,
            card: 9,
        };
        let mut out = WiegandOutput::new(Recorder::default(), STD);
        assert!(out.send(&a).unwrap().contains("26 bits"));
        out.send(&b).unwrap();
        let rec = &out.lines;
        assert_eq!(rec.edges.len(), 2 * (26 + 34));
        let frames = decode(&rec.edges, STD).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(Credential::from_wiegand(&frames[0].bits), Ok(a));
        assert_eq!(Credential::from_wiegand(&frames[1].bits), Ok(b));
        // 26 bits at 2 ms: the last pulse ends 50.05 ms after the first began.
        assert_eq!(rec.edges[51].t, Duration::from_micros(25 * 2000 + 50));
    }

    #[test]
    fn wrong_timing_and_raw_credentials_are_refused() {
        let c = Credential::Wiegand26 {
            facility: 1,
            card: 1,
        };
        let slow = Timing {
            pulse: Duration::from_micros(100),
            interval: Duration::from_millis(2),
        };
        let mut out = WiegandOutput::new(Recorder::default(), slow);
        out.send(&c).unwrap();
        let e = decode(&out.lines.edges, STD).unwrap_err();
        assert!(e.contains("pulse"), "{e}");
        let mut out = WiegandOutput::new(Recorder::default(), STD);
        assert!(out.send(&Credential::Raw { bits: 8, value: 1 }).is_err());
        assert!(out.lines.edges.is_empty(), "nothing sent");
    }
}

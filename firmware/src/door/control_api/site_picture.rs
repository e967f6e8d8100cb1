//! `site picture SEQ`: the one decision picture the site link may fetch, for Home Assistant's
//! "latest unknown face" (`[mqtt] unknown_face_picture`, off by default). The door's loop
//! judges each request ([`SitePictures::judge`]); the client's thread then reads the file, and
//! only a picture kept under the name `unknown` ([`crate::records::faces::FaceStore::read_unknown`]).
//!
//! Shared are only the pictures of denials of a stranger: an audit line `deny` naming no one
//! (`identity` "unknown") for the reason `unknown` (nobody enrolled is near enough), with its
//! picture kept. Never a grant's, never a named person's, and not the denials whose face may
//! well be an enrolled person's: `ambiguous` and `unsteady` (near someone enrolled), a spoof
//! (a photo of someone), a poor image or a second factor refused. The door remembers the last
//! [`REMEMBERED`] such lines of this run (a restarted door shares none from before), and serves
//! at most [`PER_MINUTE`] requests a minute, whatever their outcome.

use crate::records::audit::{Event, EventKind};
use std::collections::VecDeque;
use std::time::Duration;

/// `site picture` requests served a minute at most (the link needs one per stranger, and a
/// retry or two while the picture is being written).
pub const PER_MINUTE: u32 = 6;
/// How many shareable pictures the door remembers (the link asks for the newest only).
pub const REMEMBERED: usize = 16;

/// Why the door refuses a `site picture` (the word after `ERR refused: `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `[mqtt] unknown_face_picture` (or `[audit] faces`) is off.
    Off,
    /// Not the picture of a denial of a stranger of this run (or not kept).
    NotShared,
    /// More than [`PER_MINUTE`] requests this minute.
    Rate,
}

impl Refused {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::NotShared => "not_shared",
            Self::Rate => "rate",
        }
    }
}

/// Whether the picture of this audit line may go to the site: a denial naming no one, for the
/// reason that nobody enrolled is near enough, with its picture kept.
pub fn shareable(event: &Event) -> bool {
    stranger_denial(
        event.event == EventKind::Deny,
        event.identity.as_deref(),
        event.reason.as_deref(),
        event.picture,
    )
}

/// The rule of [`shareable`] on an audit line's fields: the door judges its own events with it,
/// the site link the JSON lines it reads (which it asks the door for).
pub fn stranger_denial(
    deny: bool,
    identity: Option<&str>,
    reason: Option<&str>,
    picture: Option<bool>,
) -> bool {
    deny && picture == Some(true)
        && identity == Some(crate::records::faces::UNKNOWN)
        && reason == Some(crate::access::decision::DenyReason::Unknown.as_str())
}

/// The door's side: whether sharing is on, the shareable lines of this run, this minute's count.
#[derive(Debug, Default)]
pub struct SitePictures {
    on: bool,
    seqs: VecDeque<u64>,
    window: Option<Duration>,
    used: u32,
}

impl SitePictures {
    /// Sharing on (`[mqtt] unknown_face_picture` and `[audit] faces`) or off.
    pub fn new(on: bool) -> Self {
        Self {
            on,
            ..Self::default()
        }
    }

    /// Whether sharing is on.
    pub fn on(&self) -> bool {
        self.on
    }

    /// The picture of audit line `seq` (a [`shareable`] one) was handed to the writer.
    pub fn note(&mut self, seq: u64) {
        if !self.on {
            return;
        }
        if self.seqs.len() == REMEMBERED {
            self.seqs.pop_front();
        }
        self.seqs.push_back(seq);
    }

    /// Judges a `site picture seq` at `now` (monotonic): `Ok` lets the client's thread serve
    /// the file. Every request while sharing is on counts towards [`PER_MINUTE`].
    pub fn judge(&mut self, seq: u64, now: Duration) -> Result<(), Refused> {
        if !self.on {
            return Err(Refused::Off);
        }
        match self.window {
            Some(start) if now.saturating_sub(start) < Duration::from_secs(60) => {}
            _ => {
                self.window = Some(now);
                self.used = 0;
            }
        }
        if self.used >= PER_MINUTE {
            return Err(Refused::Rate);
        }
        self.used += 1;
        if self.seqs.contains(&seq) {
            Ok(())
        } else {
            Err(Refused::NotShared)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn event(kind: EventKind, identity: &str, reason: Option<&str>) -> Event {
        let mut e = Event::new(kind, SystemTime::now(), Duration::ZERO);
        e.identity = Some(identity.to_owned());
        e.reason = reason.map(str::to_owned);
        e.picture = Some(true);
        e
    }

    #[test]
    fn only_a_strangers_denial_with_its_picture_is_shareable() {
        let stranger = event(EventKind::Deny, "unknown", Some("unknown"));
        assert!(shareable(&stranger));
        let mut unpictured = stranger.clone();
        unpictured.picture = None;
        assert!(!shareable(&unpictured));
        // A grant, a known person refused (lockdown, schedule), a duress.
        assert!(!shareable(&event(EventKind::Grant, "obama", None)));
        assert!(!shareable(&event(EventKind::Grant, "unknown", None)));
        assert!(!shareable(&event(
            EventKind::Deny,
            "obama",
            Some("unknown")
        )));
        assert!(!shareable(&event(EventKind::Duress, "obama", None)));
        // Denials whose face may be an enrolled person's.
        for reason in [
            "ambiguous",
            "unsteady",
            "spoof_suspected",
            "too_small",
            "poor_quality:blurry",
            "wrong PIN",
        ] {
            assert!(
                !shareable(&event(EventKind::Deny, "unknown", Some(reason))),
                "{reason}"
            );
        }
        assert!(!shareable(&event(EventKind::Deny, "unknown", None)));
    }

    #[test]
    fn off_refuses_everything_and_remembers_nothing() {
        let mut s = SitePictures::new(false);
        s.note(7);
        for _ in 0..20 {
            assert_eq!(s.judge(7, Duration::ZERO), Err(Refused::Off));
        }
    }

    #[test]
    fn on_serves_only_the_noted_seqs() {
        let mut s = SitePictures::new(true);
        s.note(7);
        assert_eq!(s.judge(7, Duration::ZERO), Ok(()));
        assert_eq!(s.judge(8, Duration::ZERO), Err(Refused::NotShared));
        assert_eq!(s.judge(6, Duration::ZERO), Err(Refused::NotShared));
    }

    #[test]
    fn only_the_last_few_are_remembered() {
        let mut s = SitePictures::new(true);
        for seq in 1..=(REMEMBERED as u64 + 1) {
            s.note(seq);
        }
        let minute = Duration::from_secs(60);
        assert_eq!(s.judge(1, Duration::ZERO), Err(Refused::NotShared));
        assert_eq!(s.judge(2, Duration::ZERO), Ok(()));
        assert_eq!(s.judge(REMEMBERED as u64 + 1, minute), Ok(()));
    }

    #[test]
    fn at_most_a_few_requests_a_minute_whatever_they_ask() {
        let mut s = SitePictures::new(true);
        s.note(7);
        let t0 = Duration::from_secs(100);
        for i in 0..PER_MINUTE {
            let asked = if i % 2 == 0 { 7 } else { 99 };
            assert_ne!(s.judge(asked, t0), Err(Refused::Rate), "{i}");
        }
        assert_eq!(s.judge(7, t0 + Duration::from_secs(59)), Err(Refused::Rate));
        assert_eq!(
            s.judge(99, t0 + Duration::from_secs(59)),
            Err(Refused::Rate)
        );
        // A new minute.
        assert_eq!(s.judge(7, t0 + Duration::from_secs(60)), Ok(()));
    }
}

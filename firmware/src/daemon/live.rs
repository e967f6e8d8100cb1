//! The loop's side of the live view and `snapshot`: a reference to the newest recognised frame,
//! the viewers' mailboxes, and each face of a frame as the door judged it. With nobody watching
//! a frame costs one empty-list check; with viewers, at most 4 times a second, a list of a few
//! faces and a reference to the frame go into each mailbox (the viewers' threads encode).

use super::*;
use crate::access::acceptance::Refusal as Judged;
use crate::access::decision::Seen;
use crate::door::control_api::live::{
    LiveFace, LiveShot, Picture, Verdict, ViewerSlot, FRAME_INTERVAL, MAX_VIEWERS,
};
use crate::vision::detect::BBox;

/// The live view's state in the loop.
#[derive(Default)]
pub(super) struct LiveState {
    /// The newest frame recognition finished (what `snapshot` sends).
    pub(super) newest: Option<Arc<RgbImage>>,
    viewers: Vec<Arc<ViewerSlot>>,
    last_offer: Option<Duration>,
    seq: u64,
    /// Frames the viewers' threads encoded (for `status`).
    encoded: Arc<AtomicU64>,
}

impl LiveState {
    /// Whether a live frame is due at `now`: somebody watches and the last one is at least
    /// [`FRAME_INTERVAL`] old.
    fn due(&self, now: Duration) -> bool {
        !self.viewers.is_empty()
            && self
                .last_offer
                .is_none_or(|t| now.saturating_sub(t) >= FRAME_INTERVAL)
    }

    /// Forgets the viewers whose client went (only the loop holds their slot).
    fn prune(&mut self) {
        self.viewers.retain(|v| Arc::strong_count(v) > 1);
    }

    /// A new viewer's slot, or `None` when [`MAX_VIEWERS`] watch already.
    pub(super) fn add_viewer(&mut self) -> Option<Arc<ViewerSlot>> {
        self.prune();
        if self.viewers.len() >= MAX_VIEWERS {
            return None;
        }
        let slot = Arc::new(ViewerSlot::new(Arc::clone(&self.encoded)));
        self.viewers.push(Arc::clone(&slot));
        Some(slot)
    }

    /// The newest frame, for `snapshot`.
    pub(super) fn snapshot(&self) -> Option<Picture> {
        self.newest.as_ref().map(|i| Picture(Arc::clone(i)))
    }

    /// `"live"` of the status: viewers now, frames encoded since start.
    pub(super) fn status(&self) -> serde_json::Value {
        let viewers = self
            .viewers
            .iter()
            .filter(|v| Arc::strong_count(v) > 1)
            .count();
        serde_json::json!({
            "viewers": viewers,
            "frames_encoded": self.encoded.load(Ordering::Relaxed),
        })
    }

    /// Hands the newest frame and `faces` to every viewer (replacing a frame one has not taken).
    fn offer(&mut self, now: Duration, at_ms: u64, faces: Vec<LiveFace>) {
        self.prune();
        let Some(image) = self.newest.as_ref() else {
            return;
        };
        if self.viewers.is_empty() {
            return;
        }
        self.seq += 1;
        self.last_offer = Some(now);
        let shot = LiveShot {
            seq: self.seq,
            at_ms,
            image: Arc::clone(image),
            faces,
            encoded: Arc::default(),
        };
        for v in &self.viewers {
            v.shots.put(shot.clone());
        }
    }

    /// Gives back the newest frame's buffer for the next frame, unless a client still holds it
    /// (the one-thread loop reuses its buffer frame to frame).
    pub(super) fn reclaim(&mut self) -> Option<RgbImage> {
        Arc::try_unwrap(self.newest.take()?).ok()
    }
}

impl Drop for LiveState {
    /// The viewers' threads stop with the loop.
    fn drop(&mut self) {
        for v in &self.viewers {
            v.shots.close();
        }
    }
}

/// A face shown but not judged.
fn detected(bbox: BBox) -> LiveFace {
    LiveFace {
        bbox,
        verdict: Verdict::Detected,
        name: None,
        distance: None,
    }
}

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// Offers the viewers the newest frame if one is due: the judged face (`judged`, with its
    /// nearest person already matched) or else the largest face found (`largest`, not judged:
    /// recognition paused), and the other faces found (`others`).
    pub(super) fn show_live(
        &mut self,
        judged: Option<&Seen<'_>>,
        largest: Option<BBox>,
        others: &[BBox],
    ) {
        let now = self.clock.now();
        if !self.live.due(now) {
            return;
        }
        let mut faces = Vec::with_capacity(1 + others.len());
        match judged {
            Some(seen) => faces.push(self.live_face(seen)),
            None => faces.extend(largest.map(detected)),
        }
        faces.extend(others.iter().copied().map(detected));
        let at_ms = self
            .clock
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.live.offer(now, at_ms, faces);
    }

    /// The verdict of the door's acceptance rule on this one face at this frame (before the
    /// agreement of several frames), as the live view words it.
    fn live_face(&self, seen: &Seen<'_>) -> LiveFace {
        let rule = self.decider.params().rule();
        let id = |person: usize| {
            self.gallery
                .gallery()
                .people
                .get(person)
                .map(|p| p.id.clone())
        };
        let (verdict, name) = match rule.judge(&seen.facts()) {
            Ok(n) => (Verdict::LetIn, id(n.person)),
            Err(Judged::TooSmall) => (Verdict::TooSmall, None),
            Err(Judged::PoorQuality(q)) => (
                match q {
                    quality::QualityIssue::Blurry => Verdict::Blurry,
                    quality::QualityIssue::TooDark => Verdict::TooDark,
                    quality::QualityIssue::TooBright => Verdict::TooBright,
                    quality::QualityIssue::Turned => Verdict::Turned,
                },
                None,
            ),
            // Two people about as near: nobody is let in, as for a stranger.
            Err(Judged::Unknown | Judged::Ambiguous) => (Verdict::Unknown, None),
            Err(Judged::SpoofSuspected) => {
                (Verdict::NotLive, seen.nearest.and_then(|n| id(n.person)))
            }
        };
        LiveFace {
            bbox: seen.bbox,
            verdict,
            name,
            distance: seen.nearest.map(|n| n.distance),
        }
    }
}

//! The daemon's records: every audit line the loop and the gate write goes through [`Records`],
//! which also hands it to the control API's followers and keeps the latest decisions.

use super::*;
use crate::door::control_api::site_picture::{self, SitePictures};
use crate::records::faces;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// At start: what the log says about the previous run (a crash, a repaired tail).
    pub(super) fn previous_run(&mut self) {
        let Some(prev) = self.records.sink.previous_run() else {
            return;
        };
        if prev.repaired_bytes > 0 {
            let mut ev = self.event(EventKind::LogRepaired);
            ev.reason = Some(format!(
                "cut off a torn last line of {} bytes (power loss or a crash during a write)",
                prev.repaired_bytes
            ));
            self.record(&ev);
        }
        if let Some(last) = prev.last_event.filter(|k| *k != EventKind::Stop) {
            let mut ev = self.event(EventKind::UncleanShutdown);
            ev.reason = Some(format!(
                "the previous run ended without `stop`, its last event {} at {} (crash, kill, watchdog or power loss)",
                serde_json::to_value(last)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                prev.last_time.as_deref().unwrap_or("?")
            ));
            tracing::warn!("{}", ev.reason.as_deref().unwrap_or_default());
            self.record(&ev);
        }
    }
}

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// `"picture": true` for a decision line about to be recorded, when its face's picture
    /// will be kept: pictures are on, a face was judged just now, and this minute's budget
    /// allows.
    pub(super) fn picture_wanted(&mut self) -> Option<bool> {
        let now = self.clock.now();
        let p = &mut self.pictures;
        // A face older than this is another's (a run that ended without a decision).
        p.face.take_if(|f| now.saturating_sub(f.1) > FACE_FRESH);
        (p.on && p.writer.is_some() && p.face.is_some() && p.budget.admit(now)).then_some(true)
    }

    /// After a decision's line is recorded (and the door opened): hands its face's frame to the
    /// picture writer, which cuts and encodes the crop off the loop. The face is used once,
    /// whatever became of it.
    pub(super) fn keep_picture(&mut self) {
        let face = self.pictures.face.take();
        let Some((seq, id, shareable)) = self.records.pictured.take() else {
            return;
        };
        if let (Some(w), Some(((frame, landmarks), _))) = (&self.pictures.writer, face) {
            w.keep(seq, &id, frame, landmarks);
            if shareable {
                self.pictures.site.note(seq);
            }
        }
    }
}

/// `[audit] faces`: the decision pictures' writer (also started, to sweep, when pictures are off
/// but some are left from before), this minute's budget, and the newest judged face.
pub(super) struct Pictures {
    pub(super) on: bool,
    pub(super) writer: Option<faces::PictureWriter>,
    pub(super) budget: faces::PictureBudget,
    /// The newest judged face and when its frame was taken.
    pub(super) face: Option<(JudgedFace, Duration)>,
    /// What the site link may fetch (`site picture`, `[mqtt] unknown_face_picture`).
    pub(super) site: SitePictures,
}

/// A judged face for its decision picture: the frame and the face's landmarks in it.
pub(super) type JudgedFace = (std::sync::Arc<RgbImage>, [[f32; 2]; 5]);

/// How old the newest judged face may be to stand for the face decided on.
const FACE_FRESH: Duration = Duration::from_secs(2);

impl Pictures {
    pub(super) fn start(audit: &crate::config::AuditConfig, share_unknown: bool) -> Self {
        let store = faces::FaceStore::for_audit(&audit.path);
        let writer = if audit.faces || store.dir().is_dir() {
            faces::PictureWriter::start(store, audit.faces_retention())
                .inspect_err(|e| tracing::error!("no decision pictures: {e}"))
                .ok()
        } else {
            None
        };
        Self {
            on: audit.faces,
            writer,
            budget: Default::default(),
            face: None,
            site: SitePictures::new(audit.faces && share_unknown),
        }
    }

    /// The newest recognised frame's face: kept for the run's decision (a run can end on a
    /// frame without a face).
    pub(super) fn seen(&mut self, face: Option<JudgedFace>, taken: Duration) {
        if let Some(f) = face {
            self.face = Some((f, taken));
        }
    }
}

/// The audit trail as the loop and the gate write it. A failure goes to the journal, and one
/// attempt is made to leave an `audit_failed` line (it may work when only that event failed,
/// e.g. a transient I/O error); with `on_failure = "grant_and_alarm"` it raises an alarm.
pub(super) struct Records<'a> {
    pub(super) sink: &'a mut dyn AuditSink,
    pub(super) clock: &'a dyn Clock,
    pub(super) alarm_on_failure: bool,
    /// An alarm raised and not yet shown (the loop puts it in the status).
    pub(super) alarm: Option<String>,
    /// Control API clients following the events (`events`); one that falls behind is dropped.
    pub(super) readers: Vec<SyncSender<String>>,
    /// The latest decisions (grants, denials), newest last, for `status`.
    pub(super) recent: VecDeque<Event>,
    /// The seq and identity of the last line recorded with `"picture": true` (its picture not
    /// yet handed to the writer), and whether the site link may have it.
    pub(super) pictured: Option<(u64, String, bool)>,
}

/// Decisions kept for the control API's `status`.
pub(super) const RECENT_DECISIONS: usize = 10;

impl Records<'_> {
    /// Hands a recorded event to the control API's followers and the recent decisions.
    fn share(&mut self, event: &Event) {
        let decision = matches!(event.event, EventKind::Grant | EventKind::Deny);
        if !decision && self.readers.is_empty() {
            return;
        }
        // As the log has it: long texts cut, control characters escaped.
        let bounded = event.bounded();
        let event: &Event = &bounded;
        if decision {
            if self.recent.len() == RECENT_DECISIONS {
                self.recent.pop_front();
            }
            self.recent.push_back(event.clone());
        }
        if self.readers.is_empty() {
            return;
        }
        let Ok(line) = serde_json::to_string(event) else {
            return;
        };
        // Never waits: a reader whose backlog is full is dropped.
        self.readers.retain(|r| r.try_send(line.clone()).is_ok());
    }
}

impl Recorder for Records<'_> {
    fn record(&mut self, event: &Event) -> bool {
        let Err(e) = self.sink.record(event) else {
            if event.picture == Some(true) {
                let id = event.identity.as_deref().unwrap_or(faces::UNKNOWN);
                let shareable = site_picture::shareable(event);
                self.pictured = self
                    .sink
                    .last_seq()
                    .map(|seq| (seq, id.to_owned(), shareable));
            }
            self.share(event);
            return true;
        };
        tracing::error!("audit event {:?} not recorded: {e}", event.event);
        if self.alarm_on_failure {
            self.alarm = Some(format!("ALARM: the audit log cannot be written: {e}"));
        }
        let mut failed = Event::new(EventKind::AuditFailed, self.clock.wall(), self.clock.now());
        failed.reason = Some(format!("{:?} event not recorded: {e}", event.event));
        if let Err(e) = self.sink.record(&failed) {
            tracing::debug!("audit_failed not recorded either: {e}");
        }
        false
    }
}

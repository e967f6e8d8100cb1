//! The daemon's records: every audit line the loop and the gate write goes through [`Records`],
//! which also hands it to the control API's followers and keeps the latest decisions.

use super::*;

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

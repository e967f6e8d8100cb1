//! The local control API's requests, carried out by the loop: status, events, lockdown, unlock
//! (through the gate) and reload.

use super::*;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// What the local control API asked (at most a few requests a turn: the door never waits).
    pub(super) fn serve_api(&mut self) -> Result<(), DaemonError> {
        for _ in 0..control_api::PER_TICK {
            let Some(req) = self.api.as_ref().and_then(|rx| rx.try_recv().ok()) else {
                return Ok(());
            };
            let answer = self.answer(req.command, req.peer)?;
            // The client may have gone meanwhile: nothing to do then.
            let _ = req.reply.send(answer);
        }
        Ok(())
    }

    /// Carries out one control API request. Unlocks and lockdowns go through the gate and are
    /// recorded with who asked and from which process.
    pub(super) fn answer(&mut self, command: Command, peer: Peer) -> Result<Answer, DaemonError> {
        let at = self.at();
        Ok(match command {
            Command::Help => Answer::Ok(control_api::HELP.into()),
            Command::Status => Answer::Ok(self.status_json(at.now)),
            Command::Events => {
                let (tx, rx) = mpsc::sync_channel(control_api::EVENT_BACKLOG);
                self.records.readers.push(tx);
                Answer::Events(rx)
            }
            Command::Reload { by } => {
                tracing::info!(%by, via = %peer.describe(), "reload requested");
                self.control.request_reload();
                Answer::Ok("reload requested".into())
            }
            Command::Lockdown { on, by } => {
                let mut ev = self.event(if on {
                    EventKind::Lockdown
                } else {
                    EventKind::LockdownCleared
                });
                ev.identity = Some(by);
                ev.reason = Some(peer.describe());
                let recorded = self.record(&ev);
                // A lockdown always holds (it fails towards locked); lifting one is a loosening
                // and, under on_failure = "deny", needs its record.
                if !on && !recorded && self.config.audit.on_failure == AuditFailure::Deny {
                    return Ok(Answer::Err(format!(
                        "lockdown not lifted: {}",
                        Refusal::NotRecorded.as_str()
                    )));
                }
                self.control.set_lockdown(on);
                self.sync_lockdown(at)?;
                Answer::Ok(format!("lockdown {}", if on { "on" } else { "off" }))
            }
            Command::Unlock { by } => {
                let via = peer.describe();
                match self.open(Request::Remote { by, via }, at)? {
                    Outcome::Opened => Answer::Ok("opened".into()),
                    Outcome::Refused(r) => Answer::Err(format!("refused: {}", r.as_str())),
                    other => Answer::Err(format!("{other:?}")),
                }
            }
        })
    }

    /// The control API's `status`: the gate's state, the status line, camera health, alarms
    /// and the latest decisions, as one JSON object.
    pub(super) fn status_json(&self, now: Duration) -> String {
        let status = serde_json::json!({
            "door": self.gate.state(),
            "status": self.status.line(now),
            "camera_ok": self.status.camera_lost.is_none(),
            "alarm": self.status.alarm,
            "people": self.gallery.gallery().people.len(),
            "frames": self.summary.frames,
            "recent": self.records.recent,
        });
        status.to_string()
    }
}

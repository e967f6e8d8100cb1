//! The local control API's requests, carried out by the loop: status, events, lockdown, unlock
//! (through the gate) and reload.

use super::*;
use crate::door::control_api::people::PeopleChange;
use crate::site::trust::{Accepted, Refused, Startup, REFUSALS_PER_MINUTE};

/// SEQs as `1,2,3`.
fn seq_list(seqs: &[u64]) -> String {
    seqs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

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
            Command::View => match self.live.add_viewer() {
                Some(slot) => {
                    tracing::info!(via = %peer.describe(), "live view opened");
                    Answer::View(slot)
                }
                None => Answer::Err(format!("busy: {} viewers", control_api::live::MAX_VIEWERS)),
            },
            Command::Snapshot => match self.live.snapshot() {
                Some(picture) => Answer::Snapshot(picture),
                None => Answer::Err("no frame yet".into()),
            },
            Command::OperatorRefused { n } => {
                self.operator_refused(n, peer, at.now);
                Answer::Err("not allowed: wrong operator key".into())
            }
            Command::Reload { by } => {
                tracing::info!(%by, via = %peer.describe(), "reload requested");
                self.control.request_reload();
                Answer::Ok("reload requested".into())
            }
            Command::Lockdown { on, by } => match self.lockdown(on, by, peer.describe(), at)? {
                Ok(state) => Answer::Ok(format!("lockdown {state}")),
                Err(e) => Answer::Err(e),
            },
            Command::Unlock { by } => {
                let via = peer.describe();
                match self.open(Request::Remote { by, via }, at)? {
                    Outcome::Opened => Answer::Ok("opened".into()),
                    Outcome::Refused(r) => Answer::Err(format!("refused: {}", r.as_str())),
                    other => Answer::Err(format!("{other:?}")),
                }
            }
            Command::Checked { gallery, result } => self.site_checked(gallery, result, peer, at)?,
            Command::SiteRefused {
                gallery,
                why,
                count,
            } => {
                let what = if gallery { "gallery" } else { "command" };
                let text =
                    format!("{count} site {what} message(s) refused by the site link: {why}");
                self.site_refusal(gallery, text, at.now);
                Answer::Ok("recorded".into())
            }
            Command::SiteStartup(startup) => {
                let (by, why) = match startup {
                    Startup::Normal => return Ok(Answer::Ok("nothing to do".into())),
                    Startup::Lockdown { by } => {
                        tracing::warn!(%by, "lockdown still in force from before the restart");
                        (by, "in force from before the restart".to_owned())
                    }
                    Startup::Unreadable { problem } => {
                        tracing::error!("site state unreadable ({problem}): lockdown");
                        let why = format!("the site state cannot be read ({problem}): lockdown until a signed clear or `facegate door lockdown off`");
                        ("door".to_owned(), why)
                    }
                };
                let mut ev = self.event(EventKind::Lockdown);
                ev.identity = Some(by);
                ev.reason = Some(why);
                self.record(&ev);
                self.control.set_lockdown(true);
                self.sync_lockdown(at)?;
                Answer::Ok("lockdown on".into())
            }
            Command::SiteWasReset { by, before } => {
                let mut ev = self.event(EventKind::SiteReset);
                ev.identity = Some(by);
                ev.reason = Some(format!(
                    "site versions reset to the door's clock (were gallery {}, command {}, lockdown {}); {}",
                    before.gallery_version,
                    before.command_version,
                    before.lockdown_version,
                    peer.describe()
                ));
                self.record(&ev);
                Answer::Ok("site versions reset".into())
            }
            Command::SitePictureSent { seq, bytes } => {
                let mut ev = self.event(EventKind::PictureShared);
                ev.identity = Some(crate::records::faces::UNKNOWN.to_owned());
                ev.reason = Some(format!(
                    "the picture of line {seq} ({bytes} bytes of PNG) to the site link; {}",
                    peer.describe()
                ));
                self.record(&ev);
                Answer::Ok("recorded".into())
            }
            Command::SitePicture(seq) => match self.pictures.site.judge(seq, at.now) {
                Ok(()) => Answer::SitePicture(seq),
                Err(why) => {
                    tracing::debug!(seq, via = %peer.describe(), "site picture refused: {}", why.as_str());
                    Answer::Err(format!("refused: {}", why.as_str()))
                }
            },
            // The server judges these before they reach the loop.
            Command::SiteCommand(_)
            | Command::SiteGallery(_)
            | Command::SiteReset { .. }
            | Command::Operator(_) => Answer::Err("not judged".into()),
            Command::PeopleChanged { change, by } => self.people_changed(change, by, peer),
            // The server serves these on the client's thread.
            Command::Picture(_)
            | Command::PicturesUnknown
            | Command::PicturesDismiss { .. }
            | Command::PeopleAdd { .. }
            | Command::PeopleRemove { .. }
            | Command::PeopleRename { .. }
            | Command::PeoplePolicy { .. }
            | Command::PeopleCredential { .. } => Answer::Err("not served".into()),
        })
    }

    /// A gallery change the control API made (on its client's thread, under the gallery's
    /// lock): the gallery reloaded now, and the change audited with who asked.
    fn people_changed(&mut self, change: PeopleChange, by: String, peer: Peer) -> Answer {
        let via = peer.describe();
        let (mut ev, answer) = match &change {
            PeopleChange::Added {
                id,
                name,
                faces,
                new,
                pictures,
                forced,
            } => {
                let mut ev = self.event(if *new {
                    EventKind::PersonAdded
                } else {
                    EventKind::FacesAdded
                });
                ev.identity = Some(id.clone());
                ev.name = Some(name.clone());
                let mut why = format!("by {by}; {faces} face(s)");
                if !pictures.is_empty() {
                    why.push_str(&format!(" from pictures {}", seq_list(pictures)));
                }
                if let Some(f) = forced {
                    why.push_str(&format!("; forced although it {f}"));
                }
                ev.reason = Some(why);
                (ev, format!("added {id}"))
            }
            PeopleChange::Removed { id, name, pictures } => {
                let mut ev = self.event(EventKind::PersonRemoved);
                ev.identity = Some(id.clone());
                ev.name = Some(name.clone());
                ev.reason = Some(format!(
                    "by {by}; with their face crops and {pictures} decision picture(s)"
                ));
                (ev, format!("removed {id}"))
            }
            PeopleChange::Renamed { id, from, to } => {
                let mut ev = self.event(EventKind::PersonRenamed);
                ev.identity = Some(id.clone());
                ev.name = Some(to.clone());
                ev.reason = Some(format!("by {by}; was {from:?}"));
                (ev, format!("renamed {id}"))
            }
            PeopleChange::Policy { id, name, policy } => {
                let mut ev = self.event(EventKind::PolicyChanged);
                ev.identity = Some(id.clone());
                ev.name = Some(name.clone());
                ev.reason = Some(format!("by {by}; {}", policy.summary()));
                (ev, format!("policy {id}"))
            }
            PeopleChange::Credential {
                id,
                name,
                credential,
            } => {
                let mut ev = self.event(EventKind::CredentialChanged);
                ev.identity = Some(id.clone());
                ev.name = Some(name.clone());
                // The format only: a 26-bit card's number is all it takes to clone the card,
                // and viewers of the console read this log.
                ev.reason = Some(match credential {
                    Some(c) => format!("by {by}; card set ({})", c.format().as_str()),
                    None => format!("by {by}; card cleared"),
                });
                (ev, format!("credential {id}"))
            }
            PeopleChange::Dismissed { seqs, deleted } => {
                let mut ev = self.event(EventKind::PicturesDismissed);
                ev.reason = Some(format!(
                    "by {by}; {deleted} picture(s) of unknown faces deleted (asked: {})",
                    seq_list(seqs)
                ));
                (ev, format!("dismissed {deleted}"))
            }
        };
        if let Some(r) = ev.reason.as_mut() {
            r.push_str(&format!("; {via}"));
        }
        tracing::info!(%by, %via, "{}", answer);
        self.record(&ev);
        if !matches!(change, PeopleChange::Dismissed { .. }) {
            self.poll_gallery(true);
        }
        Answer::Ok(answer)
    }

    /// A site message the door judged (on the API's thread): acted on through the gate, or
    /// its refusal recorded within the refusal budget.
    fn site_checked(
        &mut self,
        gallery: bool,
        result: Result<Accepted, Refused>,
        peer: Peer,
        at: At,
    ) -> Result<Answer, DaemonError> {
        Ok(match result {
            Err(r) => {
                self.site_refusal(gallery, format!("site message refused: {r}"), at.now);
                Answer::Err(format!("refused: {r}"))
            }
            Ok(Accepted::Nothing) => Answer::Ok("nothing to do".into()),
            Ok(Accepted::Gallery { version, people }) => {
                tracing::info!(version, people, "site gallery saved");
                self.control.request_reload();
                Answer::Ok(format!("taken: gallery version {version}, {people} people"))
            }
            Ok(Accepted::Unlock { by }) => {
                let via = format!("signed site command; {}", peer.describe());
                match self.open(Request::Remote { by, via }, at)? {
                    Outcome::Opened => Answer::Ok("taken: opened".into()),
                    Outcome::Refused(r) => Answer::Err(format!("refused: {}", r.as_str())),
                    other => Answer::Err(format!("{other:?}")),
                }
            }
            Ok(Accepted::Lockdown { on, by, version }) => {
                let why = format!(
                    "signed site command, version {version}; {}",
                    peer.describe()
                );
                match self.lockdown(on, by, why, at)? {
                    Ok(state) => Answer::Ok(format!("taken: lockdown {state} version {version}")),
                    Err(e) => Answer::Err(e),
                }
            }
        })
    }

    /// Lockdown on or off, recorded with who asked and why; `Ok("on"|"off")`, or why not. A
    /// lockdown always holds (it fails towards locked); lifting one is a loosening and, under
    /// `on_failure = "deny"`, needs its record.
    fn lockdown(
        &mut self,
        on: bool,
        by: String,
        why: String,
        at: At,
    ) -> Result<Result<&'static str, String>, DaemonError> {
        let mut ev = self.event(if on {
            EventKind::Lockdown
        } else {
            EventKind::LockdownCleared
        });
        ev.identity = Some(by);
        ev.reason = Some(why);
        let recorded = self.record(&ev);
        if !on && !recorded && self.config.audit.on_failure == AuditFailure::Deny {
            return Ok(Err(format!(
                "lockdown not lifted: {}",
                Refusal::NotRecorded.as_str()
            )));
        }
        self.control.set_lockdown(on);
        self.sync_lockdown(at)?;
        Ok(Ok(if on { "on" } else { "off" }))
    }

    /// Records a site refusal, at most [`REFUSALS_PER_MINUTE`] a minute; the rest are counted
    /// and recorded as one summary ([`Self::site_refusal_summary`]).
    fn site_refusal(&mut self, gallery: bool, reason: String, now: Duration) {
        // The journal gets the same bound as the audit log.
        if !self.site_refusals.admit(now) {
            tracing::debug!("{reason}");
            return;
        }
        tracing::warn!("{reason}");
        let mut ev = self.event(if gallery {
            EventKind::GalleryRefused
        } else {
            EventKind::CommandRefused
        });
        ev.reason = Some(reason);
        self.record(&ev);
    }

    /// Records a wrong operator key, at most [`REFUSALS_PER_MINUTE`] a minute one by one (the
    /// rest are counted, [`Self::operator_refusal_summary`]): a guessing client cannot flood the
    /// audit log or the journal.
    fn operator_refused(&mut self, n: u32, peer: Peer, now: Duration) {
        let reason = format!(
            "wrong operator key ({n} on this connection); {}",
            peer.describe()
        );
        if !self.operator_refusals.admit(now) {
            tracing::debug!("{reason}");
            return;
        }
        tracing::warn!("{reason}");
        let mut ev = self.event(EventKind::OperatorRefused);
        ev.reason = Some(reason);
        self.record(&ev);
    }

    /// The summary of the wrong operator keys not recorded one by one in the last minute.
    pub(super) fn operator_refusal_summary(&mut self, now: Duration) {
        if let Some(n) = self.operator_refusals.summary_due(now) {
            let mut ev = self.event(EventKind::OperatorRefused);
            ev.reason = Some(format!(
                "{n} more wrong operator keys in the last minute (over {REFUSALS_PER_MINUTE} a minute: counted, not recorded one by one)"
            ));
            self.record(&ev);
        }
    }

    /// The summary of the site refusals not recorded one by one in the last minute.
    pub(super) fn site_refusal_summary(&mut self, now: Duration) {
        if let Some(n) = self.site_refusals.summary_due(now) {
            let mut ev = self.event(EventKind::CommandRefused);
            ev.reason = Some(format!(
                "{n} more site messages refused in the last minute (over {REFUSALS_PER_MINUTE} a minute: counted, not recorded one by one)"
            ));
            self.record(&ev);
        }
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
            "live": self.live.status(),
            "recent": self.records.recent,
        });
        status.to_string()
    }
}

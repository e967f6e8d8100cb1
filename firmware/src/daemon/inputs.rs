//! Everything due whether or not frames come: the relock, office hours, door inputs (exit button,
//! contact), the site link's requests, the panel link, reloads, the watchdog and the status.

use super::*;
use crate::panel::reader::LinkChange;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// Everything that is due whether or not frames come: relock, inputs, reloads, watchdog.
    pub(super) fn housekeeping(&mut self) -> Result<(), DaemonError> {
        let at = self.at();
        let now = at.now;
        self.sync_lockdown(at)?;
        let relocked = self.gate.tick(at, &mut self.records);
        self.raise_alarm();
        if let Some(late) = relocked.inspect_err(|e| self.lock_failed(e))? {
            self.summary.relock_late.add(late);
            tracing::info!("door locked again");
        }
        if let Some((open, site_time)) = self.guard.office_hours(at.wall) {
            self.open(Request::OfficeHours { open, site_time }, at)?;
        }
        if self.cameras.failing {
            // Checked while waiting to re-open too, so `camera_lost` comes on time.
            self.guard.camera_failed(now, &mut self.notes);
        }
        self.flush();
        self.pictures.budget.roll(now);
        self.link_events();
        if self.control.take_reload() {
            self.reload_config();
            self.poll_gallery(true);
            self.reload.next_poll = now + self.poll_interval();
        } else if now >= self.reload.next_poll {
            self.poll_gallery(false);
            self.reload.next_poll = now + self.poll_interval();
        }
        self.read_inputs(now)?;
        self.poll_credentials(now);
        self.site_requests(now)?;
        self.serve_api()?;
        if self
            .last_watchdog
            .is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(1))
        {
            self.supervisor.watchdog();
            self.last_watchdog = Some(now);
        }
        if let Some(line) = self.status.due(now, self.summary.frames) {
            self.supervisor.status(&line);
        }
        Ok(())
    }

    /// A remote unlock asked through [`Control`] (the simulator's `remote_unlock` step), and the
    /// summary of site refusals not recorded one by one.
    pub(super) fn site_requests(&mut self, now: Duration) -> Result<(), DaemonError> {
        self.site_refusal_summary(now);
        self.operator_refusal_summary(now);
        if let Some(by) = self.control.take_remote_unlock() {
            let at = At {
                now,
                wall: self.clock.wall(),
            };
            let via = "simulator".to_owned();
            self.open(Request::Remote { by, via }, at)?;
        }
        Ok(())
    }

    pub(super) fn read_inputs(&mut self, now: Duration) -> Result<(), DaemonError> {
        let inputs = match self.door_io.sensors.read() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("{e}");
                return Ok(());
            }
        };
        if inputs.exit_button && !self.door_io.inputs.exit_button {
            let at = At {
                now,
                wall: self.clock.wall(),
            };
            self.open(Request::ExitButton, at)?;
        }
        if inputs.door_open != self.door_io.inputs.door_open {
            match inputs.door_open {
                Some(true) => {
                    let ev = self.event(EventKind::DoorOpened);
                    self.record(&ev);
                }
                Some(false) if self.door_io.inputs.door_open.is_some() => {
                    let ev = self.event(EventKind::DoorClosed);
                    self.record(&ev);
                }
                _ => {}
            }
        }
        self.door_io.inputs = inputs;
        let state = self.gate.lock_state();
        let act = self
            .guard
            .door(now, inputs.door_open, state, &mut self.notes);
        self.flush();
        if act.relock {
            let at = self.at();
            let r = self.gate.relock_on_close(at, &mut self.records);
            self.raise_alarm();
            r.inspect_err(|e| self.lock_failed(e))?;
        }
        if let Some(on) = act.alarm {
            if let Err(e) = self.door_io.sensors.set_alarm(on) {
                tracing::error!("alarm output: {e}");
            }
        }
        Ok(())
    }

    /// Reader mode: audits the panel link's changes (OSDP online, offline, key set).
    pub(super) fn link_events(&mut self) {
        let links = match self.gate.output() {
            Some(out) => out.link_events(),
            None => return,
        };
        for l in links {
            tracing::info!(change = ?l.change, "{}", l.detail);
            let mut ev = self.event(match l.change {
                LinkChange::Online => EventKind::PanelOnline,
                LinkChange::Offline => EventKind::PanelOffline,
                LinkChange::Key => EventKind::PanelKey,
            });
            ev.reason = Some(l.detail);
            self.record(&ev);
        }
    }
}

/// The door's inputs: exit button, door contact (and the alarm output beside them).
pub(super) struct DoorIo<S> {
    /// The inputs' driver.
    pub(super) sensors: S,
    /// What they read last (edges are acted on).
    pub(super) inputs: DoorInputs,
}

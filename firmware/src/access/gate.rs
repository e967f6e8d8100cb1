//! The gate: every request to open the door, from any source, passes here and only here.
//!
//! Sources: a recognised face (after the acceptance rule, the decision over frames and the
//! person's policy), the exit button, a remote unlock (a signed site command or the local
//! control API), office hours. The gate applies, in this order and in this one place:
//!
//! 1. **the output mode**: in reader mode the relay is never driven; a face grant becomes the
//!    person's credential for the panel, and the exit button and office hours are the panel's;
//! 2. **lockdown**: it refuses faces and office hours, and leaves the exit button (people must get
//!    out) and remote unlocks (a deliberate, signed or local-admin act) working;
//!    **second factors** (`access::factors`): a face without the card or PIN that the mode in
//!    force (the site's, its schedule's, the person's) requires is refused (`second_factor`): a
//!    second factor is a condition of the gate, not a new path;
//! 3. **the audit policy**: with `on_failure = "deny"` a request is recorded first and refused if
//!    that fails (the exit button excepted: egress never waits for a log);
//! 4. **the relay**, and the record of what it now does: every line the gate writes carries the
//!    relay's state (`lock`), the one state the status line, the site link and the control API
//!    show.
//!
//! The table of every source in every situation is in `docs/architecture.md`; the tests below
//! check it cell by cell.

use crate::access::factors::{FactorMode, FactorRule, Presented};
use crate::door::Door;
use crate::hal::{LockError, LockOutput, LockState};
use crate::panel::reader::CredentialOutput;
use crate::people::credential::Credential;
use crate::records::audit::AuditFailure;
use crate::records::audit::{Event, EventKind};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Office hours keep the door unlocked in steps this long, renewed on every tick: the door locks
/// within this long of the window's end, or of the daemon stopping to renew it.
pub const OFFICE_HOURS_STEP: Duration = Duration::from_secs(1);
/// After office hours could not be recorded (`on_failure = "deny"`), the next attempt.
const OFFICE_HOURS_RETRY: Duration = Duration::from_secs(60);

/// Who or what asks the door to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A recognised person.
    Face,
    /// The exit button (request to exit).
    ExitButton,
    /// A remote unlock: a signed site command, or an admin through the local control API.
    Remote,
    /// The office-hours schedule (`[access] office_hours`).
    OfficeHours,
}

/// A request to open the door.
#[derive(Debug, Clone)]
pub enum Request {
    /// A recognised person whose policy lets them in now. `grant` is their audit line (kind
    /// `grant`, with identity, name, distance, margin and frames); `credential` what reader mode
    /// sends the panel.
    Face {
        /// The grant's audit line.
        grant: Box<Event>,
        /// The person's card credential (reader mode).
        credential: Option<Credential>,
        /// The factors presented with the face, and the person's own mode.
        factors: Factors,
    },
    /// The exit button was pressed.
    ExitButton,
    /// A remote unlock, on behalf of `by`.
    Remote {
        /// Who asked (recorded).
        by: String,
        /// Through what (recorded): "site command", "control API (uid 1000)".
        via: String,
    },
    /// The office-hours window, asked on every tick: `open` while the window is. The gate acts
    /// on its edges and keeps the door held while it is open.
    OfficeHours {
        /// The window is open now.
        open: bool,
        /// The site time (formatted into a record only at the window's edges: this request
        /// comes on every tick).
        site_time: jiff::civil::DateTime,
    },
}

impl Request {
    /// Where the request comes from.
    pub fn source(&self) -> Source {
        match self {
            Request::Face { .. } => Source::Face,
            Request::ExitButton => Source::ExitButton,
            Request::Remote { .. } => Source::Remote,
            Request::OfficeHours { .. } => Source::OfficeHours,
        }
    }
}

/// What came with a face, for the gate's second-factor condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Factors {
    /// A card or PIN of the person came with the face.
    pub presented: Presented,
    /// The person's own `policy.factors`.
    pub person: Option<FactorMode>,
}

/// Why the gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The site is in lockdown.
    Lockdown,
    /// `on_failure = "deny"` and the request could not be recorded.
    NotRecorded,
    /// Reader mode: the panel drives the lock, this door never does.
    ReaderMode,
    /// The mode in force asks for a card or PIN with the face, and none came.
    SecondFactor,
}

impl Refusal {
    /// The reason as recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Lockdown => "lockdown",
            Refusal::NotRecorded => "the audit log cannot be written (audit.on_failure = \"deny\")",
            Refusal::ReaderMode => "reader mode: the panel drives the lock",
            Refusal::SecondFactor => "second_factor",
        }
    }
}

/// What the gate did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The relay was driven open (or kept open longer).
    Opened,
    /// Reader mode: the credential went to the panel, which decides.
    CredentialSent,
    /// Reader mode: the grant stands but no card read could be sent (recorded why).
    CredentialFailed,
    /// Refused; the relay was not driven.
    Refused(Refusal),
    /// Nothing to do: reader mode leaves this source to the panel, or office hours did not
    /// change.
    Nothing,
}

/// Where the gate's records go; `false` when a record could not be written.
pub trait Recorder {
    /// Records `event`.
    fn record(&mut self, event: &Event) -> bool;
}

/// The door as the gate drives it: what every display of the door shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoorState {
    /// The relay's state (in reader mode: always locked).
    pub lock: LockState,
    /// What holds it unlocked, if it is.
    pub held_by: Option<Source>,
    /// Seconds (daemon time) at which it locks again, if unlocked.
    pub relock_at: Option<f64>,
    /// The site is in lockdown.
    pub lockdown: bool,
    /// Reader mode: the panel drives the lock.
    pub reader_mode: bool,
    /// The office-hours window is open (whether or not it holds the door).
    pub office_hours: bool,
}

/// The gate's fixed settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateSettings {
    /// `[audit] on_failure`.
    pub on_failure: AuditFailure,
    /// `[lock] unlock_seconds`.
    pub hold: Duration,
}

/// When a request is handled: daemon time and wall time (for the records).
#[derive(Debug, Clone, Copy)]
pub struct At {
    /// Daemon time.
    pub now: Duration,
    /// Wall-clock time.
    pub wall: SystemTime,
}

/// The one place the door opens. Owns the lock output (through [`Door`]) and, in reader mode,
/// the credential output.
pub struct Gate<'o, L: LockOutput> {
    door: Door<L>,
    output: Option<&'o mut (dyn CredentialOutput + 'static)>,
    settings: GateSettings,
    lockdown: bool,
    /// The office-hours window is open.
    window: bool,
    /// Office hours hold the door now.
    holding: bool,
    /// After a failed office-hours record: when to try again.
    retry_at: Option<Duration>,
    held_by: Option<Source>,
    /// Which factors a face needs when (`[access] factors`).
    factors: FactorRule,
}

impl<'o, L: LockOutput> Gate<'o, L> {
    /// The gate over `lock` (driven to locked now); reader mode when `output` is given.
    pub fn new(
        lock: L,
        output: Option<&'o mut (dyn CredentialOutput + 'static)>,
        settings: GateSettings,
    ) -> Result<Self, LockError> {
        Ok(Self {
            door: Door::new(lock)?,
            output,
            settings,
            lockdown: false,
            window: false,
            holding: false,
            retry_at: None,
            held_by: None,
            factors: FactorRule::default(),
        })
    }

    /// The gate asking faces for the factors `rule` says (default: the face alone).
    pub fn with_factors(mut self, rule: FactorRule) -> Self {
        self.factors = rule;
        self
    }

    /// The mode in force at `wall` for a person whose own policy says `person`.
    pub fn factor_mode(&self, wall: SystemTime, person: Option<FactorMode>) -> FactorMode {
        self.factors.mode_at(wall, person)
    }

    /// A new `[lock] unlock_seconds` (applied live on reload).
    pub fn set_hold(&mut self, hold: Duration) {
        self.settings.hold = hold;
    }

    /// The door's state now.
    pub fn state(&self) -> DoorState {
        DoorState {
            lock: self.door.state(),
            held_by: self
                .held_by
                .filter(|_| self.door.state() == LockState::Unlocked),
            relock_at: self.door.relock_at().map(|t| t.as_secs_f64()),
            lockdown: self.lockdown,
            reader_mode: self.reader_mode(),
            office_hours: self.window,
        }
    }

    /// The relay's state.
    pub fn lock_state(&self) -> LockState {
        self.door.state()
    }

    /// When the door locks again, if it is unlocked.
    pub fn relock_at(&self) -> Option<Duration> {
        self.door.relock_at()
    }

    /// Whether the site is in lockdown.
    pub fn lockdown(&self) -> bool {
        self.lockdown
    }

    /// Reader mode: the panel drives the lock.
    pub fn reader_mode(&self) -> bool {
        self.output.is_some()
    }

    /// Reader mode's output (its link events).
    pub fn output(&mut self) -> Option<&mut (dyn CredentialOutput + 'static)> {
        self.output.as_deref_mut()
    }

    /// Handles one request to open the door. `Err` only when the relay cannot be driven (the
    /// daemon then stops, and the door is locked on the way out).
    pub fn request(
        &mut self,
        request: Request,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<Outcome, LockError> {
        match request {
            Request::Face {
                grant,
                credential,
                factors,
            } => self.face(*grant, credential, factors, at, rec),
            Request::ExitButton => self.exit_button(at, rec),
            Request::Remote { by, via } => self.remote(by, via, at, rec),
            Request::OfficeHours { open, site_time } => self.office_hours(open, site_time, at, rec),
        }
    }

    fn face(
        &mut self,
        mut grant: Event,
        credential: Option<Credential>,
        factors: Factors,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<Outcome, LockError> {
        let mode = self.factors.mode_at(at.wall, factors.person);
        let refusal = if self.lockdown {
            Some(Refusal::Lockdown)
        } else if !mode.satisfied_by(factors.presented) {
            Some(Refusal::SecondFactor)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            // Recognised, recorded, not let in.
            let mut deny = grant;
            deny.event = EventKind::Deny;
            deny.reason = Some(refusal.as_str().into());
            self.stamp_now(&mut deny);
            rec.record(&deny);
            return Ok(Outcome::Refused(refusal));
        }
        if factors.presented != Presented::default() {
            // Which factors let the person in, on the grant's line.
            grant.reason = Some(format!(
                "{} ({})",
                factors.presented.describe(),
                mode.as_str()
            ));
        }
        if let Some(out) = self.output.as_deref_mut() {
            return Ok(reader_grant(
                out,
                grant,
                credential,
                self.settings.on_failure,
                at,
                rec,
            ));
        }
        self.open(Source::Face, &mut grant, self.settings.hold, at, rec)
    }

    fn exit_button(&mut self, at: At, rec: &mut dyn Recorder) -> Result<Outcome, LockError> {
        if self.reader_mode() {
            return Ok(Outcome::Nothing);
        }
        // Egress: neither lockdown nor the audit policy holds anyone in. Open, then record.
        self.door.unlock(at.now, self.settings.hold)?;
        self.held_by = Some(Source::ExitButton);
        let mut ev = Event::new(EventKind::Exit, at.wall, at.now);
        self.stamp_now(&mut ev);
        rec.record(&ev);
        Ok(Outcome::Opened)
    }

    fn remote(
        &mut self,
        by: String,
        via: String,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<Outcome, LockError> {
        if self.reader_mode() {
            let mut ev = Event::new(EventKind::CommandRefused, at.wall, at.now);
            ev.identity = Some(by);
            ev.reason = Some(format!("unlock ({via}): {}", Refusal::ReaderMode.as_str()));
            self.stamp_now(&mut ev);
            rec.record(&ev);
            return Ok(Outcome::Refused(Refusal::ReaderMode));
        }
        let mut ev = Event::new(EventKind::RemoteUnlock, at.wall, at.now);
        ev.identity = Some(by);
        ev.reason = Some(via);
        self.open(Source::Remote, &mut ev, self.settings.hold, at, rec)
    }

    fn office_hours(
        &mut self,
        open: bool,
        site_time: jiff::civil::DateTime,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<Outcome, LockError> {
        let reason = || format!("site time {site_time}");
        if self.reader_mode() {
            // The panel keeps its own schedule.
            return Ok(Outcome::Nothing);
        }
        if open != self.window {
            self.window = open;
            self.retry_at = None;
            if !open {
                self.holding = false;
                let mut ev = Event::new(EventKind::OfficeHoursEnd, at.wall, at.now);
                ev.reason = Some(format!(
                    "{}; the door locks within {} s",
                    reason(),
                    OFFICE_HOURS_STEP.as_secs()
                ));
                // The hold runs out by itself: what the relay does until then is unlocked.
                self.stamp_now(&mut ev);
                rec.record(&ev);
                return Ok(Outcome::Nothing);
            }
            if self.lockdown {
                let mut ev = Event::new(EventKind::OfficeHoursStart, at.wall, at.now);
                ev.reason = Some(format!("{}; lockdown: the door stays locked", reason()));
                self.stamp_now(&mut ev);
                rec.record(&ev);
                return Ok(Outcome::Refused(Refusal::Lockdown));
            }
            return self.start_holding(reason(), at, rec);
        }
        if !open || self.lockdown {
            return Ok(if open {
                Outcome::Refused(Refusal::Lockdown)
            } else {
                Outcome::Nothing
            });
        }
        if !self.holding {
            if self.retry_at.is_some_and(|t| at.now < t) {
                return Ok(Outcome::Refused(Refusal::NotRecorded));
            }
            return self.start_holding(format!("{} (again)", reason()), at, rec);
        }
        // Kept unlocked in short steps: it locks within a step of the end.
        self.door.unlock(at.now, OFFICE_HOURS_STEP)?;
        Ok(Outcome::Opened)
    }

    fn start_holding(
        &mut self,
        reason: String,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<Outcome, LockError> {
        let mut ev = Event::new(EventKind::OfficeHoursStart, at.wall, at.now);
        ev.reason = Some(reason);
        let outcome = self.open(Source::OfficeHours, &mut ev, OFFICE_HOURS_STEP, at, rec)?;
        self.holding = outcome == Outcome::Opened;
        if !self.holding {
            self.retry_at = Some(at.now + OFFICE_HOURS_RETRY);
        }
        Ok(outcome)
    }

    /// Opens the relay for `hold` on `source`'s behalf, recording `ev` in the order the audit
    /// policy says.
    fn open(
        &mut self,
        source: Source,
        ev: &mut Event,
        hold: Duration,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<Outcome, LockError> {
        match self.settings.on_failure {
            AuditFailure::Deny => {
                // Recorded first, or the door stays locked.
                ev.lock = Some(LockState::Unlocked);
                if !rec.record(ev) {
                    return Ok(Outcome::Refused(Refusal::NotRecorded));
                }
                self.door.unlock(at.now, hold)?;
            }
            AuditFailure::GrantAndAlarm => {
                // The person is waiting: the door first, then the record.
                let unlocked = self.door.unlock(at.now, hold);
                if let Err(e) = &unlocked {
                    ev.reason = Some(format!("not unlocked: {e}"));
                }
                self.stamp_now(ev);
                rec.record(ev);
                unlocked?;
            }
        }
        self.held_by = Some(source);
        Ok(Outcome::Opened)
    }

    /// Puts the site in lockdown or lifts it. Lockdown locks at once a door that a face or office
    /// hours hold open (not one the exit button or a remote unlock opened: those it leaves
    /// working); lifting it lets office hours hold the door again if their window is open.
    pub fn set_lockdown(
        &mut self,
        on: bool,
        at: At,
        rec: &mut dyn Recorder,
    ) -> Result<(), LockError> {
        if on == self.lockdown {
            return Ok(());
        }
        self.lockdown = on;
        if on {
            self.holding = false;
            let held = matches!(self.held_by, Some(Source::Face | Source::OfficeHours));
            if held && self.door.state() == LockState::Unlocked {
                self.relock("lockdown: locked at once", at, rec)?;
            }
        } else if self.window && !self.reader_mode() {
            self.start_holding(
                "lockdown lifted: office hours hold the door".into(),
                at,
                rec,
            )?;
        }
        Ok(())
    }

    /// Locks the door when its hold is over; how late that was, if it just locked.
    pub fn tick(&mut self, at: At, rec: &mut dyn Recorder) -> Result<Option<Duration>, LockError> {
        let due = self.door.relock_at();
        if !self.door.tick(at.now)? {
            return Ok(None);
        }
        self.held_by = None;
        let mut ev = Event::new(EventKind::Relock, at.wall, at.now);
        self.stamp_now(&mut ev);
        rec.record(&ev);
        Ok(Some(at.now.saturating_sub(due.unwrap_or(at.now))))
    }

    /// Door supervision's relock on close: the door opened and closed during an unlock. Office
    /// hours keep the door unlocked through it.
    pub fn relock_on_close(&mut self, at: At, rec: &mut dyn Recorder) -> Result<(), LockError> {
        if self.holding || self.door.state() == LockState::Locked {
            return Ok(());
        }
        self.relock("the door opened and closed", at, rec)
    }

    fn relock(&mut self, reason: &str, at: At, rec: &mut dyn Recorder) -> Result<(), LockError> {
        self.door.lock()?;
        self.held_by = None;
        let mut ev = Event::new(EventKind::Relock, at.wall, at.now);
        ev.reason = Some(reason.into());
        self.stamp_now(&mut ev);
        rec.record(&ev);
        Ok(())
    }

    /// Locks the door for the daemon's stop (also done when the gate is dropped).
    pub fn lock_for_stop(&mut self) -> Result<(), LockError> {
        self.holding = false;
        self.held_by = None;
        self.door.lock()
    }

    fn stamp_now(&self, ev: &mut Event) {
        ev.lock = Some(self.door.state());
    }
}

/// Reader mode's grant: the card read to the panel, audited with what was sent, in the order
/// the audit policy says. The relay is not touched.
fn reader_grant(
    out: &mut dyn CredentialOutput,
    mut grant: Event,
    credential: Option<Credential>,
    on_failure: AuditFailure,
    at: At,
    rec: &mut dyn Recorder,
) -> Outcome {
    let deny = on_failure == AuditFailure::Deny;
    grant.lock = Some(LockState::Locked);
    if deny && !rec.record(&grant) {
        return Outcome::Refused(Refusal::NotRecorded);
    }
    let sent = crate::panel::reader::send(out, credential.as_ref());
    if !deny {
        rec.record(&grant);
    }
    let mut ev = Event::new(
        if sent.is_ok() {
            EventKind::CredentialSent
        } else {
            EventKind::CredentialError
        },
        at.wall,
        at.now,
    );
    ev.identity = grant.identity;
    ev.name = grant.name;
    ev.lock = Some(LockState::Locked);
    let outcome = match sent {
        Ok(what) => {
            ev.reason = Some(what);
            Outcome::CredentialSent
        }
        Err(e) => {
            ev.reason = Some(e.to_string());
            Outcome::CredentialFailed
        }
    };
    rec.record(&ev);
    outcome
}

#[cfg(test)]
mod tests;

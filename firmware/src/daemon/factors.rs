//! Second factors in the loop: cards and keys from the credential input become a claim
//! (`access::factors`), and while a claim waits, frames are checked 1:1 against the person it
//! names instead of the 1:N search. A grant from a claim goes to the gate like any face grant,
//! with the factors presented; the gate decides whether they are enough.
//!
//! - a card of a known person names them; a card of nobody is denied (`unknown_card`);
//! - a PIN is checked against the people within the 1:1 threshold of the next face (at most
//!   [`MAX_PIN_CANDIDATES`], nearest first): the one whose PIN (or duress PIN) it is is named;
//!   none is `wrong_pin`; a face near nobody is `face_mismatch`;
//! - the face of a claim is then judged over frames like any face, against the named person
//!   only, at the 1:1 threshold (`[access] factor_threshold`, else the calibration's
//!   `one_to_one` point: looser than the search's, one comparison is one chance for a stranger);
//!   a face that is not theirs is `face_mismatch`;
//! - a claim no face confirmed within `[access] factor_seconds` is `factor_timeout`.
//!
//! Wrong PINs, cards of nobody and face mismatches count towards the lockout; a timeout does not
//! (someone who walked away).

use super::pin_check::{Candidate, PinChecker};
use super::*;
use crate::access::decision::DenyReason;
use crate::access::factors::{Claim, Claims, FactorRule, KeyOutcome, MAX_PIN_CANDIDATES};
use crate::hal::{CredentialInput, Presented};

/// Most items read from the credential input per pass of the loop (a jammed line cannot starve
/// the door).
const MAX_INPUTS_PER_TICK: usize = 32;

/// The second factors' state in the loop.
pub(super) struct FactorState {
    /// The card reader or keypad (`None`: none fitted).
    pub(super) input: Option<Box<dyn CredentialInput + Send>>,
    /// The input failed last time (logged once until it works again).
    input_failed: bool,
    /// The keypad's buffer and the claim.
    pub(super) claims: Claims,
    /// The decision over frames for the claim's face (1:1), made anew for each claim.
    decider: Option<Decider>,
    /// The site's modes.
    rule: FactorRule,
    /// Frames with a face near nobody while a PIN waits.
    pin_misses: u32,
    /// The claim a grant just came from (taken by the grant).
    pub(super) granted: Option<Claim>,
    /// Verifies typed PINs off the loop thread.
    pin_check: PinChecker,
    /// After a claim's grant: its decider and person, which hold the face let in until it has
    /// left (as the 1:N decision holds its own), so the 1:N search does not let it in again.
    after: Option<(Decider, usize)>,
    /// The 1:1 check's threshold, and where it comes from.
    pub(super) one_to_one: crate::access::operating_point::Chosen,
}

impl FactorState {
    /// As `[access]` says, reading `input`.
    pub(super) fn new(
        access: &crate::people::policy::AccessConfig,
        input: Option<Box<dyn CredentialInput + Send>>,
        one_to_one: crate::access::operating_point::Chosen,
    ) -> Self {
        let rule = FactorRule::of(access);
        if rule.ever_takes_claims() && input.is_none() {
            tracing::error!(
                "[access] factors = {:?} but no card reader or keypad ([access.inputs]): \
                 faces that need a second factor are refused",
                access.factors.as_str()
            );
        }
        // The thread only where PINs can be typed.
        let pin_check = if input.is_some() {
            PinChecker::start()
        } else {
            PinChecker::inline()
        };
        Self {
            input,
            input_failed: false,
            claims: Claims::new(Duration::from_secs_f64(access.factor_seconds)),
            decider: None,
            rule,
            pin_misses: 0,
            granted: None,
            after: None,
            pin_check,
            one_to_one,
        }
    }

    /// Whether frames go to the claim's decision (a claim waits, or its face is still held).
    pub(super) fn routes_frames(&self) -> bool {
        self.claims.active() || self.after.is_some()
    }

    /// Drops the claim (the gallery changed: its person index means nothing now).
    pub(super) fn forget(&mut self) {
        self.claims.take();
        self.pin_check.forget();
        self.decider = None;
        self.granted = None;
        self.after = None;
    }
}

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// Reads the credential input and times claims out (housekeeping).
    pub(super) fn poll_credentials(&mut self, now: Duration) {
        if let Some(gone) = self.factors.claims.expired(now) {
            self.factors.decider = None;
            self.factors.pin_check.forget();
            let id = claim_id(&gone);
            tracing::info!(
                id = id.as_deref().unwrap_or("unknown"),
                "second factor timed out"
            );
            self.factor_denied("factor_timeout", id, false);
        }
        for _ in 0..MAX_INPUTS_PER_TICK {
            let Some(input) = self.factors.input.as_mut() else {
                return;
            };
            let presented = match input.poll(now) {
                Ok(Some(p)) => {
                    self.factors.input_failed = false;
                    p
                }
                Ok(None) => return,
                Err(e) => {
                    if !self.factors.input_failed {
                        tracing::error!("card reader / keypad: {e}");
                    }
                    self.factors.input_failed = true;
                    return;
                }
            };
            if self.guard.locked_out(now) {
                // Paused like recognition: nothing presented now counts or claims.
                continue;
            }
            match presented {
                Presented::Card(card) => self.card(now, card),
                Presented::Key(k) => match self.factors.claims.key(now, k) {
                    KeyOutcome::Pending => {}
                    KeyOutcome::Malformed => {
                        if self.pins_used() {
                            self.factor_denied("wrong_pin", None, true);
                        }
                    }
                    KeyOutcome::Entered(digits) => {
                        if self.pins_used() {
                            tracing::info!("PIN entered: waiting for the face");
                            self.new_claim(now, Claim::Pin(digits));
                        }
                    }
                },
            }
        }
    }

    /// Whether typed PINs are used now: the site's mode takes claims, or someone must use a PIN.
    fn pins_used(&self) -> bool {
        self.factors
            .rule
            .site_mode(self.clock.wall())
            .takes_claims()
            || self
                .gallery
                .gallery()
                .people
                .iter()
                .any(|p| p.policy.factors.is_some_and(|f| f.two_factor()))
    }

    fn card(&mut self, now: Duration, card: crate::people::credential::Credential) {
        let wall = self.clock.wall();
        let holder = self
            .gallery
            .gallery()
            .people
            .iter()
            .position(|p| p.credential == Some(card));
        let Some(person) = holder else {
            if self.factors.rule.site_mode(wall).takes_claims() {
                tracing::info!("a card of nobody enrolled");
                self.factor_denied("unknown_card", None, true);
            }
            return;
        };
        let p = &self.gallery.gallery().people[person];
        if !self.gate.factor_mode(wall, p.policy.factors).takes_claims() {
            // Face-only now, for them: the card is not used.
            return;
        }
        let id = p.id.clone();
        tracing::info!(%id, "card presented: waiting for the face");
        self.new_claim(now, Claim::Card { person, id });
    }

    fn new_claim(&mut self, now: Duration, claim: Claim) {
        // The claim's own decision over frames, at the 1:1 threshold: no margin to a second
        // person (there is none in a 1:1 check).
        let mut params = self.decider.params().clone();
        params.threshold = self.factors.one_to_one.threshold;
        params.min_margin = 0.0;
        self.factors.decider = Some(Decider::new(params));
        self.factors.after = None;
        self.factors.pin_misses = 0;
        self.factors.claims.set(now, claim);
    }

    /// A frame while a claim waits (instead of the 1:N decision): the decision to act on.
    /// Denials of the claim are recorded here; a grant goes on to the gate.
    pub(super) fn claimed_frame(&mut self, taken: Duration, obs: Observation<'_>) -> Decision {
        let Some(claim) = self.factors.claims.get().cloned() else {
            return self.after_grant(taken, obs);
        };
        let face = match &obs {
            Observation::Face(s) if !self.embedding.0.is_empty() => Some(*s),
            _ => None,
        };
        let person = match &claim {
            Claim::Pin(digits) => match self.pin_claim(digits, face.is_some()) {
                Some(person) => person,
                None => return Decision::Wait,
            },
            c => match c.person() {
                Some(p) => p,
                None => return Decision::Wait,
            },
        };
        let index = self.gallery.index();
        let t = Instant::now();
        let obs = match obs {
            Observation::Face(mut seen) => {
                seen.nearest = nearest_of(index, person, &self.embedding);
                Observation::Face(seen)
            }
            o => o,
        };
        self.summary.stages.matching += t.elapsed();
        let normalize = self.spec.normalize;
        let fused = &mut self.fused;
        let mut fuse = |mean: &[f32]| {
            fused.0.clear();
            fused.0.extend_from_slice(mean);
            if normalize {
                fused.normalize();
            }
            nearest_of(index, person, fused)
        };
        let Some(decider) = self.factors.decider.as_mut() else {
            return Decision::Wait;
        };
        let decision = decider.observe(taken, obs.with(&self.embedding.0), &mut fuse);
        match decision {
            Decision::Grant { .. } => {
                self.factors.granted = self.factors.claims.take();
                self.factors.after = self.factors.decider.take().map(|d| (d, person));
                decision
            }
            Decision::Deny { reason, .. } => {
                let id = claim_id(&claim);
                self.factors.forget();
                let word = match reason {
                    // Not the claimed person's face.
                    DenyReason::Unknown | DenyReason::Ambiguous | DenyReason::Unsteady => {
                        "face_mismatch"
                    }
                    other => other.as_str(),
                };
                self.factor_denied(word, id, true);
                Decision::Wait
            }
            Decision::Wait => Decision::Wait,
        }
    }

    /// A typed PIN waiting for its face: on a face, the people near it (at the 1:1 threshold)
    /// are handed to the PIN checker; its answer names the person (`Some`), or denies the
    /// claim (`wrong_pin`, `face_mismatch`). `None`: nothing decided yet.
    fn pin_claim(&mut self, digits: &crate::access::factors::Digits, face: bool) -> Option<usize> {
        let found = if self.factors.pin_check.busy() {
            self.factors.pin_check.answer(!self.clock.realtime())?
        } else {
            if !face {
                return None;
            }
            let near = self.gallery.index().within(
                &self.embedding,
                self.factors.one_to_one.threshold,
                MAX_PIN_CANDIDATES,
            );
            if near.is_empty() {
                self.factors.pin_misses += 1;
                if self.factors.pin_misses >= self.decider.params().deny_after {
                    self.factors.forget();
                    self.factor_denied("face_mismatch", None, true);
                }
                return None;
            }
            let people = &self.gallery.gallery().people;
            let candidates = near
                .iter()
                .filter_map(|&(i, _)| {
                    let p = people.get(i)?;
                    Some(Candidate {
                        person: i,
                        id: p.id.clone(),
                        pin_hash: p.pin_hash.clone(),
                        duress_hash: p.duress_hash.clone(),
                    })
                })
                .collect();
            match self.factors.pin_check.submit(digits.as_str(), candidates) {
                Some(found) => found,
                // On the simulated clock the answer is awaited: a result never depends on the
                // host's speed. On the real one, frames go on meanwhile.
                None => self.factors.pin_check.answer(!self.clock.realtime())?,
            }
        };
        let Some((person, id, duress)) = found else {
            self.factors.forget();
            self.factor_denied("wrong_pin", None, true);
            return None;
        };
        tracing::debug!(%id, "PIN checked");
        self.factors
            .claims
            .resolve(Claim::PinOf { person, id, duress });
        Some(person)
    }

    /// A frame while the face a claim let in is held: judged 1:1 against that person until it
    /// has left; then (or when another face is judged instead) the 1:N decision takes over.
    fn after_grant(&mut self, taken: Duration, obs: Observation<'_>) -> Decision {
        let Some((decider, person)) = self.factors.after.as_mut() else {
            return Decision::Wait;
        };
        let person = *person;
        let index = self.gallery.index();
        let obs = match obs {
            Observation::Face(mut seen) if !self.embedding.0.is_empty() => {
                seen.nearest = nearest_of(index, person, &self.embedding);
                Observation::Face(seen)
            }
            o => o,
        };
        // No fusion: a held face is never granted again.
        let decision = decider.observe(taken, obs.with(&self.embedding.0), &mut |_| None);
        if decision != Decision::Wait || decider.held_person().is_none() {
            self.factors.after = None;
        }
        Decision::Wait
    }

    /// Records a second factor's denial; `counted` ones count towards the lockout.
    fn factor_denied(&mut self, reason: &str, claimed: Option<String>, counted: bool) {
        let now = self.clock.now();
        let mut ev = self.event(EventKind::Deny);
        ev.identity = Some("unknown".to_owned());
        // Who the card or PIN named, not who came: `nearest` is the field for "who it looked like".
        ev.nearest = claimed;
        ev.reason = Some(reason.to_owned());
        self.status.last_decision = Some((now, format!("denied ({reason})")));
        self.summary.denials += 1;
        self.record(&ev);
        if counted {
            self.guard.denied(now, &mut self.notes);
        }
        self.flush();
    }

    /// The grant's factors, and the duress event after a duress PIN opened the door.
    pub(super) fn claim_factors(
        &mut self,
        person: Option<crate::access::factors::FactorMode>,
    ) -> (crate::access::Factors, bool) {
        let claim = self.factors.granted.take();
        let duress = claim.as_ref().is_some_and(Claim::duress);
        let presented = claim.map(|c| c.presented()).unwrap_or_default();
        (crate::access::Factors { presented, person }, duress)
    }

    /// A duress PIN let `id` in: a silent alarm (no sign at the door), published by the site link.
    pub(super) fn duress(&mut self, id: &str, name: &str) {
        let mut ev = self.event(EventKind::Duress);
        ev.identity = Some(id.to_owned());
        ev.name = Some(name.to_owned());
        ev.reason = Some("duress PIN".to_owned());
        tracing::info!(%id, "duress");
        self.record(&ev);
    }
}

/// The claimed `person` as the match of `embedding`: a 1:1 check has no second person, so no
/// margin to keep.
fn nearest_of(index: &Index, person: usize, embedding: &Embedding) -> Option<Nearest> {
    index
        .distance_to(person, embedding)
        .map(|distance| Nearest {
            person,
            distance,
            margin: f32::INFINITY,
        })
}

fn claim_id(c: &Claim) -> Option<String> {
    match c {
        Claim::Card { id, .. } | Claim::PinOf { id, .. } => Some(id.clone()),
        Claim::Pin(_) => None,
    }
}

//! The decision on a recognised frame: the guards, the 1:N match, the decision over frames, the
//! person's policy, and a grant handed to the gate.

use super::*;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// Decides on a recognised frame taken at `taken` (its face's embedding, if any, in
    /// `self.embedding`): matches it, and unlocks, records or waits. The unlock hold counts from
    /// now, the decision's time, not from the frame's. `image` is kept as the newest frame.
    pub(super) fn frame(
        &mut self,
        observed: Result<Observation<'static>, PipelineError>,
        facts: FrameFacts,
        taken: Duration,
        image: Arc<RgbImage>,
    ) -> Result<(), DaemonError> {
        let started = Instant::now();
        self.live.newest = Some(image);
        let largest = match &observed {
            Ok(Observation::Face(s)) => Some(s.bbox),
            _ => None,
        };
        self.summary.frames += 1;
        self.summary.liveness_runs += facts.liveness_runs;
        let now = self.clock.now();
        self.guard.frame_facts(now, facts.blind, &mut self.notes);
        self.flush();
        if self.guard.locked_out(now) {
            self.show_live(None, largest, &facts.others);
            return Ok(());
        }
        let obs = match observed {
            Ok(o) => o,
            Err(e) => {
                // Not judged, but it breaks the run: nothing ties the next face to this one.
                tracing::warn!("frame skipped: {e}");
                Observation::Lost
            }
        };
        // A crowd (anti-tailgating) never agrees; it is a denial and counts towards a lockout.
        let obs = if self.guard.crowd(facts.large_faces, &mut self.notes) {
            Observation::Lost
        } else {
            obs
        };
        if self.notes.iter().any(|n| n.0 == EventKind::Deny) {
            self.summary.denials += 1;
            self.guard.denied(now, &mut self.notes);
        }
        self.flush();
        let obs = match obs {
            Observation::Face(mut seen) => {
                self.summary.faces += 1;
                // A card or PIN claim checks the face 1:1 instead (`factors.rs`).
                if !self.embedding.0.is_empty() && !self.factors.routes_frames() {
                    let t = Instant::now();
                    seen.nearest = self.gallery.index().best(&self.embedding).map(|m| Nearest {
                        person: m.person,
                        distance: m.distance,
                        margin: m.margin,
                    });
                    self.summary.stages.matching += t.elapsed();
                    tracing::debug!(nearest = ?seen.nearest, "face");
                }
                Observation::Face(seen)
            }
            o => o,
        };
        let judged = match &obs {
            Observation::Face(seen) => Some(seen),
            _ => None,
        };
        self.show_live(judged, largest, &facts.others);
        let normalize = self.spec.normalize;
        let (gallery, fused) = (&self.gallery, &mut self.fused);
        // The mean of a run's embeddings, matched the way each frame's embedding is.
        let mut fuse = |mean: &[f32]| {
            fused.0.clear();
            fused.0.extend_from_slice(mean);
            if normalize {
                fused.normalize();
            }
            gallery.index().best(fused).map(|m| Nearest {
                person: m.person,
                distance: m.distance,
                margin: m.margin,
            })
        };
        let decision = if self.factors.routes_frames() {
            self.claimed_frame(taken, obs)
        } else {
            self.decider
                .observe(taken, obs.with(&self.embedding.0), &mut fuse)
        };
        self.summary.busy += started.elapsed();
        let now = self.clock.now();
        match decision {
            Decision::Wait => {}
            Decision::Grant {
                person,
                distance,
                margin,
                frames,
                fused,
            } => {
                let own = self.gallery.gallery().people.get(person);
                let (factors, duress) = self.claim_factors(own.and_then(|p| p.policy.factors));
                let Some(p) = self.gallery.gallery().people.get(person) else {
                    return Ok(());
                };
                let (id, name) = (p.id.clone(), p.name.clone());
                let credential = p.credential;
                if let Err(refusal) = self.guard.policy(p, self.clock.wall()) {
                    let mut ev = self.event(EventKind::Deny);
                    ev.identity = Some(id.clone());
                    ev.name = Some(name.clone());
                    ev.reason = Some(refusal.as_str().to_owned());
                    ev.distance = Some(fused.distance);
                    ev.frames = Some(frames);
                    ev.picture = self.picture_wanted();
                    tracing::info!(%id, %name, reason = refusal.as_str(), "access denied by policy");
                    self.summary.denials += 1;
                    self.record(&ev);
                    self.keep_picture();
                    self.guard.denied(now, &mut self.notes);
                    self.flush();
                    return Ok(());
                }
                let mut ev = self.event(EventKind::Grant);
                ev.identity = Some(id.clone());
                ev.name = Some(name.clone());
                // The grant rests on the fused embedding: its distance and margin are recorded
                // (the worst single frame's go to the log line).
                ev.distance = Some(fused.distance);
                // Infinite with a single person enrolled: left out.
                ev.margin = fused.margin.is_finite().then_some(fused.margin);
                ev.frames = Some(frames);
                ev.picture = self.picture_wanted();
                let at = self.at();
                self.sync_lockdown(at)?;
                let grant = Request::Face {
                    grant: Box::new(ev),
                    credential,
                    factors,
                };
                let outcome = self.open(grant, at)?;
                // Audit line first, the door opened, then the picture (off the loop).
                self.keep_picture();
                if duress && matches!(outcome, Outcome::Opened | Outcome::CredentialSent) {
                    self.duress(&id, &name);
                }
                let said = match outcome {
                    Outcome::Opened | Outcome::CredentialSent | Outcome::CredentialFailed => {
                        self.summary.grants += 1;
                        tracing::info!(
                            %id, %name, distance, margin, fused = fused.distance, frames,
                            ?outcome, "access granted"
                        );
                        format!("granted {id}")
                    }
                    Outcome::Refused(r) => {
                        if r == Refusal::Lockdown {
                            self.summary.denials += 1;
                        }
                        format!("{id} not let in ({})", r.as_str())
                    }
                    Outcome::Nothing => return Ok(()),
                };
                self.status.last_decision = Some((now, said));
            }
            Decision::Deny {
                reason,
                nearest,
                frames,
            } => {
                let mut ev = self.event(EventKind::Deny);
                ev.identity = Some("unknown".to_owned());
                ev.reason = Some(reason.as_str().to_owned());
                ev.frames = Some(frames);
                if let Some(n) = nearest {
                    ev.nearest = self
                        .gallery
                        .gallery()
                        .people
                        .get(n.person)
                        .map(|p| p.id.clone());
                    ev.distance = Some(n.distance);
                    ev.margin = n.margin.is_finite().then_some(n.margin);
                }
                ev.picture = self.picture_wanted();
                tracing::info!(?reason, frames, "access denied");
                self.status.last_decision = Some((now, format!("denied ({})", reason.as_str())));
                self.summary.denials += 1;
                self.record(&ev);
                self.keep_picture();
                self.guard.denied(now, &mut self.notes);
                self.flush();
            }
        }
        Ok(())
    }
}

//! What recognition makes of one frame ([`look`]): its largest face, its quality, embedding and
//! liveness, and the frame's facts for the guards; run by the recognition workers.

use super::*;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// What recognition needs now (after a reload: the config and the decision thresholds).
    pub(super) fn look_params(&self) -> LookParams {
        let d = self.decider.params();
        LookParams {
            min_face: self.config.recognition.min_face,
            quality: self.config.recognition.quality,
            count_faces: self.guard.max_faces() > 0,
            watch_blind: self.guard.watches_frames(),
            liveness: self.config.liveness.level != Level::Off,
            threshold: d.threshold,
            min_margin: d.min_margin,
            keep_face: self.pictures.on,
        }
    }
}

/// What recognition needs besides the pipeline; copied to the recognition thread, refreshed by
/// the control loop after a reload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LookParams {
    pub(super) min_face: f32,
    pub(super) quality: QualityParams,
    /// Anti-tailgating (`max_faces` > 0): every face is detected and the large ones counted.
    pub(super) count_faces: bool,
    /// Tamper (`[tamper] blind_seconds` > 0): each frame is checked for a covered/blinded camera.
    pub(super) watch_blind: bool,
    /// `[liveness]` is on: every embedded face that would be let in is scored.
    pub(super) liveness: bool,
    /// What "would be let in" means: nearest person within `threshold`, `min_margin` ahead.
    pub(super) threshold: f32,
    pub(super) min_margin: f32,
    /// `[audit] faces`: each judged face's landmarks are kept for its decision picture.
    pub(super) keep_face: bool,
}

/// What recognition saw in a frame besides its face, for the guards on the control side.
#[derive(Debug, Clone, Default)]
pub(super) struct FrameFacts {
    /// Faces at least `min_face` large (counted only for anti-tailgating).
    pub(super) large_faces: usize,
    /// The frame is uniform or saturated (checked only when tamper watches frames).
    pub(super) blind: Option<Blind>,
    /// Liveness runs for this frame (0 or 1).
    pub(super) liveness_runs: u64,
    /// The other faces' boxes (found only when anti-tailgating counts faces), for the live view.
    pub(super) others: Vec<crate::vision::detect::BBox>,
}

/// What recognition looks with: the face pipeline, the liveness networks and the presentation
/// cues (each worker has its own).
pub(super) struct Eyes<'a> {
    pub(super) pipeline: &'a mut Pipeline,
    pub(super) liveness: Option<&'a mut Liveness>,
    pub(super) cues: &'a mut Cues,
}

/// Where a look leaves what it found besides the observation: time per stage (added to), the
/// face's embedding, the frame's facts for the guards.
pub(super) struct Looked<'a> {
    pub(super) stages: &'a mut Stages,
    pub(super) embedding: &'a mut Embedding,
    pub(super) facts: &'a mut FrameFacts,
    /// `[audit] faces`: the judged face's landmarks, for a decision picture (the crop is cut
    /// from the frame by the picture writer, off the door's path).
    pub(super) face: &'a mut Option<[[f32; 2]; 5]>,
}

/// What the frame shows: its largest face, how large, its liveness score; the face's embedding
/// is left in `embedding` (emptied when there is none), the frame's facts for the guards in
/// `facts`. Who is nearest is left to the caller, which decides; `index` only tells whether the
/// face would be let in, the one case that needs its liveness score.
pub(super) fn look(
    eyes: Eyes<'_>,
    frame: &RgbImage,
    taken: Duration,
    index: &Index,
    p: &LookParams,
    out: Looked<'_>,
) -> Result<Observation<'static>, PipelineError> {
    let Eyes {
        pipeline,
        liveness,
        cues,
    } = eyes;
    let Looked {
        stages,
        embedding,
        facts,
        face,
    } = out;
    embedding.0.clear();
    *face = None;
    if p.watch_blind {
        facts.blind = blind(frame);
    }
    let t0 = Instant::now();
    // Anti-tailgating needs every face counted; otherwise the largest is enough.
    let detection = if p.count_faces {
        let (largest, large, others) = pipeline.detect_counting(frame, p.min_face)?;
        facts.large_faces = large;
        facts.others = others;
        largest
    } else {
        pipeline.detect_largest(frame)?
    };
    let t1 = Instant::now();
    stages.detect += t1 - t0;
    let Some(det) = detection.as_ref() else {
        return Ok(Observation::NoFace);
    };
    let size = det.bbox.size();
    let mut seen = Seen {
        bbox: det.bbox,
        quality: Ok(()),
        nearest: None,
        embedding: &[],
        liveness: None,
        cues: None,
    };
    if size < p.min_face {
        return Ok(Observation::Face(seen));
    }
    let Some(chip) = pipeline.align(frame, det) else {
        return Ok(Observation::Lost);
    };
    if p.keep_face {
        *face = Some(det.landmarks);
    }
    // A poor face is not embedded: it cannot agree, and it saves the embedding's time.
    let template = &pipeline.embedder_spec().template;
    let measures = quality::measure(&chip, template, &det.landmarks);
    seen.quality = p.quality.judge(&measures);
    let t2 = Instant::now();
    stages.align += t2 - t1;
    if seen.quality.is_err() {
        tracing::debug!(size, ?measures, "poor face");
        return Ok(Observation::Face(seen));
    }
    *embedding = pipeline.embed_chip(&chip)?;
    let t3 = Instant::now();
    stages.embed += t3 - t2;
    // Judged in the acceptance rule (after the match); a network failure or missing networks
    // score NaN, which never agrees.
    // A stranger is refused as unknown before liveness counts: the networks run only for a face
    // that would be let in (NaN comparisons fail: no score, refused as a spoof).
    let would_pass = || {
        index
            .best(embedding)
            .is_some_and(|m| m.distance <= p.threshold && m.margin >= p.min_margin)
    };
    if p.liveness && would_pass() {
        facts.liveness_runs += 1;
        seen.liveness = Some(match liveness {
            Some(l) => l.score(frame, &det.bbox).unwrap_or(f32::NAN),
            None => f32::NAN,
        });
        stages.liveness += t3.elapsed();
    }
    if cues.any() {
        let t4 = Instant::now();
        let verdict = cues.check(pipeline, frame, taken, det);
        if let Err(cue) = verdict {
            tracing::debug!(cue = cue.as_str(), "presentation cue");
        }
        seen.cues = Some(verdict);
        stages.liveness += t4.elapsed();
    }
    Ok(Observation::Face(seen))
}

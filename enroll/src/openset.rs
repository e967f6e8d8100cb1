//! `facegate calibrate --open-set`: the door's 1:N question measured the way NIST FRVT measures
//! it (FPIR: strangers accepted as anybody; FNIR: employees not accepted as themselves), with the
//! door's own acceptance rule, over a grid of operating points and several gallery sizes.

use crate::output::Output;
use anyhow::{bail, Context, Result};
use facegate::access::acceptance::{FaceFacts, Nearest, QualityIssue, Rule};
use facegate::access::enrolment::{enrolment, enrolment_face_with, Checks};
use facegate::access::operating_point::{Calibration, OperatingPoint};
use facegate::people::gallery::{Gallery, Person, Scoring};
use facegate::vision::models::EmbedderManifest;
use facegate::vision::quality::{measure, QualityParams};
use facegate::{decode_file, Embedding, Pipeline};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to evaluate and how.
pub struct Options {
    /// `openset.csv` (role,person,image) or `DIR/<name>/<photos>`.
    pub source: PathBuf,
    /// Share of people held out as strangers (directory layout only).
    pub strangers: f64,
    /// Photos enrolled per person (directory layout only).
    pub enrol_photos: usize,
    /// Gallery sizes asked for.
    pub sizes: Vec<usize>,
    /// Random draws of a sub-gallery per size smaller than the whole gallery.
    pub draws: usize,
    /// Seed of the held-out split and of the draws.
    pub seed: u64,
    /// Largest acceptable FPIR at the largest size.
    pub target_fpir: f64,
    /// Largest acceptable false-match rate of the 1:1 check (a card or PIN named the person).
    pub target_fmr: f64,
    /// Thresholds to try (default: a grid around the model's threshold).
    pub thresholds: Option<Vec<f32>>,
    /// Margins to try (default: a grid scaled to the model's threshold).
    pub margins: Option<Vec<f32>>,
    /// How enrol photos are checked (as `import` / `import --strict`).
    pub checks: Checks,
    /// The door's rule as configured now (its `min_face` is used throughout; its threshold and
    /// margin are evaluated too).
    pub current: Rule,
    /// The door's quality gates (the config's `[recognition.quality]`): a probe face they refuse
    /// is refused here as at the door.
    pub quality: QualityParams,
    /// Embed each chip and its mirror image, averaged.
    pub flip: bool,
    /// Gallery sizes to give the door a threshold for (beyond the people enrolled: estimated).
    pub point_sizes: Vec<usize>,
    /// Text or JSON.
    pub output: Output,
}

/// Role of a photo in the open-set protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Enrol,
    Genuine,
    Impostor,
}

/// `(role, person, photo)` rows of an `openset.csv`; photos are relative to its folder.
fn read_csv(path: &Path) -> Result<Vec<(Role, String, PathBuf)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("role,")) {
            continue;
        }
        let mut f = line.splitn(3, ',');
        let (Some(role), Some(person), Some(image)) = (f.next(), f.next(), f.next()) else {
            bail!("{}:{}: expected role,person,image", path.display(), n + 1);
        };
        let role = match role.trim() {
            "enrol" | "enroll" => Role::Enrol,
            "genuine" => Role::Genuine,
            "impostor" => Role::Impostor,
            other => bail!(
                "{}:{}: role {other:?} is not enrol, genuine or impostor",
                path.display(),
                n + 1
            ),
        };
        rows.push((role, person.trim().to_owned(), base.join(image.trim())));
    }
    if !rows.iter().any(|r| r.0 == Role::Enrol) {
        bail!("{}: no enrol rows", path.display());
    }
    Ok(rows)
}

/// `DIR/<name>/<photos>` split into roles: a seeded share of the people are strangers (all
/// their photos impostor probes); the others are enrolled from their first `enrol_photos`
/// photos (sorted by name) and probed with the rest.
fn split_dir(
    dir: &Path,
    strangers: f64,
    enrol_photos: usize,
    seed: u64,
) -> Result<Vec<(Role, String, PathBuf)>> {
    let mut by_person: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for (name, photo) in crate::analysis::labelled_photos(dir)? {
        by_person.entry(name).or_default().push(photo);
    }
    let mut names: Vec<&String> = by_person.keys().collect();
    SplitMix64(seed).shuffle(&mut names);
    let held_out = ((strangers * names.len() as f64).round() as usize).min(names.len());
    let mut rows = Vec::new();
    for (k, name) in names.into_iter().enumerate() {
        for (i, photo) in by_person[name].iter().enumerate() {
            let role = if k < held_out {
                Role::Impostor
            } else if i < enrol_photos {
                Role::Enrol
            } else {
                Role::Genuine
            };
            rows.push((role, name.clone(), photo.clone()));
        }
    }
    Ok(rows)
}

/// A small seeded generator (SplitMix64), so that a seed names the same draws on every build.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// One probe photo, embedded once the way the door sees a frame: its largest face, embedded
/// only if it is at least `min_face`.
/// A probe's face: its size, the door's quality verdict, and its embedding when it is large
/// and good enough to embed.
type ProbeFace = (f32, Result<(), QualityIssue>, Option<Embedding>);

struct Probe {
    /// Index of the person in the full gallery (`None` for a stranger).
    person: Option<usize>,
    /// Shorter side of the face box, the door's quality verdict and, for a face large enough,
    /// its embedding; `None` when the photo has no usable face.
    face: Option<ProbeFace>,
}

#[derive(Serialize)]
struct Unusable {
    path: String,
    role: &'static str,
    reason: String,
}

/// Rates at one operating point and gallery size, pooled over the draws.
#[derive(Serialize, Clone, Copy)]
struct Rates {
    size: usize,
    fpir: f64,
    fnir: f64,
    /// Genuine probes accepted as somebody else (part of `fnir`).
    fnir_wrong_person: f64,
}

#[derive(Serialize, Clone)]
struct Point {
    threshold: f32,
    min_margin: f32,
    rates: Vec<Rates>,
}

#[derive(Serialize)]
struct SizeJson {
    requested: usize,
    size: usize,
    capped: bool,
    draws: usize,
    genuine_trials: usize,
    impostor_trials: usize,
}

#[derive(Serialize)]
struct Report {
    model: String,
    metric: String,
    model_threshold: f32,
    flip: bool,
    min_face: f32,
    source: String,
    seed: u64,
    enrolled_people: usize,
    enrolled_photos: usize,
    /// Enrolled photos that got a warning (under `--strict` they would have been refused).
    enrolled_with_warning: usize,
    enrol_skipped: Vec<String>,
    genuine_probes: usize,
    impostor_probes: usize,
    genuine_without_enrolment: usize,
    unusable_probes: Vec<Unusable>,
    sizes: Vec<SizeJson>,
    target_fpir: f64,
    current: Point,
    recommended: Option<Point>,
    /// The door's threshold by gallery size for `target_fpir` (the model's margin kept).
    by_size: Vec<SizePoint>,
    target_fmr: f64,
    /// The 1:1 check's threshold for `target_fmr`: a gallery of one (`fpir` is the false-match
    /// rate, `fnir` the false non-match rate).
    one_to_one: Option<SizePoint>,
    grid: Vec<Point>,
}

/// The threshold for one gallery size, with what it is expected to do there.
#[derive(Serialize, Clone, Copy)]
struct SizePoint {
    gallery: usize,
    threshold: f32,
    /// Expected FPIR: 1 - (1 - FMR)^N, FMR the share of stranger-to-enrolled comparisons
    /// within the threshold, extrapolated by a tail fit where too few are (see [`fmr`]); the
    /// margin rule is left out, so it is an upper bound as far as the fit holds.
    fpir: f64,
    /// Expected FNIR: each employee's own distance within the threshold and none of N - 1
    /// others within it plus the margin.
    fnir: f64,
    /// Measured at this size (a size the evaluation ran), for comparison.
    measured: Option<Rates>,
}

/// Distances of each probe to every enrolled person (nearest enrolment), for the estimates of
/// [`by_size`].
struct Distances {
    /// Impostor probes' distances to everyone, pooled and sorted.
    impostor: Vec<f32>,
    /// Genuine probes: own distance, and the others' distances sorted (`None`: no usable face).
    genuine: Vec<Option<(f32, Vec<f32>)>>,
}

fn distances(people: &[Person], probes: &[Probe], spec: &EmbedderManifest) -> Distances {
    let to = |e: &Embedding, p: &Person| {
        p.enrolments
            .iter()
            .map(|x| e.distance(&Embedding(x.embedding.clone()), spec.metric))
            .fold(f32::INFINITY, f32::min)
    };
    let mut impostor = Vec::new();
    let mut genuine = Vec::new();
    for probe in probes {
        let e = probe.face.as_ref().and_then(|f| f.2.as_ref());
        match probe.person {
            None => {
                if let Some(e) = e {
                    impostor.extend(people.iter().map(|p| to(e, p)));
                }
            }
            Some(own) => genuine.push(e.map(|e| {
                let mut others: Vec<f32> = people
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != own)
                    .map(|(_, p)| to(e, p))
                    .collect();
                others.sort_by(f32::total_cmp);
                (to(e, &people[own]), others)
            })),
        }
    }
    impostor.sort_by(f32::total_cmp);
    Distances { impostor, genuine }
}

/// Share of the sorted `v` below `x`.
fn below(v: &[f32], x: f32) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.partition_point(|&d| d < x) as f64 / v.len() as f64
}

/// Comparisons within a threshold below which the false-match rate is read off the tail fit.
const FEW: usize = 20;
/// The closest stranger comparisons the tail is fitted on.
const TAIL: usize = 200;

/// The false-match rate at `threshold`: the share of the sorted stranger comparisons `v`
/// within it, or, where fewer than [`FEW`] are (a gallery of thousands needs rates far below
/// what a few hundred thousand comparisons resolve), an exponential tail fitted on the
/// [`TAIL`] closest: log FMR linear in the distance, least squares. Zero comparisons within a
/// threshold is never read as a rate of zero.
fn fmr(v: &[f32], threshold: f32) -> f64 {
    let k = v.partition_point(|&d| d < threshold);
    if k >= FEW || v.len() < TAIL {
        return below(v, threshold);
    }
    let m = v.len() as f64;
    let pts: Vec<(f64, f64)> = v[..TAIL]
        .iter()
        .enumerate()
        .map(|(i, &d)| (f64::from(d), ((i + 1) as f64 / m).ln()))
        .collect();
    let (mx, my) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + x / TAIL as f64, b + y / TAIL as f64)
    });
    let (sxy, sxx) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if sxx <= 0.0 || sxy <= 0.0 {
        return below(v, threshold).max(1.0 / m);
    }
    let slope = sxy / sxx;
    (my + slope * (f64::from(threshold) - mx)).exp().min(1.0)
}

/// Expected FPIR and FNIR at a gallery of `n` people for `threshold` and `margin` (see
/// [`SizePoint`]): N-fold chances for a stranger, and for an employee N - 1 others who must all
/// stay a margin further away than their own enrolment.
fn expected(d: &Distances, n: usize, threshold: f32, margin: f32) -> (f64, f64) {
    let fmr = fmr(&d.impostor, threshold);
    let fpir = 1.0 - (1.0 - fmr).powf(n as f64);
    let accepted: f64 = d
        .genuine
        .iter()
        .map(|g| match g {
            Some((own, others)) if *own < threshold => {
                (1.0 - below(others, own + margin)).powf(n.saturating_sub(1) as f64)
            }
            _ => 0.0,
        })
        .sum();
    let fnir = if d.genuine.is_empty() {
        f64::NAN
    } else {
        1.0 - accepted / d.genuine.len() as f64
    };
    (fpir, fnir)
}

/// For each size, the largest threshold of `thresholds` (the fewest employees refused) whose
/// expected FPIR is within `target`, never above `ceiling` (the model's calibrated range).
fn by_size(
    d: &Distances,
    sizes: &[usize],
    thresholds: &[f32],
    margin: f32,
    target: f64,
    ceiling: f32,
) -> Vec<SizePoint> {
    let mut ts: Vec<f32> = thresholds
        .iter()
        .copied()
        .filter(|&t| t <= ceiling)
        .collect();
    ts.sort_by(f32::total_cmp);
    let mut out: Vec<SizePoint> = Vec::new();
    for &n in sizes {
        let best = ts
            .iter()
            .rev()
            .map(|&t| (t, expected(d, n, t, margin)))
            .find(|(_, (fpir, _))| *fpir <= target);
        if let Some((threshold, (fpir, fnir))) = best {
            // Never looser for a larger gallery than for a smaller one.
            let threshold = out.last().map_or(threshold, |p| threshold.min(p.threshold));
            let (fpir, fnir) = if out.last().is_some_and(|p| p.threshold == threshold) {
                expected(d, n, threshold, margin)
            } else {
                (fpir, fnir)
            };
            out.push(SizePoint {
                gallery: n,
                threshold,
                fpir,
                fnir,
                measured: None,
            });
        }
    }
    out
}

/// The nearest enrolled person of each usable probe, for one sub-gallery.
fn nearest_in(
    sub: &[usize],
    people: &[Person],
    spec: &EmbedderManifest,
    probes: &[Probe],
) -> Vec<Trial> {
    let mut g = Gallery::new(&spec.fingerprint);
    g.people = sub.iter().map(|&i| people[i].clone()).collect();
    let index = g.index(Scoring::of(spec));
    let mut member = vec![false; people.len()];
    for &i in sub {
        member[i] = true;
    }
    probes
        .iter()
        .filter(|p| p.person.is_none_or(|i| member[i]))
        .map(|p| Trial {
            person: p.person,
            facts: p.face.as_ref().map(|(size, quality, e)| FaceFacts {
                size: *size,
                quality: *quality,
                nearest: e.as_ref().and_then(|e| index.best(e)).map(|m| Nearest {
                    person: sub[m.person],
                    distance: m.distance,
                    margin: m.margin,
                }),
                liveness: None,
                cues: None,
            }),
        })
        .collect()
}

/// One probe against one sub-gallery.
struct Trial {
    person: Option<usize>,
    facts: Option<FaceFacts>,
}

/// FPIR, FNIR and wrong-person share of `rule` over `trials`.
fn rates(rule: &Rule, trials: &[Trial], size: usize) -> Rates {
    let (mut gen, mut miss, mut wrong, mut imp, mut fp) = (0usize, 0usize, 0usize, 0usize, 0usize);
    for t in trials {
        let verdict = t.facts.as_ref().map(|f| rule.judge(f));
        let accepted = verdict.and_then(|v| v.ok()).map(|n| n.person);
        match t.person {
            Some(p) => {
                gen += 1;
                match accepted {
                    Some(q) if q == p => {}
                    Some(_) => {
                        miss += 1;
                        wrong += 1;
                    }
                    None => miss += 1,
                }
            }
            None => {
                imp += 1;
                fp += usize::from(accepted.is_some());
            }
        }
    }
    let share = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    Rates {
        size,
        fpir: share(fp, imp),
        fnir: share(miss, gen),
        fnir_wrong_person: share(wrong, gen),
    }
}

/// The default grid: thresholds from 0.4 to 1.1 times the model's, margins up to 0.3 times it
/// (rounded to 3 decimals so that a written config reads back the value evaluated).
fn default_grid(model_threshold: f32) -> (Vec<f32>, Vec<f32>) {
    let r = |v: f32| (v * 1000.0).round() / 1000.0;
    let thresholds = (16..=44)
        .map(|k| r(model_threshold * k as f32 * 0.025))
        .collect();
    let margins = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3]
        .iter()
        .map(|k| r(model_threshold * k))
        .collect();
    (thresholds, margins)
}

/// The operating point with the lowest FNIR whose FPIR is within `target` at the largest size
/// (ties: lower FPIR, then the stricter threshold, then the larger margin).
fn recommend(grid: &[Point], target: f64) -> Option<Point> {
    grid.iter()
        .filter(|p| p.rates.last().is_some_and(|r| r.fpir <= target))
        .min_by(|a, b| {
            let (ra, rb) = (a.rates.last().unwrap(), b.rates.last().unwrap());
            ra.fnir
                .total_cmp(&rb.fnir)
                .then(ra.fpir.total_cmp(&rb.fpir))
                .then(a.threshold.total_cmp(&b.threshold))
                .then(b.min_margin.total_cmp(&a.min_margin))
        })
        .cloned()
}

/// The result of [`run`]: the operating point recommended, if any.
pub struct Recommendation {
    /// The threshold.
    pub threshold: f32,
    /// The margin.
    pub min_margin: f32,
}

/// `facegate calibrate --open-set`.
pub fn run(pipeline: &mut Pipeline, o: &Options) -> Result<Outcome> {
    if !(0.0..=1.0).contains(&o.target_fmr) {
        bail!("--target-fmr must be in [0, 1] (got {})", o.target_fmr);
    }
    if !(0.0..=1.0).contains(&o.target_fpir) {
        bail!("--target-fpir must be in [0, 1] (got {})", o.target_fpir);
    }
    if !(0.0..1.0).contains(&o.strangers) {
        bail!("--strangers must be in [0, 1) (got {})", o.strangers);
    }
    if o.sizes.is_empty() || o.sizes.contains(&0) || o.draws == 0 || o.enrol_photos == 0 {
        bail!("--sizes, --draws and --enrol-photos must be at least 1");
    }
    let rows = if o.source.is_dir() {
        split_dir(&o.source, o.strangers, o.enrol_photos, o.seed)?
    } else {
        read_csv(&o.source)?
    };
    pipeline.set_flip(o.flip);
    let spec = pipeline.embedder_spec().clone();
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Enrolment first (the way `import` checks each photo), so probes know their person.
    let mut people: Vec<Person> = Vec::new();
    let mut enrol_skipped = Vec::new();
    let mut enrolled_photos = 0;
    let mut enrol_warnings = 0;
    for (_, name, photo) in rows.iter().filter(|r| r.0 == Role::Enrol) {
        bar.set_message(name.clone());
        match enrolment_face_with(pipeline, photo, o.checks).and_then(|f| enrolment(photo, f)) {
            Ok(new) => {
                enrolled_photos += 1;
                enrol_warnings += usize::from(!new.warnings.is_empty());
                let e = new.enrolment;
                match people.iter_mut().find(|p| &p.name == name) {
                    Some(p) => p.enrolments.push(e),
                    None => people.push(Person {
                        policy: Default::default(),
                        id: format!("p{}", people.len()),
                        name: name.clone(),
                        enrolments: vec![e],
                        credential: None,
                        pin_hash: None,
                        duress_hash: None,
                    }),
                }
            }
            Err(e) => enrol_skipped.push(format!("{e}")),
        }
        bar.inc(1);
    }
    if people.is_empty() {
        bar.finish_and_clear();
        bail!(
            "no enrol photo could be enrolled: {}",
            enrol_skipped.join("; ")
        );
    }
    let mut probes = Vec::new();
    let mut unusable = Vec::new();
    let mut orphans = 0;
    let (mut genuine, mut impostor) = (0, 0);
    for (role, name, photo) in rows.iter().filter(|r| r.0 != Role::Enrol) {
        bar.set_message(name.clone());
        bar.inc(1);
        let person = match role {
            Role::Genuine => match people.iter().position(|p| &p.name == name) {
                Some(i) => Some(i),
                None => {
                    // Their enrolment was refused (or missing): not a test of the door.
                    orphans += 1;
                    continue;
                }
            },
            _ => None,
        };
        let role_name = if person.is_some() {
            genuine += 1;
            "genuine"
        } else {
            impostor += 1;
            "impostor"
        };
        let face = match probe_face(pipeline, photo, o.current.min_face, &o.quality) {
            Ok(f) => Some(f),
            Err(reason) => {
                unusable.push(Unusable {
                    path: photo.display().to_string(),
                    role: role_name,
                    reason,
                });
                None
            }
        };
        probes.push(Probe { person, face });
    }
    bar.finish_and_clear();

    let (thresholds, margins) = match (&o.thresholds, &o.margins) {
        (Some(t), Some(m)) => (t.clone(), m.clone()),
        (t, m) => {
            let (dt, dm) = default_grid(spec.threshold);
            (t.clone().unwrap_or(dt), m.clone().unwrap_or(dm))
        }
    };
    let mut sizes: Vec<(usize, usize)> =
        o.sizes.iter().map(|&s| (s, s.min(people.len()))).collect();
    sizes.sort_by_key(|s| s.1);
    sizes.dedup_by_key(|s| s.1);
    let mut rng = SplitMix64(o.seed ^ 0x5eed);
    let mut size_json = Vec::new();
    let mut trials_by_size = Vec::new();
    for &(requested, n) in &sizes {
        let draws = if n == people.len() { 1 } else { o.draws };
        let mut trials = Vec::new();
        let mut all: Vec<usize> = (0..people.len()).collect();
        for _ in 0..draws {
            rng.shuffle(&mut all);
            trials.extend(nearest_in(&all[..n], &people, &spec, &probes));
        }
        let g = trials.iter().filter(|t| t.person.is_some()).count();
        size_json.push(SizeJson {
            requested,
            size: n,
            capped: requested > n,
            draws,
            genuine_trials: g,
            impostor_trials: trials.len() - g,
        });
        trials_by_size.push((n, trials));
    }
    let point = |threshold: f32, min_margin: f32| {
        let rule = Rule {
            threshold,
            min_margin,
            min_face: o.current.min_face,
            min_liveness: None,
            cues: false,
        };
        Point {
            threshold,
            min_margin,
            rates: trials_by_size
                .iter()
                .map(|(n, t)| rates(&rule, t, *n))
                .collect(),
        }
    };
    let grid: Vec<Point> = thresholds
        .iter()
        .flat_map(|&t| margins.iter().map(move |&m| (t, m)))
        .map(|(t, m)| point(t, m))
        .collect();
    let dist = distances(&people, &probes, &spec);
    // A claim is checked against one person: a gallery of one, where the margin plays no part.
    let one_to_one = by_size(
        &dist,
        &[1],
        &thresholds,
        0.0,
        o.target_fmr,
        facegate::config::max_calibrated_threshold(spec.threshold),
    )
    .pop();
    let mut by_size = by_size(
        &dist,
        &o.point_sizes,
        &thresholds,
        o.current.min_margin,
        o.target_fpir,
        facegate::config::max_calibrated_threshold(spec.threshold),
    );
    for p in &mut by_size {
        if let Some(r) = point(p.threshold, o.current.min_margin)
            .rates
            .into_iter()
            .find(|r| r.size == p.gallery)
        {
            p.measured = Some(r);
        }
    }
    let report = Report {
        model: pipeline.embedder_name().to_owned(),
        metric: format!("{:?}", spec.metric).to_lowercase(),
        model_threshold: spec.threshold,
        flip: o.flip,
        min_face: o.current.min_face,
        source: o.source.display().to_string(),
        seed: o.seed,
        enrolled_people: people.len(),
        enrolled_photos,
        enrolled_with_warning: enrol_warnings,
        enrol_skipped,
        genuine_probes: genuine,
        impostor_probes: impostor,
        genuine_without_enrolment: orphans,
        unusable_probes: unusable,
        sizes: size_json,
        target_fpir: o.target_fpir,
        current: point(o.current.threshold, o.current.min_margin),
        recommended: recommend(&grid, o.target_fpir),
        by_size,
        target_fmr: o.target_fmr,
        one_to_one,
        grid,
    };
    match o.output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Text => {
            print_text(&report);
        }
    }
    Ok(Outcome {
        recommended: report.recommended.map(|p| Recommendation {
            threshold: p.threshold,
            min_margin: p.min_margin,
        }),
        calibration: (!report.by_size.is_empty()).then(|| Calibration {
            model: spec.fingerprint.clone(),
            target_fpir: o.target_fpir,
            source: format!(
                "{}: {} people enrolled, {} genuine and {} impostor probes, margin {:.3}",
                report.source,
                report.enrolled_people,
                report.genuine_probes,
                report.impostor_probes,
                o.current.min_margin
            ),
            point: report.by_size.iter().map(written).collect(),
            one_to_one: report.one_to_one.as_ref().map(written),
        }),
    })
}

/// A point as a calibration file says it.
fn written(p: &SizePoint) -> OperatingPoint {
    OperatingPoint {
        gallery: p.gallery,
        threshold: (f64::from(p.threshold) * 1e4).round() / 1e4,
        fpir: round(p.fpir),
        fnir: round(p.fnir),
        // One photo per person here; scripts/eval_multiphoto.py measures more.
        fnir_2: None,
        fnir_3: None,
    }
}

/// Six decimals: what a written file says.
fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// What [`run`] found: the point recommended at the largest size, and the thresholds by size.
pub struct Outcome {
    /// At the largest size evaluated, if any point meets the target.
    pub recommended: Option<Recommendation>,
    /// By gallery size (`--write-points`).
    pub calibration: Option<Calibration>,
}

/// The probe's largest face as the door would see it: its size and, when at least `min_face`,
/// its embedding. `Err` with the reason when the photo has no usable face.
fn probe_face(
    pipeline: &mut Pipeline,
    photo: &Path,
    min_face: f32,
    gates: &QualityParams,
) -> Result<ProbeFace, String> {
    let img = decode_file(photo).map_err(|e| e.to_string())?;
    let det = pipeline
        .detect_largest(&img)
        .map_err(|e| e.to_string())?
        .ok_or("no face found")?;
    let size = det.bbox.size();
    if size < min_face {
        return Ok((size, Ok(()), None));
    }
    let chip = pipeline.align(&img, &det).ok_or("degenerate landmarks")?;
    // As at the door: a face too poor to judge is not embedded.
    let template = pipeline.embedder_spec().template;
    let quality = gates.judge(&measure(&chip, &template, &det.landmarks));
    if quality.is_err() {
        return Ok((size, quality, None));
    }
    let e = pipeline.embed_chip(&chip).map_err(|e| e.to_string())?;
    Ok((size, quality, Some(e)))
}

fn print_text(r: &Report) {
    for s in &r.enrol_skipped {
        println!("not enrolled: {s}");
    }
    for u in &r.unusable_probes {
        println!(
            "no usable face ({} probe, counted as refused): {}: {}",
            u.role, u.path, u.reason
        );
    }
    println!(
        "{}: {} people enrolled from {} photo(s) ({} with a warning, {} refused); {} genuine \
         probes, {} impostor probes ({} without a usable face); {} genuine probes of people not \
         enrolled left out",
        r.source,
        r.enrolled_people,
        r.enrolled_photos,
        r.enrolled_with_warning,
        r.enrol_skipped.len(),
        r.genuine_probes,
        r.impostor_probes,
        r.unusable_probes.len(),
        r.genuine_without_enrolment
    );
    println!(
        "model {} ({} distance, model threshold {:.3}{}); the door's rule with min_face {:.0} px",
        r.model,
        r.metric,
        r.model_threshold,
        if r.flip { ", flip averaged" } else { "" },
        r.min_face
    );
    for s in &r.sizes {
        println!(
            "gallery of {}{}: {} random draw(s) (seed {}), rates pooled over {} genuine and {} impostor trials",
            s.size,
            if s.capped {
                format!(" (asked {}, capped to the people enrolled)", s.requested)
            } else {
                String::new()
            },
            s.draws,
            r.seed,
            s.genuine_trials,
            s.impostor_trials
        );
    }
    println!("FPIR: strangers accepted as anybody; FNIR: employees not accepted as themselves (wrong: accepted as someone else)");
    let (mut sizes, mut head) = (" ".repeat(17), String::from("threshold  margin"));
    for s in &r.sizes {
        sizes += &format!(" | {:^22}", format!("{} enrolled", s.size));
        head += " |   FPIR    FNIR   wrong";
    }
    println!("{sizes}\n{head}");
    let row = |p: &Point| {
        let mut line = format!("{:>9.3}  {:>6.3}", p.threshold, p.min_margin);
        for x in &p.rates {
            line += &format!(
                " | {:>6.4}  {:>6.4}  {:>6.4}",
                x.fpir, x.fnir, x.fnir_wrong_person
            );
        }
        line
    };
    for p in &r.grid {
        println!("{}", row(p));
    }
    println!("current config:\n{}", row(&r.current));
    println!(
        "the door's threshold by gallery size for FPIR <= {} per photo (margin {:.3} kept; \
         expected FPIR = 1 - (1 - FMR)^N, FMR fitted on the closest stranger comparisons where fewer than 20 are within, margin left out; expected FNIR from each employee's own \
         and N - 1 others' distances; measured where the size was evaluated):",
        r.target_fpir, r.current.min_margin
    );
    println!("  gallery  threshold | expected FPIR  FNIR | measured FPIR  FNIR");
    for p in &r.by_size {
        let measured = p.measured.map_or("           -       -".to_owned(), |m| {
            format!("      {:>7.4}  {:>6.4}", m.fpir, m.fnir)
        });
        println!(
            "  {:>7}  {:>9.3} |      {:>7.4}  {:>6.4} |{measured}",
            p.gallery, p.threshold, p.fpir, p.fnir
        );
    }
    match &r.one_to_one {
        Some(p) => println!(
            "the 1:1 check of a card or PIN (the face against the one person named) for a false \
             match rate <= {}: threshold {:.3}, expected false matches {:.5}, false non-matches {:.4} per photo",
            r.target_fmr, p.threshold, p.fpir, p.fnir
        ),
        None => println!(
            "the 1:1 check: no threshold tried keeps false matches <= {}",
            r.target_fmr
        ),
    }
    match &r.recommended {
        Some(p) => println!(
            "recommended for FPIR <= {} at {} enrolled: threshold {:.3}, min_margin {:.3}\n{}",
            r.target_fpir,
            p.rates.last().map_or(0, |x| x.size),
            p.threshold,
            p.min_margin,
            row(p)
        ),
        None => println!(
            "no operating point of the grid keeps FPIR <= {} at the largest size",
            r.target_fpir
        ),
    }
}

/// Writes `threshold` and `min_margin` into `[recognition]` of the config at `path` (created if
/// missing), keeping the rest of the file and its comments; refused, with nothing written, if
/// the daemon would not accept the result.
pub fn write_config(path: &Path, threshold: f32, min_margin: f32) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let rec = doc
        .entry("recognition")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .with_context(|| format!("{}: recognition is not a table", path.display()))?;
    // f32 -> f64 through 4 decimals, so the file says 0.42, not 0.41999998688697815.
    let v = |x: f32| toml_edit::value((f64::from(x) * 1e4).round() / 1e4);
    rec.insert("threshold", v(threshold));
    rec.insert("min_margin", v(min_margin));
    let out = doc.to_string();
    facegate::config::Config::parse(&out, path)
        .context("the daemon would refuse the new config; nothing written")?;
    write_keeping_mode(path, out.as_bytes())
}

/// Atomic replace (temporary file in the same folder, fsync, rename) that keeps an existing
/// file's permissions (a config is not secret, unlike the gallery).
fn write_keeping_mode(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let ctx = || format!("writing {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".config-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .with_context(ctx)?;
    tmp.write_all(bytes).with_context(ctx)?;
    tmp.as_file().sync_all().with_context(ctx)?;
    tmp.persist(path).map_err(|e| e.error).with_context(ctx)?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(ctx)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(person: Option<usize>, nearest: usize, distance: f32, margin: f32) -> Trial {
        Trial {
            person,
            facts: Some(FaceFacts {
                size: 100.0,
                quality: Ok(()),
                nearest: Some(Nearest {
                    person: nearest,
                    distance,
                    margin,
                }),
                liveness: None,
                cues: None,
            }),
        }
    }

    #[test]
    fn rates_count_strangers_in_misses_and_wrong_people() {
        let rule = Rule {
            threshold: 0.5,
            min_margin: 0.05,
            min_face: 80.0,
            min_liveness: None,
            cues: false,
        };
        let trials = [
            trial(Some(1), 1, 0.3, 0.2),  // accepted as themselves
            trial(Some(2), 1, 0.3, 0.2),  // accepted as someone else
            trial(Some(3), 3, 0.3, 0.01), // ambiguous: refused
            Trial {
                person: Some(4),
                facts: None, // no usable face: refused
            },
            trial(None, 1, 0.4, 0.3), // stranger let in
            trial(None, 1, 0.7, 0.3), // stranger kept out
        ];
        let r = rates(&rule, &trials, 10);
        assert_eq!(r.fnir, 0.75);
        assert_eq!(r.fnir_wrong_person, 0.25);
        assert_eq!(r.fpir, 0.5);
    }

    #[test]
    fn the_recommendation_is_the_lowest_fnir_within_the_target() {
        let p = |threshold: f32, fpir: f64, fnir: f64| Point {
            threshold,
            min_margin: 0.0,
            rates: vec![Rates {
                size: 100,
                fpir,
                fnir,
                fnir_wrong_person: 0.0,
            }],
        };
        let grid = [p(0.4, 0.0, 0.5), p(0.5, 0.001, 0.3), p(0.6, 0.01, 0.1)];
        assert_eq!(recommend(&grid, 0.001).unwrap().threshold, 0.5);
        assert_eq!(recommend(&grid, 0.0).unwrap().threshold, 0.4);
        assert!(recommend(&grid[2..], 0.001).is_none());
    }

    #[test]
    fn a_seed_names_the_same_split() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        SplitMix64(7).shuffle(&mut a);
        SplitMix64(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn write_config_keeps_comments_and_the_daemon_accepts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# site config\n[lock]\ngpio = 22 # relay\n\n[recognition]\n# the door's margin\nmin_margin = 0.05\nframes = 4\n",
        )
        .unwrap();
        write_config(&path, 0.42, 0.03).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# site config") && text.contains("# relay"),
            "{text}"
        );
        let c = facegate::config::Config::load(&path).unwrap();
        assert_eq!(c.recognition.threshold, Some(0.42));
        assert_eq!(c.recognition.min_margin, Some(0.03));
        assert_eq!(c.recognition.frames, 4);
        assert_eq!(c.lock.gpio, 22);
        // A missing file is created with the section.
        let fresh = dir.path().join("new.toml");
        write_config(&fresh, 0.5, 0.0).unwrap();
        let c = facegate::config::Config::load(&fresh).unwrap();
        assert_eq!(c.recognition.threshold, Some(0.5));
        // A value the daemon refuses leaves the file untouched.
        assert!(write_config(&path, 9.0, 0.0).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}

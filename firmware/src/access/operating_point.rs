//! The operating point follows the gallery: which threshold the door uses for the number of
//! people enrolled. A stranger's chance of being nearest to *someone* within the threshold grows
//! with the gallery, so one threshold for 10 people and for 1,000 lets strangers in at a big
//! site. A calibration (`facegate calibrate --open-set --write-points`) gives a threshold per
//! gallery size for a target FPIR, with the FPIR/FNIR expected there; the door takes the point
//! for the smallest calibrated size at least as large as its gallery, and again at every reload.
//!
//! Who wins: the config's own `recognition.threshold` (a site's fixed choice), then the site's
//! calibration file (`recognition.calibration`), then the model's manifest, then the model's
//! single threshold. The margin is the config's or the model's throughout (the calibration
//! chooses thresholds only).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::vision::models::{check_points, OperatingPoint};

/// A calibration file: the points for one model, from `facegate calibrate --open-set
/// --write-points`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The model's fingerprint: points of another model mean nothing.
    pub model: String,
    /// The FPIR each point keeps to.
    pub target_fpir: f64,
    /// What was measured (photos, protocol).
    pub source: String,
    /// By gallery size.
    pub point: Vec<OperatingPoint>,
    /// The 1:1 check's threshold (a card or PIN named the person): see [`one_to_one`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_to_one: Option<OperatingPoint>,
}

/// Why a calibration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// Unreadable.
    #[error("reading the calibration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a calibration.
    #[error("the calibration {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Calibration {
    /// Reads and checks a calibration file for the model `fingerprint`.
    pub fn load(path: &Path, fingerprint: &str) -> Result<Self, CalibrationError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalibrationError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, fingerprint).map_err(|message| CalibrationError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks a calibration for the model `fingerprint`.
    pub fn parse(text: &str, fingerprint: &str) -> Result<Self, String> {
        let c: Calibration = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.model != fingerprint {
            return Err(format!(
                "it was made for the model {:?}, the door runs {fingerprint:?}",
                c.model
            ));
        }
        check_points(&c.point)?;
        if let Some(p) = &c.one_to_one {
            if p.gallery != 1 {
                return Err(format!("one_to_one: gallery must be 1, not {}", p.gallery));
            }
            check_points(std::slice::from_ref(p)).map_err(|m| format!("one_to_one: {m}"))?;
        }
        Ok(c)
    }

    /// As TOML, with a comment saying where it came from.
    pub fn to_toml(&self) -> String {
        format!(
            "# facegate operating points: the door's threshold by gallery size (recognition.calibration).\n\
             # Made by `facegate calibrate --open-set --write-points`; edit by re-running it.\n{}",
            toml::to_string(self).unwrap_or_default()
        )
    }
}

/// Where the threshold in use comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `recognition.threshold` in the config (for the 1:1 check: `access.factor_threshold`).
    Config,
    /// The site's calibration file.
    Site(PathBuf),
    /// The model's manifest.
    Manifest,
    /// The model's single threshold (its manifest has no points).
    Model,
}

/// The threshold the door uses for its gallery now, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// The threshold.
    pub threshold: f32,
    /// People enrolled when chosen.
    pub gallery: usize,
    /// Where it comes from.
    pub source: Source,
    /// The calibrated point used (none for a threshold from the config or the model).
    pub point: Option<OperatingPoint>,
    /// The gallery is larger than the largest calibrated size: that point's figures are
    /// optimistic for it.
    pub beyond: bool,
    /// The threshold of the 1:1 check a card or PIN asks for, not of the 1:N search.
    pub one_to_one: bool,
}

impl Chosen {
    /// One line for the log and the audit: threshold, source, expected rates.
    pub fn describe(&self) -> String {
        let from = match &self.source {
            Source::Config if self.one_to_one => "access.factor_threshold".to_owned(),
            Source::Config => "recognition.threshold".to_owned(),
            Source::Site(p) => format!("the site's calibration {}", p.display()),
            Source::Manifest => "the model's calibration".to_owned(),
            Source::Model => "the model's threshold (no calibration by gallery size)".to_owned(),
        };
        let mut s = if self.one_to_one {
            format!(
                "1:1 check of a card or PIN: threshold {:.3} from {from}",
                self.threshold
            )
        } else {
            format!(
                "operating point for {} people: threshold {:.3} from {from}",
                self.gallery, self.threshold
            )
        };
        if let Some(p) = self.point.filter(|_| self.one_to_one) {
            s += &format!(
                " (expected false match {:.3}%, false non-match {:.1}% per photo)",
                p.fpir * 100.0,
                p.fnir * 100.0
            );
        } else if let Some(p) = self.point {
            s += &format!(
                " (calibrated at {} people: expected FPIR {:.2}%, FNIR {:.1}% per photo",
                p.gallery,
                p.fpir * 100.0,
                p.fnir * 100.0
            );
            if self.beyond {
                s += "; the gallery is larger than any calibrated size: expect more strangers matched";
            }
            s += ")";
        }
        s
    }
}

/// How many photos per person a site's target FNIR (`recognition.target_fnir`) needs at the
/// operating point its gallery is at: the fewest whose expected FNIR meets it, else the most
/// measured (the manifest's `fnir_2`, `fnir_3`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoAdvice {
    /// People enrolled.
    pub gallery: usize,
    /// The site's target.
    pub target: f64,
    /// Photos per person advised (1: one photo each is enough, or nothing more was measured).
    pub photos: usize,
    /// Expected FNIR with one photo each.
    pub fnir_one: f64,
    /// Expected FNIR with `photos` each.
    pub fnir_advised: f64,
}

/// The most photos per person the operating points give a figure for.
pub const MOST_PHOTOS_MEASURED: usize = 3;

impl PhotoAdvice {
    /// The advice for the point `chosen` and the site's `target`; `None` when the threshold
    /// is not a calibrated point (set in the config, or a model without points): no figures.
    pub fn for_point(chosen: &Chosen, target: f64) -> Option<Self> {
        let p = chosen.point?;
        let mut advice = Self {
            gallery: chosen.gallery,
            target,
            photos: 1,
            fnir_one: p.fnir,
            fnir_advised: p.fnir,
        };
        for n in 2..=MOST_PHOTOS_MEASURED {
            if advice.fnir_advised <= target {
                break;
            }
            let Some(f) = p.fnir_with(n) else { break };
            advice.photos = n;
            advice.fnir_advised = f;
        }
        Some(advice)
    }

    /// Whether the advised number keeps to the target.
    pub fn meets_target(&self) -> bool {
        self.fnir_advised <= self.target
    }

    /// The admin's line when one photo each is not enough, else `None`; `fewer` people have
    /// fewer photos than advised.
    pub fn line(&self, fewer: usize) -> Option<String> {
        if self.photos < 2 {
            return None;
        }
        let words = ["", "one", "two", "three"];
        let word = words.get(self.photos).copied().unwrap_or("more");
        let still = if self.meets_target() {
            String::new()
        } else {
            format!(
                ", still above the site's target of {:.1}% (recognition.target_fnir): the most measured",
                self.target * 100.0
            )
        };
        let who = match fewer {
            0 => "everyone has as many".to_owned(),
            1 => "1 person has fewer: facegate list --fewer-photos".to_owned(),
            n => format!("{n} people have fewer: facegate list --fewer-photos"),
        };
        Some(format!(
            "at {} the door expects {:.1}% of employees refused with one photo each, {:.1}% \
             with {word}{still}: enrol {} photos per person ({who})",
            people(self.gallery),
            self.fnir_one * 100.0,
            self.fnir_advised * 100.0,
            self.photos
        ))
    }
}

/// "1 person", "1,000 people".
pub fn people(n: usize) -> String {
    if n == 1 {
        "1 person".into()
    } else {
        format!("{} people", thousands(n))
    }
}

/// 1234567 as "1,234,567".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The point of `points` (growing sizes) for a gallery of `people`: the smallest calibrated size
/// at least as large (never a looser threshold than the size calls for), else the largest.
pub fn point_for(points: &[OperatingPoint], people: usize) -> Option<(OperatingPoint, bool)> {
    match points.iter().find(|p| p.gallery >= people) {
        Some(p) => Some((*p, false)),
        None => points.last().map(|p| (*p, true)),
    }
}

/// The threshold for a gallery of `people`: the config's own threshold wins, then the site's
/// calibration, then the manifest's points, then the model's threshold.
pub fn choose(
    people: usize,
    config_threshold: Option<f32>,
    site: Option<(&Path, &Calibration)>,
    manifest: &[OperatingPoint],
    model_threshold: f32,
) -> Chosen {
    let at = |threshold, source, point: Option<(OperatingPoint, bool)>| Chosen {
        threshold,
        gallery: people,
        source,
        point: point.map(|p| p.0),
        beyond: point.is_some_and(|p| p.1),
        one_to_one: false,
    };
    if let Some(t) = config_threshold {
        return at(t, Source::Config, None);
    }
    if let Some((path, c)) = site {
        if let Some(p) = point_for(&c.point, people) {
            return at(p.0.threshold as f32, Source::Site(path.to_owned()), Some(p));
        }
    }
    match point_for(manifest, people) {
        Some(p) => at(p.0.threshold as f32, Source::Manifest, Some(p)),
        None => at(model_threshold, Source::Model, None),
    }
}

/// The threshold of the 1:1 check when a card or PIN names the person: the face is compared
/// with that person only, so a stranger has one chance, not one per person enrolled, and the
/// threshold can be looser than the search's (fewer employees refused at the same risk). The
/// config's `access.factor_threshold` wins, then the site's calibration, then the model's
/// manifest, then the model's single threshold.
pub fn one_to_one(
    config_threshold: Option<f32>,
    site: Option<(&Path, &Calibration)>,
    manifest: Option<OperatingPoint>,
    model_threshold: f32,
) -> Chosen {
    let at = |threshold, source, point: Option<OperatingPoint>| Chosen {
        threshold,
        gallery: 1,
        source,
        point,
        beyond: false,
        one_to_one: true,
    };
    if let Some(t) = config_threshold {
        return at(t, Source::Config, None);
    }
    if let Some((
        path,
        Calibration {
            one_to_one: Some(p),
            ..
        },
    )) = site
    {
        return at(p.threshold as f32, Source::Site(path.to_owned()), Some(*p));
    }
    match manifest {
        Some(p) => at(p.threshold as f32, Source::Manifest, Some(p)),
        None => at(model_threshold, Source::Model, None),
    }
}

/// The threshold a door with `config`, running the model `spec`, uses for a gallery of
/// `people`: what the daemon decides at start and the CLI's judging commands use too.
pub fn for_config(
    config: &crate::config::Config,
    spec: &crate::vision::models::EmbedderManifest,
    people: usize,
) -> Result<Chosen, CalibrationError> {
    let site = config
        .recognition
        .calibration
        .as_ref()
        .map(|p| Calibration::load(p, &spec.fingerprint).map(|c| (p.clone(), c)))
        .transpose()?;
    Ok(choose(
        people,
        config.recognition.threshold,
        site.as_ref().map(|(p, c)| (p.as_path(), c)),
        &spec.operating_points,
        spec.threshold,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts() -> Vec<OperatingPoint> {
        [(10, 0.55), (100, 0.5), (1000, 0.45)]
            .iter()
            .map(|&(gallery, threshold)| OperatingPoint {
                gallery,
                threshold,
                fpir: 0.001,
                fnir: 0.05,
                fnir_2: None,
                fnir_3: None,
            })
            .collect()
    }

    #[test]
    fn a_gallery_takes_the_point_of_the_smallest_calibrated_size_at_least_as_large() {
        let p = pts();
        assert_eq!(point_for(&p, 1).unwrap().0.threshold, 0.55);
        assert_eq!(point_for(&p, 10).unwrap().0.threshold, 0.55);
        assert_eq!(point_for(&p, 11).unwrap().0.threshold, 0.5);
        assert_eq!(point_for(&p, 1000).unwrap().0.threshold, 0.45);
        let (beyond, is_beyond) = point_for(&p, 5000).unwrap();
        assert_eq!((beyond.threshold, is_beyond), (0.45, true));
        assert!(point_for(&[], 10).is_none());
    }

    #[test]
    fn the_configs_threshold_wins_then_the_sites_calibration_then_the_manifest() {
        let manifest = pts();
        let site = Calibration {
            model: "m".into(),
            target_fpir: 0.001,
            source: "site".into(),
            point: vec![OperatingPoint {
                gallery: 2000,
                threshold: 0.4,
                fpir: 0.001,
                fnir: 0.1,
                fnir_2: None,
                fnir_3: None,
            }],
            one_to_one: None,
        };
        let path = Path::new("/var/lib/facegate/calibration.toml");
        assert_eq!(
            choose(500, Some(0.6), Some((path, &site)), &manifest, 0.5).source,
            Source::Config
        );
        let c = choose(500, None, Some((path, &site)), &manifest, 0.5);
        assert_eq!((c.threshold, c.source), (0.4, Source::Site(path.into())));
        let c = choose(500, None, None, &manifest, 0.5);
        assert_eq!((c.threshold, c.source.clone()), (0.45, Source::Manifest));
        assert!(
            c.describe().contains("500 people: threshold 0.450"),
            "{}",
            c.describe()
        );
        let c = choose(500, None, None, &[], 0.5);
        assert_eq!((c.threshold, c.source), (0.5, Source::Model));
    }

    #[test]
    fn a_calibration_of_another_model_or_with_disordered_points_is_refused() {
        let good = Calibration {
            model: "sface/1".into(),
            target_fpir: 0.001,
            source: "lfw_dev".into(),
            point: pts(),
            one_to_one: Some(one(0.55)),
        };
        let text = good.to_toml();
        assert!(text.contains("[one_to_one]"), "{text}");
        assert_eq!(Calibration::parse(&text, "sface/1").unwrap(), good);
        assert!(Calibration::parse(&text, "dlib/2")
            .unwrap_err()
            .contains("made for the model"));
        let mut bad = good.clone();
        bad.point.swap(0, 1);
        assert!(Calibration::parse(&bad.to_toml(), "sface/1")
            .unwrap_err()
            .contains("growing"));
        let mut bad = good.clone();
        bad.point[1].fpir = 2.0;
        assert!(Calibration::parse(&bad.to_toml(), "sface/1").is_err());
        let mut bad = good;
        bad.one_to_one = Some(OperatingPoint {
            gallery: 10,
            ..one(0.55)
        });
        assert!(Calibration::parse(&bad.to_toml(), "sface/1")
            .unwrap_err()
            .contains("one_to_one"));
    }

    fn one(threshold: f64) -> OperatingPoint {
        OperatingPoint {
            gallery: 1,
            threshold,
            fpir: 0.00005,
            fnir: 0.05,
            fnir_2: None,
            fnir_3: None,
        }
    }

    #[test]
    fn the_one_to_one_threshold_comes_from_the_config_then_the_site_then_the_manifest() {
        let path = Path::new("/var/lib/facegate/calibration.toml");
        let mut site = Calibration {
            model: "m".into(),
            target_fpir: 0.001,
            source: "site".into(),
            point: pts(),
            one_to_one: Some(one(0.52)),
        };
        let c = one_to_one(Some(0.4), Some((path, &site)), Some(one(0.55)), 0.5);
        assert_eq!((c.threshold, c.source.clone()), (0.4, Source::Config));
        assert!(c
            .describe()
            .contains("threshold 0.400 from access.factor_threshold"));
        let c = one_to_one(None, Some((path, &site)), Some(one(0.55)), 0.5);
        assert_eq!((c.threshold, c.source), (0.52, Source::Site(path.into())));
        // A site calibration without a 1:1 point leaves it to the manifest.
        site.one_to_one = None;
        let c = one_to_one(None, Some((path, &site)), Some(one(0.55)), 0.5);
        assert_eq!((c.threshold, c.source.clone()), (0.55, Source::Manifest));
        assert!(
            c.describe()
                .contains("1:1 check of a card or PIN: threshold 0.550")
                && c.describe().contains("false match 0.005%"),
            "{}",
            c.describe()
        );
        let c = one_to_one(None, None, None, 0.5);
        assert_eq!((c.threshold, c.source), (0.5, Source::Model));
    }

    #[test]
    fn the_shipped_manifest_has_a_one_to_one_point_looser_than_its_search_threshold() {
        let m = crate::vision::models::Manifest::parse(
            crate::vision::models::BUILTIN_MANIFEST,
            "built-in",
        )
        .unwrap();
        let spec = &m.embedders[&m.default_embedder];
        let p = spec.one_to_one.expect("the default network's 1:1 point");
        assert!(p.threshold > f64::from(spec.threshold), "{p:?}");
        assert!(p.fpir <= 0.0001, "{p:?}");
    }

    fn at(people: usize, fnir: [f64; 3]) -> Chosen {
        let point = OperatingPoint {
            gallery: 1000,
            threshold: 0.445,
            fpir: 0.001,
            fnir: fnir[0],
            fnir_2: Some(fnir[1]),
            fnir_3: Some(fnir[2]),
        };
        choose(people, None, None, &[point], 0.5)
    }

    #[test]
    fn the_advice_is_the_fewest_photos_that_meet_the_target() {
        let c = at(1000, [0.136, 0.059, 0.044]);
        let a = PhotoAdvice::for_point(&c, 0.10).unwrap();
        assert_eq!(
            (a.photos, a.fnir_advised, a.meets_target()),
            (2, 0.059, true)
        );
        assert_eq!(
            a.line(23).unwrap(),
            "at 1,000 people the door expects 13.6% of employees refused with one photo each, \
             5.9% with two: enrol 2 photos per person (23 people have fewer: facegate list --fewer-photos)"
        );
        let a = PhotoAdvice::for_point(&c, 0.05).unwrap();
        assert_eq!((a.photos, a.meets_target()), (3, true));
        // Nothing meets it: the most measured, said so.
        let a = PhotoAdvice::for_point(&c, 0.01).unwrap();
        assert_eq!((a.photos, a.meets_target()), (3, false));
        assert!(a
            .line(0)
            .unwrap()
            .contains("still above the site's target of 1.0%"));
        // One photo is enough: no line, no one is short.
        let a = PhotoAdvice::for_point(&c, 0.2).unwrap();
        assert_eq!(a.photos, 1);
        assert_eq!(a.line(5), None);
    }

    #[test]
    fn no_advice_without_figures_by_photos_or_without_a_calibrated_point() {
        let mut c = at(20, [0.2, 0.1, 0.05]);
        c.point.as_mut().unwrap().fnir_2 = None;
        c.point.as_mut().unwrap().fnir_3 = None;
        assert_eq!(PhotoAdvice::for_point(&c, 0.05).unwrap().photos, 1);
        let fixed = choose(20, Some(0.4), None, &pts(), 0.5);
        assert_eq!(PhotoAdvice::for_point(&fixed, 0.05), None);
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(people(1), "1 person");
        assert_eq!(people(1000), "1,000 people");
    }

    #[test]
    fn points_with_figures_by_photos_parse_and_bad_ones_are_refused() {
        let ok = "{ gallery = 10, threshold = 0.5, fpir = 0.0001, fnir = 0.08, fnir_2 = 0.033, fnir_3 = 0.024 }";
        let parse = |p: &str| {
            Calibration::parse(
                &format!("model = \"m\"\ntarget_fpir = 0.001\nsource = \"s\"\npoint = [{p}]\n"),
                "m",
            )
        };
        let c = parse(ok).unwrap();
        assert_eq!(c.point[0].fnir_with(2), Some(0.033));
        assert_eq!(c.point[0].fnir_with(4), Some(0.024));
        assert_eq!(c.point[0].fnir_with(1), Some(0.08));
        let old = parse("{ gallery = 10, threshold = 0.5, fpir = 0.0001, fnir = 0.08 }").unwrap();
        assert_eq!(old.point[0].fnir_with(2), None);
        assert!(parse(&ok.replace("0.033", "1.5"))
            .unwrap_err()
            .contains("fnir_2"));
        assert!(parse(
            "{ gallery = 10, threshold = 0.5, fpir = 0.0001, fnir = 0.08, fnir_3 = 0.02 }"
        )
        .unwrap_err()
        .contains("fnir_3 without fnir_2"));
    }

    #[test]
    fn the_built_in_manifest_gives_figures_by_photos_at_every_point() {
        let m = crate::vision::models::Manifest::parse(
            crate::vision::models::BUILTIN_MANIFEST,
            "built-in",
        )
        .unwrap();
        let points = &m.embedders[&m.default_embedder].operating_points;
        assert!(!points.is_empty());
        for p in points {
            let (two, three) = (p.fnir_2.unwrap(), p.fnir_3.unwrap());
            // More photos never expected to refuse more people.
            assert!(three <= two && two <= p.fnir, "{p:?}");
        }
    }
}

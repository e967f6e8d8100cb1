//! Reloads: the gallery (polled, or on SIGHUP) and the config (SIGHUP; what needs a restart is
//! `config::RESTART_ONLY`).

use super::*;
use crate::access::operating_point::{self, Calibration, CalibrationError, Chosen};

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    pub(super) fn gallery_refused(&mut self, e: &GalleryError) {
        tracing::error!("gallery refused, the previous one stays in use: {e}");
        let mut ev = self.event(EventKind::GalleryRefused);
        ev.reason = Some(e.to_string());
        self.record(&ev);
    }

    pub(super) fn poll_gallery(&mut self, force: bool) {
        // Who was let in last, by id: indices change with the gallery.
        let held = self
            .decider
            .held_person()
            .and_then(|i| self.gallery.gallery().people.get(i))
            .map(|p| p.id.clone());
        match self.gallery.poll(force) {
            Ok(false) => {}
            Ok(true) => {
                self.reload.count += 1;
                // Person indices changed: frames counted so far may point at someone else.
                let people = &self.gallery.gallery().people;
                let held = held.and_then(|id| people.iter().position(|p| p.id == id));
                self.decider.forget(held);
                self.factors.forget();
                self.follow_gallery_size();
                let mut ev = self.event(EventKind::GalleryReloaded);
                ev.reason = Some(format!(
                    "{} people enrolled; {}",
                    self.gallery.gallery().people.len(),
                    self.reload.point.describe()
                ));
                self.record(&ev);
            }
            Err(e) => self.gallery_refused(&e),
        }
    }

    /// The threshold for the gallery's size now: decided again, and handed to the decision
    /// (and through it to recognition) when it changed.
    fn follow_gallery_size(&mut self) {
        let point = operating_point(
            &self.config,
            self.reload.calibration.as_ref(),
            &self.spec,
            self.gallery.gallery().people.len(),
        );
        if point.threshold != self.reload.point.threshold {
            tracing::info!("{}", point.describe());
            self.decider.set_params(
                self.config
                    .decision_params(point.threshold, self.spec.min_margin),
            );
        }
        self.reload.point = point;
    }

    /// The config at `path`, checked, and its threshold against the running model's calibrated
    /// range (the model itself only changes with a restart).
    fn load_config(&self, path: &std::path::Path) -> Result<Config, ConfigError> {
        let c = Config::load(path)?;
        match c.threshold_problem(self.spec.threshold) {
            Some(p) => Err(ConfigError::Invalid {
                path: path.to_owned(),
                key: p.key,
                problem: p.message,
            }),
            None => Ok(c),
        }
    }

    pub(super) fn reload_config(&mut self) {
        let Some(path) = self.reload.config_path.clone() else {
            return;
        };
        let new = match self.load_config(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("config refused, the previous one stays in use: {e}");
                let mut ev = self.event(EventKind::ConfigRefused);
                ev.reason = Some(e.to_string());
                self.record(&ev);
                return;
            }
        };
        // A site calibration that cannot be used refuses the whole config: never a silent
        // fall back to a looser threshold.
        let calibration = match site_calibration(&new, &self.spec) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("config refused, the previous one stays in use: {e}");
                let mut ev = self.event(EventKind::ConfigRefused);
                ev.reason = Some(e.to_string());
                self.record(&ev);
                return;
            }
        };
        let old = &self.config;
        let (applied, restart) = old.reloaded(new);
        if applied.gallery.path != old.gallery.path {
            let fp = self.spec.fingerprint.clone();
            let scoring = Scoring::of(&self.spec);
            let (g, err) = Reloader::new_or_empty(&applied.gallery.path, &fp, scoring);
            self.gallery = g;
            if let Some(e) = err {
                self.gallery_refused(&e);
            }
        }
        self.config = applied;
        self.reload.calibration = calibration;
        self.reload.point = operating_point(
            &self.config,
            self.reload.calibration.as_ref(),
            &self.spec,
            self.gallery.gallery().people.len(),
        );
        self.decider.set_params(
            self.config
                .decision_params(self.reload.point.threshold, self.spec.min_margin),
        );
        self.factors.one_to_one =
            one_to_one(&self.config, self.reload.calibration.as_ref(), &self.spec);
        self.gate.set_hold(self.unlock_hold());
        self.reload.count += 1;
        let mut ev = self.event(EventKind::ConfigReloaded);
        let mut msg = self.reload.point.describe();
        if self.factors.input.is_some() {
            msg = format!("{msg}; {}", self.factors.one_to_one.describe());
        }
        if !restart.is_empty() {
            let later = format!(
                "changed but only applied after a restart: {}",
                restart.join(", ")
            );
            tracing::warn!("{later}");
            msg = format!("{later}; {msg}");
        }
        ev.reason = Some(msg);
        self.record(&ev);
    }
}

/// Reloads of the config and the gallery.
pub(super) struct ReloadState {
    /// The config file (re-read on SIGHUP); `None`: the config is not reloaded.
    pub(super) config_path: Option<PathBuf>,
    /// When the gallery file is looked at next.
    pub(super) next_poll: Duration,
    /// Config and gallery reloads so far: what recognition uses is handed over after each.
    pub(super) count: u64,
    /// The site's calibration (`recognition.calibration`), as loaded with the config.
    pub(super) calibration: Option<(PathBuf, Calibration)>,
    /// The threshold in use for the gallery's size, and why.
    pub(super) point: Chosen,
}

/// The site's calibration of `config` for the model `spec`, if it names one.
pub(super) fn site_calibration(
    config: &Config,
    spec: &EmbedderManifest,
) -> Result<Option<(PathBuf, Calibration)>, CalibrationError> {
    config
        .recognition
        .calibration
        .as_ref()
        .map(|p| Calibration::load(p, &spec.fingerprint).map(|c| (p.clone(), c)))
        .transpose()
}

/// The threshold for a gallery of `people` (see [`operating_point::choose`]).
pub(super) fn operating_point(
    config: &Config,
    calibration: Option<&(PathBuf, Calibration)>,
    spec: &EmbedderManifest,
    people: usize,
) -> Chosen {
    operating_point::choose(
        people,
        config.recognition.threshold,
        calibration.map(|(p, c)| (p.as_path(), c)),
        &spec.operating_points,
        spec.threshold,
    )
}

/// The 1:1 check's threshold for a card or PIN claim (see [`operating_point::one_to_one`]).
pub(super) fn one_to_one(
    config: &Config,
    calibration: Option<&(PathBuf, Calibration)>,
    spec: &EmbedderManifest,
) -> Chosen {
    operating_point::one_to_one(
        config.access.factor_threshold,
        calibration.map(|(p, c)| (p.as_path(), c)),
        spec.one_to_one,
        spec.threshold,
    )
}

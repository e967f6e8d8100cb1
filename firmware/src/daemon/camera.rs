//! The cameras' health as the loop sees it: errors, recovery, the NIR camera's news.

use super::*;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// Simulated-time mode: reads the NIR camera once, right after a colour frame taken at `now`
    /// (re-opened on the next frame after a failure).
    pub(super) fn read_nir(&mut self, now: Duration) {
        let Some(cam) = self.cameras.nir.as_mut() else {
            return;
        };
        let mut image = RgbImage::new(0, 0);
        let read = cam.next_frame(&mut image);
        if read.is_err() {
            if let Err(e) = cam.reopen() {
                tracing::debug!("NIR camera re-open failed: {e}");
            }
        }
        let news = self.cameras.nir_health.read(now, read.as_ref().map(|_| ()));
        if read.is_ok() {
            let taken = now;
            self.cues.offer_nir(Captured { image, taken });
        }
        self.nir_news(news);
    }

    /// Real-time mode: what the NIR capture thread said.
    pub(super) fn nir_news_seen(&mut self) {
        let now = self.clock.now();
        let got: Vec<CameraNews> = self
            .cameras
            .nir_news
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default();
        for n in got {
            let news = match &n {
                CameraNews::Error(e) => self.cameras.nir_health.read(now, Err(e)),
                CameraNews::Recovered => self.cameras.nir_health.read(now, Ok(())),
            };
            self.nir_news(news);
        }
    }

    /// Records the NIR camera's failure or recovery; the status line says it while it fails.
    pub(super) fn nir_news(&mut self, news: Option<NirNews>) {
        let ev = match news {
            None => return,
            Some(NirNews::Failed(msg)) => {
                tracing::error!("{msg}: no face is let in until it works again");
                let mut ev = self.event(EventKind::CameraError);
                ev.reason = Some(format!("{msg}; NIR mode: no face is let in"));
                ev
            }
            Some(NirNews::Recovered) => {
                tracing::info!("NIR camera recovered");
                let mut ev = self.event(EventKind::CameraRecovered);
                ev.reason = Some("NIR camera".into());
                ev
            }
        };
        self.status.nir_lost = self.cameras.nir_health.lost.as_ref().map(|l| l.1.clone());
        self.record(&ev);
    }

    pub(super) fn camera_recovered(&mut self) {
        self.status.camera_lost = None;
        let ev = self.event(EventKind::CameraRecovered);
        self.record(&ev);
        tracing::info!("camera recovered");
    }

    pub(super) fn camera_error<C: FrameSource>(
        &mut self,
        camera: &mut C,
        e: CameraError,
    ) -> Result<(), DaemonError> {
        if self.control.stop_requested() {
            // A read cut short by the stop request is not a camera fault.
            return Ok(());
        }
        self.camera_error_seen(&e);
        if e.kind == CameraErrorKind::BadFrame {
            return Ok(());
        }
        self.wait(self.cameras.backoff)?;
        self.cameras.backoff = (self.cameras.backoff * 2).min(MAX_BACKOFF);
        if let Err(e) = camera.reopen() {
            tracing::debug!("camera re-open failed: {e}");
        }
        Ok(())
    }

    /// Counts and records a camera error (the re-open is up to whoever reads the camera).
    pub(super) fn camera_error_seen(&mut self, e: &CameraError) {
        self.summary.camera_errors += 1;
        // A frame missing from the sequence: nothing ties the next face to the run so far.
        let now = self.clock.now();
        self.decider.observe(now, Observation::Lost, &mut |_| None);
        if e.kind == CameraErrorKind::BadFrame {
            tracing::warn!("skipping a bad frame: {e}");
            return;
        }
        if !self.cameras.failing || self.status.camera_lost.is_none() {
            self.cameras.failing = true;
            self.status.camera_lost = Some((now, e.to_string()));
            tracing::error!("camera: {e}; re-opening it");
            let mut ev = self.event(EventKind::CameraError);
            ev.reason = Some(e.to_string());
            self.record(&ev);
        } else {
            tracing::debug!("camera still failing: {e}");
        }
        self.guard.camera_failed(now, &mut self.notes);
        self.flush();
    }

    /// Waits `d` in short steps, keeping relock and stop requests prompt.
    pub(super) fn wait(&mut self, d: Duration) -> Result<(), DaemonError> {
        let end = self.clock.now() + d;
        loop {
            let now = self.clock.now();
            if now >= end || self.control.stop_requested() {
                return Ok(());
            }
            self.clock.sleep((end - now).min(TICK));
            self.housekeeping()?;
        }
    }
}

/// The cameras as the loop sees them.
pub(super) struct CameraState {
    /// The colour camera is failing (between an error and the next frame).
    pub(super) failing: bool,
    /// The wait before the next re-open (simulated-time mode; doubles up to `MAX_BACKOFF`).
    pub(super) backoff: Duration,
    /// The NIR camera of `[liveness.nir]`, while the loop holds it (real-time mode hands it to
    /// its capture thread).
    pub(super) nir: Option<Box<dyn FrameSource + Send>>,
    /// Whether the NIR camera works.
    pub(super) nir_health: NirHealth,
    /// Real-time mode: what the NIR capture thread says.
    pub(super) nir_news: Option<Receiver<CameraNews>>,
}

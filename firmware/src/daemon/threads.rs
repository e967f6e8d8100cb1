//! The daemon's two ways of running: one thread in simulated time (every frame recognised and
//! decided in turn), or in real time a capture thread, recognition workers and the control loop.

use super::*;

impl<L: LockOutput, S: DoorSensors> Loop<'_, L, S> {
    /// The simulated-time loop: one thread, every frame read, recognised and decided in turn.
    pub(super) fn main_loop<C: FrameSource>(
        &mut self,
        mut camera: C,
        pipeline: &mut Pipeline,
    ) -> Result<(), DaemonError> {
        let mut frame = RgbImage::new(0, 0);
        let mut frozen = FrozenWatch::default();
        while !self.control.stop_requested() {
            self.housekeeping()?;
            // The buffer the newest frame is kept in (for `snapshot` and the live view), unless
            // a client still holds it.
            if let Some(buffer) = self.live.reclaim() {
                frame = buffer;
            }
            let read = camera
                .next_frame(&mut frame)
                .and_then(|()| frozen.check(self.clock.now(), camera.sequence(), &frame));
            match read {
                Ok(()) => {
                    self.summary.delivered += 1;
                    if self.cameras.failing {
                        self.cameras.failing = false;
                        self.cameras.backoff = realtime::FIRST_BACKOFF;
                        self.camera_recovered();
                    }
                    let now = self.clock.now();
                    self.read_nir(now);
                    let started = Instant::now();
                    let params = self.look_params();
                    let mut facts = FrameFacts::default();
                    let mut face = None;
                    let eyes = look::Eyes {
                        pipeline,
                        liveness: self.liveness.as_mut(),
                        cues: &mut self.cues,
                    };
                    let out = look::Looked {
                        stages: &mut self.summary.stages,
                        embedding: &mut self.embedding,
                        facts: &mut facts,
                        face: &mut face,
                    };
                    let obs = look::look(eyes, &frame, now, self.gallery.index(), &params, out);
                    self.summary.busy += started.elapsed();
                    let image = Arc::new(std::mem::take(&mut frame));
                    // One thread in simulated time: the frame is shared, not copied.
                    self.pictures
                        .seen(face.map(|f| (Arc::clone(&image), f)), now);
                    self.frame(obs, facts, now, image)?;
                }
                Err(e) => {
                    if e.kind != CameraErrorKind::BadFrame {
                        frozen.reset();
                    }
                    self.camera_error(&mut camera, e)?
                }
            }
        }
        Ok(())
    }

    /// The real-time loop: capture (newest frame only) and recognition on their own threads;
    /// this thread serves the door (relock, inputs, reloads, watchdog) within a few ms whatever
    /// recognition is doing, and decides on what recognition reports.
    pub(super) fn threaded<C: FrameSource + Send>(
        &mut self,
        mut camera: C,
        pipeline: &mut Pipeline,
    ) -> Result<(), DaemonError> {
        let stop = AtomicBool::new(false);
        let frames = Mailbox::<Captured>::default();
        let delivered = AtomicU64::new(0);
        let stale = AtomicU64::new(0);
        let params = Mutex::new((self.look_params(), self.gallery.shared_index()));
        // The liveness networks and the cues go with the pipeline to the recognition thread;
        // the NIR camera, if any, has a capture thread of its own.
        let mut liveness = self.liveness.take();
        let mut cues = std::mem::take(&mut self.cues);
        let workers = self.workers(pipeline, &cues);
        self.summary.workers = workers;
        // Workers beyond the first share the networks and have buffers of their own; the
        // presentation cues, which follow a face from frame to frame, stay with the first.
        let mut forks: Vec<(Pipeline, Option<Liveness>, Cues)> = (1..workers)
            .map(|_| (pipeline.clone(), liveness.clone(), Cues::default()))
            .collect();
        let mut nir_camera = self.cameras.nir.take();
        let nir_frames = Mailbox::<Captured>::default();
        let nir_delivered = AtomicU64::new(0);
        let (nir_tx, nir_rx) = mpsc::channel();
        self.cameras.nir_news = Some(nir_rx);
        // A frame older than one frame period when recognition is ready is not used.
        let period = Duration::from_secs_f64(1.0 / f64::from(self.config.camera.fps.max(1)));
        let (news_tx, news_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let clock = self.clock;
        let result = std::thread::scope(|s| {
            let capture = std::thread::Builder::new()
                .name("capture".into())
                .spawn_scoped(s, || {
                    realtime::capture(&mut camera, clock, &stop, &frames, &news_tx, &delivered)
                })
                .expect("spawning the capture thread");
            let (stop_r, nir_frames_r, nir_tx_r, nir_delivered_r) =
                (&stop, &nir_frames, &nir_tx, &nir_delivered);
            let nir_capture = nir_camera.as_mut().map(|nir| {
                std::thread::Builder::new()
                    .name("nir-capture".into())
                    .spawn_scoped(s, move || {
                        realtime::capture(
                            nir,
                            clock,
                            stop_r,
                            nir_frames_r,
                            nir_tx_r,
                            nir_delivered_r,
                        )
                    })
                    .expect("spawning the NIR capture thread")
            });
            let shared = Shared {
                clock,
                stop: &stop,
                frames: &frames,
                nir_frames: &nir_frames,
                stale: &stale,
                period,
                params: &params,
            };
            let mut recognisers = Vec::with_capacity(workers);
            let own = (pipeline, liveness.as_mut(), &mut cues);
            let others = forks.iter_mut().map(|(p, l, c)| (p, l.as_mut(), c));
            for (n, (pipeline, liveness, cues)) in std::iter::once(own).chain(others).enumerate() {
                let done = done_tx.clone();
                let name = if n == 0 {
                    "recognition".to_owned()
                } else {
                    format!("recognition-{n}")
                };
                let h = std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(s, move || {
                        recognise(pipeline, liveness, cues, &shared, &done)
                    })
                    .expect("spawning a recognition thread");
                recognisers.push(h);
            }
            drop(done_tx);
            let result = self.serve(&news_rx, &done_rx, &params, &|| {
                capture.is_finished() || recognisers.iter().any(|h| h.is_finished())
            });
            stop.store(true, Ordering::SeqCst);
            frames.close();
            nir_frames.close();
            for h in std::iter::once(capture)
                .chain(recognisers)
                .chain(nir_capture)
            {
                if let Err(panic) = h.join() {
                    // The door locks as this unwinds (Door's Drop).
                    std::panic::resume_unwind(panic);
                }
            }
            self.summary.delivered = delivered.load(Ordering::Relaxed);
            self.summary.stale_dropped = frames.dropped() + stale.load(Ordering::Relaxed);
            result
        });
        self.liveness = liveness;
        self.cues = cues;
        self.cameras.nir = nir_camera;
        result
    }

    /// The control side of the real-time loop.
    pub(super) fn serve(
        &mut self,
        news: &Receiver<CameraNews>,
        done: &Receiver<Done>,
        params: &Mutex<(LookParams, Arc<Index>)>,
        worker_ended: &dyn Fn() -> bool,
    ) -> Result<(), DaemonError> {
        let mut handed = self.reload.count;
        // Workers finish out of order; frames are decided in the order they were taken.
        let mut waiting: BTreeMap<u64, Option<Recognised>> = BTreeMap::new();
        let mut next = 0;
        while !self.control.stop_requested() {
            self.housekeeping()?;
            if worker_ended() {
                tracing::error!("a capture or recognition thread ended unexpectedly");
                return Ok(());
            }
            if handed != self.reload.count {
                handed = self.reload.count;
                let now = (self.look_params(), self.gallery.shared_index());
                *params.lock().unwrap_or_else(|p| p.into_inner()) = now;
            }
            while let Ok(n) = news.try_recv() {
                match n {
                    CameraNews::Error(e) => self.camera_error_seen(&e),
                    CameraNews::Recovered => self.camera_recovered(),
                }
            }
            self.nir_news_seen();
            let now = self.clock.now();
            let wait = self
                .gate
                .relock_at()
                .map_or(RT_TICK, |t| t.saturating_sub(now).min(RT_TICK));
            match done.recv_timeout(wait) {
                Ok(d) => {
                    waiting.insert(d.ticket, d.recognised);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while let Some(r) = waiting.remove(&next) {
                next += 1;
                if let Some(r) = r {
                    self.summary.busy += r.busy;
                    self.summary.frame_age.add(r.age);
                    let lag = self.clock.now().saturating_sub(r.taken);
                    self.summary.decision_lag.add(lag);
                    self.summary.recognition.add(r.busy);
                    let st = &mut self.summary.stages;
                    st.detect += r.stages.detect;
                    st.align += r.stages.align;
                    st.embed += r.stages.embed;
                    st.matching += r.stages.matching;
                    st.liveness += r.stages.liveness;
                    self.embedding = r.embedding;
                    self.pictures.seen(r.face, r.taken);
                    self.frame(r.observation, r.facts, r.taken, r.image)?;
                }
            }
        }
        Ok(())
    }

    /// How many recognition workers the real-time loop runs (`[performance]`); one while a
    /// presentation cue is on, because the cues follow a face across frames in their order.
    pub(super) fn workers(&self, pipeline: &Pipeline, cues: &Cues) -> usize {
        let (workers, threads) = crate::cores::door_split(
            &self.config.performance,
            &pipeline.embedder_spec().quantization,
            crate::cores::available(),
        );
        if workers > 1 && cues.any() {
            tracing::info!("one recognition worker: the presentation cues follow frames in order");
            return 1;
        }
        tracing::info!("{workers} recognition worker(s), {threads} thread(s) per network run");
        workers
    }
}

/// A frame recognised on the recognition thread, for the control loop.
pub(super) struct Recognised {
    pub(super) observation: Result<Observation<'static>, PipelineError>,
    pub(super) facts: FrameFacts,
    pub(super) embedding: Embedding,
    /// The frame (moved, not copied: for `snapshot` and the live view).
    pub(super) image: Arc<RgbImage>,
    pub(super) taken: Duration,
    /// How old the frame was when recognition started on it.
    pub(super) age: Duration,
    pub(super) busy: Duration,
    pub(super) stages: Stages,
    /// `[audit] faces`: the frame and its judged face's landmarks (the frame moved, not copied).
    pub(super) face: Option<records::JudgedFace>,
}

/// What a recognition worker made of the frame it took.
pub(super) struct Done {
    /// The frame's place in the order frames were taken ([`Mailbox::take_numbered`]).
    pub(super) ticket: u64,
    /// `None`: the frame was too old to start on.
    pub(super) recognised: Option<Recognised>,
}

/// What every recognition worker reads.
#[derive(Clone, Copy)]
pub(super) struct Shared<'a> {
    pub(super) clock: &'a dyn Clock,
    pub(super) stop: &'a AtomicBool,
    pub(super) frames: &'a Mailbox<Captured>,
    pub(super) nir_frames: &'a Mailbox<Captured>,
    pub(super) stale: &'a AtomicU64,
    /// A frame older than this when a worker is ready for it is not used.
    pub(super) period: Duration,
    pub(super) params: &'a Mutex<(LookParams, Arc<Index>)>,
}

/// A recognition worker: takes the newest frame, skips it if it is older than `period`,
/// recognises it and hands the result to the control loop, until `stop`. Every frame taken is
/// answered, so the control loop can put the answers back in order.
pub(super) fn recognise(
    pipeline: &mut Pipeline,
    mut liveness: Option<&mut Liveness>,
    cues: &mut Cues,
    sh: &Shared<'_>,
    done: &mpsc::Sender<Done>,
) {
    let clock = sh.clock;
    while !sh.stop.load(Ordering::SeqCst) {
        let Some((ticket, frame)) = sh.frames.take_numbered(Duration::from_millis(100)) else {
            continue;
        };
        let age = clock.now().saturating_sub(frame.taken);
        if age > sh.period {
            sh.stale.fetch_add(1, Ordering::Relaxed);
            let skipped = Done {
                ticket,
                recognised: None,
            };
            if done.send(skipped).is_err() {
                return;
            }
            continue;
        }
        let (p, index) = {
            let shared = sh.params.lock().unwrap_or_else(|p| p.into_inner());
            (shared.0, Arc::clone(&shared.1))
        };
        let started = Instant::now();
        let mut stages = Stages::default();
        let mut embedding = Embedding(Vec::new());
        let mut facts = FrameFacts::default();
        let mut face = None;
        // The newest NIR frame, kept until a newer one comes.
        if cues.nir_on() {
            if let Some(nir) = sh.nir_frames.take(Duration::ZERO) {
                cues.offer_nir(nir);
            }
        }
        let eyes = look::Eyes {
            pipeline,
            liveness: liveness.as_deref_mut(),
            cues,
        };
        let out = look::Looked {
            stages: &mut stages,
            embedding: &mut embedding,
            facts: &mut facts,
            face: &mut face,
        };
        let observation = look::look(eyes, &frame.image, frame.taken, &index, &p, out);
        // A simulated slower machine takes longer (nothing on a real clock).
        clock.worked(started.elapsed());
        let image = Arc::new(frame.image);
        let r = Recognised {
            observation,
            facts,
            embedding,
            face: face.map(|f| (Arc::clone(&image), f)),
            image,
            taken: frame.taken,
            age,
            busy: started.elapsed(),
            stages,
        };
        let answer = Done {
            ticket,
            recognised: Some(r),
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

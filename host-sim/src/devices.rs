//! The simulated devices: a camera that plays a script of frames and incidents, a relay that
//! records every edge with its simulated time, and door inputs the script can press.

use crate::clock::SimClock;
use facegate::control::Control;
use facegate::hal::{
    CameraError, CameraErrorKind, Clock, DoorInputs, DoorSensors, FrameSource, InputError,
    LockError, LockOutput, LockState,
};
use image::RgbImage;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Something the script does to the world at a moment, between two frames.
pub type Action = Box<dyn FnMut(Duration) + Send>;

/// One step of the camera's script.
pub enum Step {
    /// `count` frames of `image`, one every `interval`, the first one `interval` after the
    /// previous frame.
    Frames {
        /// The frame.
        image: Arc<RgbImage>,
        /// How many.
        count: u32,
        /// Time between frames.
        interval: Duration,
        /// What the NIR camera sees meanwhile (`[liveness.nir]`; `None`: no NIR camera).
        nir: Option<Arc<RgbImage>>,
    },
    /// No frame for this long: every read times out after the camera timeout.
    Stall(Duration),
    /// For this long the camera repeats its last frame, byte for byte, one every `interval` (a
    /// hung sensor or driver); the daemon must notice.
    Freeze {
        /// How long.
        seconds: Duration,
        /// Time between frames.
        interval: Duration,
    },
    /// The camera is unplugged for this long: reads and re-opens fail.
    Unplug(Duration),
    /// This many frames that fail to decode.
    BadFrames(u32),
    /// Something happens in the world (gallery edit, signal, button).
    Act(Action),
    /// Marks the start of scenario step `n` (for expectations).
    Mark(usize),
}

enum Current {
    Frames {
        image: Arc<RgbImage>,
        left: u32,
        interval: Duration,
        nir: Option<Arc<RgbImage>>,
    },
    Stall {
        until: Duration,
    },
    Freeze {
        until: Duration,
        interval: Duration,
    },
    Unplug {
        until: Duration,
    },
    Bad {
        left: u32,
    },
}

/// A camera that plays a script. When the script ends it asks the daemon to stop.
pub struct SimCamera {
    clock: SimClock,
    control: Control,
    steps: VecDeque<Step>,
    current: Option<Current>,
    last_frame: Duration,
    /// The last frame delivered, as delivered (a frozen camera repeats it).
    last_image: RgbImage,
    timeout: Duration,
    marks: Arc<Mutex<Vec<(usize, Duration)>>>,
    /// Where the NIR view of each frame goes (NIR mode).
    nir: NirLink,
    /// Frames delivered.
    pub delivered: u64,
    /// Re-opens asked for.
    pub reopens: u64,
}

impl SimCamera {
    /// A camera playing `steps` on `clock`; reads of a stalled camera time out after `timeout`.
    pub fn new(clock: SimClock, control: Control, steps: Vec<Step>, timeout: Duration) -> Self {
        Self {
            clock,
            control,
            steps: steps.into(),
            current: None,
            last_frame: Duration::ZERO,
            last_image: RgbImage::new(0, 0),
            timeout,
            marks: Arc::default(),
            nir: NirLink::default(),
            delivered: 0,
            reopens: 0,
        }
    }

    /// The camera publishing the NIR view of each frame it delivers to `link`.
    pub fn with_nir_link(mut self, link: NirLink) -> Self {
        self.nir = link;
        self
    }

    /// Where each scenario step started (its index, simulated time), filled as the script plays.
    pub fn marks(&self) -> Arc<Mutex<Vec<(usize, Duration)>>> {
        self.marks.clone()
    }

    fn unplugged(&self) -> bool {
        matches!(self.current, Some(Current::Unplug { until }) if self.clock.now() < until)
    }
}

impl FrameSource for SimCamera {
    fn next_frame(&mut self, frame: &mut RgbImage) -> Result<(), CameraError> {
        loop {
            let now = self.clock.now();
            match &mut self.current {
                None => match self.steps.pop_front() {
                    None => {
                        self.control.request_stop();
                        return Err(CameraError::new(
                            CameraErrorKind::Other,
                            "end of the scenario",
                        ));
                    }
                    Some(Step::Act(mut act)) => act(now),
                    Some(Step::Mark(n)) => self.marks.lock().unwrap().push((n, now)),
                    Some(Step::Frames {
                        image,
                        count,
                        interval,
                        nir,
                    }) => {
                        self.current = Some(Current::Frames {
                            image,
                            left: count,
                            interval,
                            nir,
                        })
                    }
                    Some(Step::Stall(d)) => self.current = Some(Current::Stall { until: now + d }),
                    Some(Step::Freeze { seconds, interval }) => {
                        self.current = Some(Current::Freeze {
                            until: now + seconds,
                            interval,
                        })
                    }
                    Some(Step::Unplug(d)) => {
                        self.current = Some(Current::Unplug { until: now + d })
                    }
                    Some(Step::BadFrames(n)) => self.current = Some(Current::Bad { left: n }),
                },
                Some(Current::Frames {
                    image,
                    left,
                    interval,
                    nir,
                }) => {
                    if *left == 0 {
                        self.current = None;
                        continue;
                    }
                    *left -= 1;
                    // Frames come at the camera's pace: if the daemon was late (real-time mode),
                    // the next frame is the one due now, as with a real camera.
                    let due = (self.last_frame + *interval).max(now);
                    self.clock.advance_to(due);
                    self.last_frame = due;
                    frame.clone_from(image);
                    sensor_noise(frame, self.delivered);
                    self.delivered += 1;
                    self.last_image.clone_from(frame);
                    if let Some(nir) = nir {
                        self.nir.publish(nir.clone());
                    }
                    return Ok(());
                }
                Some(Current::Freeze { until, interval }) => {
                    if now >= *until {
                        self.current = None;
                        continue;
                    }
                    let due = (self.last_frame + *interval).max(now);
                    self.clock.advance_to(due);
                    self.last_frame = due;
                    frame.clone_from(&self.last_image);
                    self.delivered += 1;
                    return Ok(());
                }
                Some(Current::Stall { until }) => {
                    if now >= *until {
                        self.current = None;
                        continue;
                    }
                    let until = *until;
                    self.clock.advance_to((now + self.timeout).min(until));
                    self.last_frame = self.clock.now();
                    return Err(CameraError::new(
                        CameraErrorKind::Timeout,
                        format!("no frame within {:?} (simulated stall)", self.timeout),
                    ));
                }
                Some(Current::Unplug { until }) => {
                    if now >= *until {
                        self.current = None;
                        continue;
                    }
                    return Err(CameraError::new(
                        CameraErrorKind::Disconnected,
                        "/dev/video0: No such device (simulated unplug)",
                    ));
                }
                Some(Current::Bad { left }) => {
                    if *left == 0 {
                        self.current = None;
                        continue;
                    }
                    *left -= 1;
                    self.clock.advance_to(self.last_frame + self.timeout / 10);
                    self.last_frame = self.clock.now();
                    return Err(CameraError::new(
                        CameraErrorKind::BadFrame,
                        "MJPEG frame: truncated (simulated)",
                    ));
                }
            }
        }
    }

    fn reopen(&mut self) -> Result<(), CameraError> {
        self.reopens += 1;
        if self.unplugged() {
            return Err(CameraError::new(
                CameraErrorKind::Disconnected,
                "/dev/video0: No such file or directory (simulated unplug)",
            ));
        }
        Ok(())
    }
}

/// What the simulated NIR camera sees: the NIR view of the colour camera's latest frame, and
/// until when it is unplugged. The colour camera publishes, the NIR camera reads.
#[derive(Clone, Default)]
pub struct NirLink(Arc<(Mutex<NirScene>, Condvar)>);

#[derive(Default)]
struct NirScene {
    image: Option<Arc<RgbImage>>,
    /// Frames published so far.
    seq: u64,
    unplugged_until: Option<Duration>,
}

impl NirLink {
    fn publish(&self, image: Arc<RgbImage>) {
        let mut s = self.0 .0.lock().unwrap();
        s.image = Some(image);
        s.seq += 1;
        self.0 .1.notify_all();
    }

    /// The NIR camera is unplugged until `until` (simulated time).
    pub fn unplug(&self, until: Duration) {
        self.0 .0.lock().unwrap().unplugged_until = Some(until);
    }
}

/// The simulated NIR camera: delivers the NIR view of each colour frame once, as it is published.
pub struct SimNirCamera {
    link: NirLink,
    clock: SimClock,
    seen: u64,
    delivered: u64,
}

/// Longest real-time wait of the simulated NIR camera for a frame (a bounded read).
const NIR_WAIT: Duration = Duration::from_millis(200);

impl SimNirCamera {
    /// A NIR camera seeing what `link` publishes.
    pub fn new(link: NirLink, clock: SimClock) -> Self {
        Self {
            link,
            clock,
            seen: 0,
            delivered: 0,
        }
    }

    fn unplugged(&self, scene: &NirScene) -> bool {
        scene.unplugged_until.is_some_and(|t| self.clock.now() < t)
    }
}

impl FrameSource for SimNirCamera {
    fn next_frame(&mut self, frame: &mut RgbImage) -> Result<(), CameraError> {
        let (lock, ready) = &*self.link.0;
        let scene = lock.lock().unwrap();
        if self.unplugged(&scene) {
            return Err(CameraError::new(
                CameraErrorKind::Disconnected,
                "/dev/video2: No such device (simulated NIR unplug)",
            ));
        }
        let seen = self.seen;
        let (scene, _) = ready
            .wait_timeout_while(scene, NIR_WAIT, |s| s.seq == seen)
            .unwrap();
        let Some(image) = scene.image.as_ref().filter(|_| scene.seq != seen) else {
            return Err(CameraError::new(
                CameraErrorKind::Timeout,
                "no NIR frame (simulated)",
            ));
        };
        self.seen = scene.seq;
        frame.clone_from(image);
        sensor_noise(frame, self.delivered);
        self.delivered += 1;
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), CameraError> {
        let scene = self.link.0 .0.lock().unwrap();
        if self.unplugged(&scene) {
            return Err(CameraError::new(
                CameraErrorKind::Disconnected,
                "/dev/video2: No such file or directory (simulated NIR unplug)",
            ));
        }
        Ok(())
    }
}

/// A relay that records every change of state with its simulated time.
#[derive(Clone)]
pub struct SimRelay {
    clock: SimClock,
    edges: Arc<Mutex<Vec<(Duration, LockState)>>>,
}

impl SimRelay {
    /// A relay on `clock`.
    pub fn new(clock: SimClock) -> Self {
        Self {
            clock,
            edges: Arc::default(),
        }
    }

    /// Every change so far (the first `set` counts as one), with its time.
    pub fn edges(&self) -> Vec<(Duration, LockState)> {
        self.edges.lock().unwrap().clone()
    }

    /// The state the relay was last driven to.
    pub fn state(&self) -> Option<LockState> {
        self.edges.lock().unwrap().last().map(|e| e.1)
    }
}

impl LockOutput for SimRelay {
    fn set(&mut self, state: LockState) -> Result<(), LockError> {
        let mut edges = self.edges.lock().unwrap();
        if edges.last().map(|e| e.1) != Some(state) {
            edges.push((self.clock.now(), state));
        }
        Ok(())
    }
}

/// Door inputs the script can press and open, and an alarm output that records its changes.
#[derive(Clone)]
pub struct SimSensors {
    clock: SimClock,
    exit: Arc<AtomicBool>,
    door: Arc<Mutex<Option<bool>>>,
    alarm: Arc<Mutex<Vec<(Duration, bool)>>>,
}

impl SimSensors {
    /// Inputs on `clock`: no contact fitted until the script opens or closes the door.
    pub fn new(clock: SimClock) -> Self {
        Self {
            clock,
            exit: Arc::default(),
            door: Arc::default(),
            alarm: Arc::default(),
        }
    }

    /// Presses the exit button (released after the daemon has read it once).
    pub fn press_exit(&self) {
        self.exit.store(true, Ordering::SeqCst)
    }

    /// Sets the door contact: open or closed.
    pub fn set_door(&self, open: bool) {
        *self.door.lock().unwrap() = Some(open);
    }

    /// Every change of the alarm output, with its time.
    pub fn alarm_edges(&self) -> Vec<(Duration, bool)> {
        self.alarm.lock().unwrap().clone()
    }
}

impl DoorSensors for SimSensors {
    fn read(&mut self) -> Result<DoorInputs, InputError> {
        Ok(DoorInputs {
            exit_button: self.exit.swap(false, Ordering::SeqCst),
            door_open: *self.door.lock().unwrap(),
        })
    }

    fn set_alarm(&mut self, on: bool) -> Result<(), InputError> {
        let mut a = self.alarm.lock().unwrap();
        if a.last().map(|e| e.1) != Some(on) {
            a.push((self.clock.now(), on));
        }
        Ok(())
    }
}

/// A live sensor's noise: one bit flipped per frame, so no two frames are identical, as the
/// daemon's frozen-stream check expects of a real camera.
fn sensor_noise(frame: &mut RgbImage, delivered: u64) {
    if !frame.is_empty() {
        let raw: &mut [u8] = frame;
        let i = delivered as usize % raw.len();
        raw[i] ^= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_at_their_times_and_the_end_stops_the_daemon() {
        let clock = SimClock::new(false);
        let control = Control::default();
        let img = Arc::new(RgbImage::new(4, 4));
        let mut cam = SimCamera::new(
            clock.clone(),
            control.clone(),
            vec![
                Step::Mark(0),
                Step::Frames {
                    image: img,
                    count: 3,
                    interval: Duration::from_millis(100),
                    nir: None,
                },
                Step::Stall(Duration::from_secs(2)),
            ],
            Duration::from_secs(1),
        );
        let mut f = RgbImage::new(0, 0);
        for ms in [100, 200, 300] {
            cam.next_frame(&mut f).unwrap();
            assert_eq!(clock.now(), Duration::from_millis(ms));
        }
        assert_eq!(f.dimensions(), (4, 4));
        assert_eq!(
            cam.next_frame(&mut f).unwrap_err().kind,
            CameraErrorKind::Timeout
        );
        assert_eq!(
            cam.next_frame(&mut f).unwrap_err().kind,
            CameraErrorKind::Timeout
        );
        assert_eq!(clock.now(), Duration::from_millis(2300));
        assert!(!control.stop_requested());
        assert!(cam.next_frame(&mut f).is_err());
        assert!(control.stop_requested());
        assert_eq!(*cam.marks().lock().unwrap(), vec![(0, Duration::ZERO)]);
    }

    #[test]
    fn the_relay_records_changes_only() {
        let clock = SimClock::new(false);
        let mut r = SimRelay::new(clock.clone());
        r.set(LockState::Locked).unwrap();
        r.set(LockState::Locked).unwrap();
        clock.advance_to(Duration::from_secs(1));
        r.set(LockState::Unlocked).unwrap();
        assert_eq!(
            r.edges(),
            vec![
                (Duration::ZERO, LockState::Locked),
                (Duration::from_secs(1), LockState::Unlocked)
            ]
        );
    }
}

/// The simulated card reader and keypad (second factors): what the script presents waits here
/// until the daemon polls it.
#[derive(Clone, Default)]
pub struct SimCredentials {
    queue: Arc<Mutex<VecDeque<facegate::hal::Presented>>>,
}

impl SimCredentials {
    /// A card at the reader.
    pub fn card(&self, card: facegate::people::credential::Credential) {
        self.queue
            .lock()
            .unwrap()
            .push_back(facegate::hal::Presented::Card(card));
    }

    /// Keys typed, in order.
    pub fn keys(&self, keys: &str) {
        let mut q = self.queue.lock().unwrap();
        q.extend(keys.chars().map(facegate::hal::Presented::Key));
    }
}

impl facegate::hal::CredentialInput for SimCredentials {
    fn poll(&mut self, _now: Duration) -> Result<Option<facegate::hal::Presented>, InputError> {
        Ok(self.queue.lock().unwrap().pop_front())
    }
}

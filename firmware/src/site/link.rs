//! The site link (`facegate-site`, a process of its own): connects to the broker (rumqttc,
//! rustls), publishes the audit log's new lines with a persisted cursor, the door's states, the
//! audit chain's head and Home Assistant discovery, and hands the signed site gallery and
//! commands to the door over its control API. It drives nothing: the door checks every message
//! itself ([`super::trust`]); this side only drops what is too large or not signed by the site
//! key, and counts it. A broker that is down only delays publishing.

use super::follow::{Follower, Line};
use super::signing::{load_public, Envelope, SignError};
use super::trust::{max_gallery_bytes, Refusal, MAX_COMMAND_BYTES};
use super::{discovery, for_ha, MqttConfig, Topics};
use crate::door::control_api;
use crate::door::control_api::client::{ClientError, DoorClient};
use crate::door::control_api::people::PNG_SIGNATURE;
use crate::hal::LockState;
use crate::records::audit::EventKind;
use ed25519_dalek::VerifyingKey;
use rumqttc::{
    Client, Connection, Event, LastWill, MqttOptions, Packet, QoS, RecvTimeoutError,
    TlsConfiguration, Transport,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines published per batch before waiting for the broker's acknowledgements.
const BATCH: usize = 50;
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often refusals counted here are handed to the door to record, and the audit chain's
/// head is published.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Door refusals logged one by one each minute (the rest are counted in one line).
const LOGGED_PER_MINUTE: u32 = 10;
/// Largest message sent (an admin's signed gallery; a door's events are far smaller).
const MAX_SEND: usize = 64 << 20;
/// Requests for one stranger's picture at most: the door writes it off its loop, a few ms after
/// the line, so the first request may come too early.
const PICTURE_TRIES: u32 = 5;
/// The wait after the door's rate refusal (it serves a few `site picture` a minute).
const PICTURE_RATE_WAIT: Duration = Duration::from_secs(15);

/// Errors starting the link or sending a message.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A file of the settings (certificate, key, password) could not be used.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The site key could not be read.
    #[error(transparent)]
    Key(#[from] SignError),
    /// Invalid settings.
    #[error("mqtt config: {0}")]
    Config(String),
    /// The broker could not be reached or refused.
    #[error("broker: {0}")]
    Broker(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> LinkError {
    LinkError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn tls_config(cfg: &MqttConfig) -> Result<rustls::ClientConfig, LinkError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = cfg
        .ca
        .as_deref()
        .ok_or_else(|| LinkError::Config("tls needs mqtt.ca".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, e))? {
        roots
            .add(c.map_err(|e| file_err(ca, e))?)
            .map_err(|e| file_err(ca, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| file_err(cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_err(cert, e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| LinkError::Tls(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The connection options of `cfg` (TLS, credentials), with `client_id` and an optional last
/// will (topic, payload).
pub fn options(
    cfg: &MqttConfig,
    client_id: &str,
    will: Option<(&str, &str)>,
) -> Result<MqttOptions, LinkError> {
    if let Some((key, problem)) = cfg.problem() {
        return Err(LinkError::Config(format!("{key}: {problem}")));
    }
    let mut o = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    o.set_keep_alive(Duration::from_secs(15));
    o.set_clean_session(true);
    // The largest message that may come in is a signed gallery of `max_people`; bigger ones
    // are cut off by the client before they are read into memory.
    let incoming = max_gallery_bytes(cfg.max_people) + 1024;
    o.set_max_packet_size(incoming, MAX_SEND);
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| file_err(p, e))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if let Some((topic, payload)) = will {
        o.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
    }
    if cfg.tls {
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(
            tls_config(cfg)?,
        ))));
    }
    Ok(o)
}

pub use super::now_ms;

/// Sends one message (QoS 1) and waits for the broker's acknowledgement: the admin's
/// `facegate publish` and `facegate command`.
pub fn send_signed(
    cfg: &MqttConfig,
    topic: &str,
    envelope: &Envelope,
    retain: bool,
    timeout: Duration,
) -> Result<(), LinkError> {
    let id = format!("facegate-admin-{}-{}", std::process::id(), now_ms());
    let (client, mut conn) = Client::new(options(cfg, &id, None)?, 16);
    let end = Instant::now() + timeout;
    let mut sent = false;
    while Instant::now() < end {
        match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) if !sent => {
                client
                    .try_publish(topic, QoS::AtLeastOnce, retain, envelope.to_json())
                    .map_err(|e| LinkError::Broker(e.to_string()))?;
                sent = true;
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                let _ = client.try_disconnect();
                return Ok(());
            }
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Err(e)) => return Err(LinkError::Broker(e.to_string())),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Err(LinkError::Broker(format!(
        "no acknowledgement from {}:{} within {timeout:?}",
        cfg.host, cfg.port
    )))
}

/// The running link; stopping it publishes what is left (briefly) and `offline`.
pub struct Handle {
    stop: Arc<AtomicBool>,
    alive: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// How long ago the link's loop last went round (for the service watchdog: a hung link
    /// is restarted).
    pub fn since_alive(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.alive.load(Ordering::SeqCst)))
    }

    /// Whether the link's thread has ended (it only ends when stopped).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the link: the last events (the daemon's `stop`) get about two seconds to reach the
    /// broker; what does not is published by the next run.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The door's states as the published events leave them.
#[derive(Debug, Clone, PartialEq)]
struct States {
    lock: &'static str,
    contact: Option<&'static str>,
    alarm: Option<String>,
}

/// The retained JSON of `lockdown/state` from the door's status.
fn lockdown_state(status: &serde_json::Value) -> String {
    serde_json::json!({
        "lockdown": status["door"]["lockdown"].as_bool().unwrap_or(false),
        "version": status["site"]["lockdown_version"].as_u64().unwrap_or(0),
    })
    .to_string()
}

impl States {
    /// The states as the door's `status` reports them now.
    fn seed(&mut self, status: &serde_json::Value) {
        match status["door"]["lock"].as_str() {
            Some("unlocked") => self.lock = "UNLOCKED",
            Some("locked") => self.lock = "LOCKED",
            _ => {}
        }
        self.alarm = status["alarm"].as_str().map(str::to_owned);
    }

    /// The states after an event. `lock`, written by the gate on every line it writes, is
    /// the relay's state: it wins (reader mode's grants leave the relay locked, office hours
    /// hold it unlocked). Lines without it (older logs) are read by their kind.
    fn apply(&mut self, kind: EventKind, reason: Option<&str>, lock: Option<LockState>) {
        use EventKind as K;
        match (lock, kind) {
            (Some(LockState::Unlocked), _) => self.lock = "UNLOCKED",
            (Some(LockState::Locked), _) => self.lock = "LOCKED",
            (None, K::Grant | K::Exit | K::RemoteUnlock) => self.lock = "UNLOCKED",
            (None, K::Relock | K::Start | K::Stop) => self.lock = "LOCKED",
            _ => {}
        }
        match kind {
            K::DoorOpened => self.contact = Some("ON"),
            K::DoorClosed => self.contact = Some("OFF"),
            _ => {}
        }
        match kind {
            // A duress PIN raises the site's alarm (nothing shows at the door).
            K::CameraError | K::LockError | K::AuditFailed | K::Duress => {
                self.alarm = Some(format!("{kind:?}: {}", reason.unwrap_or_default()))
            }
            K::CameraRecovered | K::Start => self.alarm = None,
            _ => {}
        }
    }
}

struct Link {
    cfg: MqttConfig,
    topics: Topics,
    opts: MqttOptions,
    follower: Follower,
    trusted: Option<VerifyingKey>,
    /// The door's control API.
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    alive: Arc<AtomicU64>,
    states: States,
    published_states: Option<States>,
    refusals: Refusals,
    /// The last line the broker has (seq, hash), and whether it is published as the head.
    head: Option<u64>,
    head_published: bool,
    /// When the head was last published (at most once every [`REPORT_EVERY`]).
    head_at: Option<Instant>,
    /// The door took a lockdown change: its state is to be published.
    lockdown_news: bool,
    /// Messages the door refused since the last report (the first few are logged).
    door_refusals: u32,
    last_report: Instant,
    /// The newest stranger's picture still to fetch and publish (`unknown_face_picture`).
    picture: Option<PendingPicture>,
}

/// A stranger's picture to ask the door for: the line's seq, when to ask, how often asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingPicture {
    seq: u64,
    due: Instant,
    tries: u32,
}

/// Messages this side refused (too large, not signed by the site key). The first of each kind
/// in a minute is handed to the door to record at once; the rest are counted and handed over
/// as one count a minute: a flood costs the door a line a minute.
#[derive(Debug, Default)]
struct Refusals {
    /// Kinds already recorded this minute.
    seen: std::collections::BTreeSet<(bool, Refusal)>,
    /// How many of each kind since, not yet recorded.
    counts: BTreeMap<(bool, Refusal), u32>,
}

impl Refusals {
    /// Counts one; `true` for the first of its kind this minute (to record at once).
    fn count(&mut self, gallery: bool, why: Refusal) -> bool {
        if self.seen.insert((gallery, why)) {
            return true;
        }
        let n = self.counts.entry((gallery, why)).or_default();
        *n = n.saturating_add(1);
        false
    }
}

/// Starts the link thread for the door whose audit log is at `audit_path` and whose control
/// API listens on `socket`. Errors are in the settings (files, TLS); the broker and the door
/// are only ever retried.
pub fn start(cfg: &MqttConfig, audit_path: &Path, socket: &Path) -> Result<Handle, LinkError> {
    let topics = Topics::new(&cfg.site, &cfg.door);
    let id = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("facegate-{}-{}", cfg.site, cfg.door));
    let opts = options(cfg, &id, Some((&topics.availability, "offline")))?;
    let trusted = cfg.site_key.as_deref().map(load_public).transpose()?;
    let cursor = cfg.cursor.clone().unwrap_or_else(|| {
        let mut p = audit_path.as_os_str().to_owned();
        p.push(".mqtt-cursor");
        PathBuf::from(p)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicU64::new(now_ms()));
    let link = Link {
        cfg: cfg.clone(),
        topics,
        opts,
        follower: Follower::new(audit_path, &cursor),
        trusted,
        socket: socket.to_owned(),
        stop: stop.clone(),
        alive: alive.clone(),
        states: States {
            lock: "LOCKED",
            contact: None,
            alarm: None,
        },
        published_states: None,
        refusals: Refusals::default(),
        head: None,
        head_published: true,
        head_at: None,
        lockdown_news: false,
        door_refusals: 0,
        last_report: Instant::now(),
        picture: None,
    };
    let thread = std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || link.run())
        .map_err(|e| LinkError::Config(format!("cannot start the link thread: {e}")))?;
    Ok(Handle {
        stop,
        alive,
        thread: Some(thread),
    })
}

/// One connection's bookkeeping: QoS 1 messages sent and acknowledged, and the audit line the
/// outstanding batch ends at.
struct Session {
    client: Client,
    conn: Connection,
    connected: bool,
    sent: u64,
    acked: u64,
    batch: Option<(u64, u64)>,
}

impl Link {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(250);
        let mut session: Option<Session> = None;
        let mut down_since: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        loop {
            self.alive.store(now_ms(), Ordering::SeqCst);
            if self.last_report.elapsed() >= REPORT_EVERY {
                self.last_report = Instant::now();
                self.report_refusals();
                if let Some(s) = session.as_mut().filter(|s| s.connected) {
                    self.publish_head(s);
                }
            }
            if self.stop.load(Ordering::SeqCst) && drain_until.is_none() {
                drain_until = Some(Instant::now() + Duration::from_secs(2));
            }
            if let Some(end) = drain_until {
                let idle = session
                    .as_ref()
                    .is_none_or(|s| s.connected && s.batch.is_none())
                    && self.follower.poll().is_empty();
                if Instant::now() >= end || idle || session.as_ref().is_some_and(|s| !s.connected) {
                    if let Some(s) = session.take() {
                        self.goodbye(s);
                    }
                    return;
                }
            }
            let s = session.get_or_insert_with(|| {
                let (client, conn) = Client::new(self.opts.clone(), 1024);
                Session {
                    client,
                    conn,
                    connected: false,
                    sent: 0,
                    acked: 0,
                    batch: None,
                }
            });
            match s.conn.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    if let Some(t) = down_since.take() {
                        tracing::info!("broker reachable again after {:.0?}", t.elapsed());
                    } else {
                        tracing::info!(
                            "connected to the broker {}:{}",
                            self.cfg.host,
                            self.cfg.port
                        );
                    }
                    backoff = Duration::from_millis(250);
                    s.connected = true;
                    self.published_states = None;
                    self.hello(s);
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                    s.acked += 1;
                    if let Some((mark, seq)) = s.batch {
                        if s.acked >= mark {
                            s.batch = None;
                            if let Err(e) = self.follower.acknowledge(seq) {
                                tracing::warn!("cannot save the mqtt cursor: {e}");
                            }
                            self.head = Some(seq);
                            self.head_published = false;
                            if self.head_at.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                                self.publish_head(s);
                            }
                        }
                    }
                }
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    self.incoming(&p.topic, &p.payload);
                    if let Some(state) = self.take_lockdown_news() {
                        self.send(s, &self.topics.lockdown_state.clone(), true, state);
                    }
                }
                Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Err(e)) => {
                    if down_since.is_none() {
                        tracing::warn!("broker {}:{}: {e}; retrying", self.cfg.host, self.cfg.port);
                        down_since = Some(Instant::now());
                    }
                    // A fresh session: nothing half-acknowledged is carried over (the batch is
                    // sent again; subscribers drop duplicates by id).
                    session = None;
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    session = None;
                    continue;
                }
            }
            if s.connected && s.batch.is_none() {
                self.publish_batch(s);
            }
            if s.connected {
                self.publish_picture(s);
            }
        }
    }

    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
    }

    fn send(&self, s: &mut Session, topic: &str, retain: bool, payload: String) {
        match s
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => s.sent += 1,
            Err(e) => tracing::warn!("mqtt publish to {topic}: {e}"),
        }
    }

    /// After each connect: discovery, the current states, online, subscriptions.
    fn hello(&mut self, s: &mut Session) {
        if self.cfg.discovery {
            for (topic, body) in discovery::configs(
                &self.cfg.discovery_prefix,
                &self.topics,
                &self.cfg.site,
                &self.cfg.door,
            ) {
                self.send(s, &topic, true, body);
            }
            let (topic, body) = discovery::unknown_face_config(
                &self.cfg.discovery_prefix,
                &self.topics,
                &self.cfg.site,
                &self.cfg.door,
                self.cfg.unknown_face_picture,
            );
            self.send(s, &topic, true, body);
        }
        if !self.cfg.unknown_face_picture {
            // Off: a stranger's face an earlier run left retained on the broker goes.
            self.send(s, &self.topics.unknown_face.clone(), true, String::new());
        }
        // The states now, retained, at every connect (finding 16: they used to wait for the
        // next audit line, and Home Assistant showed "unknown" until then). They go before
        // `online`, so an entity that becomes available shows the door as it is.
        // What the door holds now (a link restarted beside a running door starts from the
        // door's own status, not from defaults: an alarm stays on).
        let status = self.door_status();
        if let Some(st) = &status {
            self.states.seed(st);
        }
        self.published_states = None;
        self.publish_states(s);
        self.send(s, &self.topics.availability.clone(), true, "online".into());
        if self.trusted.is_some() {
            let _ = s
                .client
                .try_subscribe(&self.topics.gallery, QoS::AtLeastOnce);
        }
        if self.cfg.commands {
            for topic in [
                &self.topics.command,
                &self.topics.site_command,
                &self.topics.lockdown,
                &self.topics.site_lockdown,
            ] {
                let _ = s.client.try_subscribe(topic, QoS::AtLeastOnce);
            }
            // What the door holds now, for the admin's `--wait` and for doors' dashboards.
            if let Some(state) = status.as_ref().map(lockdown_state) {
                self.send(s, &self.topics.lockdown_state.clone(), true, state);
            }
        }
        self.head_published = false;
        self.publish_head(s);
    }

    /// The audit chain's head as the broker has it, retained: an anchor outside the device
    /// (`facegate audit verify --head`): a log cut or rebuilt afterwards no longer holds it.
    fn publish_head(&mut self, s: &mut Session) {
        if self.head_published {
            return;
        }
        let Some(seq) = self.head else { return };
        let Some(line) = self.follower.acknowledged_head().filter(|l| l.seq == seq) else {
            return;
        };
        let head = serde_json::json!({
            "seq": line.seq,
            "hash": line.hash,
            "time": line.json.get("time"),
        });
        self.send(s, &self.topics.audit_head.clone(), true, head.to_string());
        self.head_published = true;
        self.head_at = Some(Instant::now());
    }

    /// The door's status (its control API), if it answers.
    fn door_status(&self) -> Option<serde_json::Value> {
        let status = match control_api::ask(&self.socket, "status") {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                tracing::warn!("the door's status: {e}");
                return None;
            }
            Err(e) => {
                tracing::warn!("the door's control API {}: {e}", self.socket.display());
                return None;
            }
        };
        serde_json::from_str(&status).ok()
    }

    /// The door's lockdown state as the retained JSON of `lockdown/state`.
    fn door_lockdown(&self) -> Option<String> {
        self.door_status().as_ref().map(lockdown_state)
    }
    /// Publishes the next lines of the log (and the states they leave) as one batch.
    fn publish_batch(&mut self, s: &mut Session) {
        let lines: Vec<Line> = self.follower.poll().iter().take(BATCH).cloned().collect();
        if lines.is_empty() {
            return;
        }
        let (site, door) = (self.cfg.site.clone(), self.cfg.door.clone());
        for line in &lines {
            let kind: Option<EventKind> = line
                .json
                .get("event")
                .and_then(|k| serde_json::from_value(k.clone()).ok());
            let reason = line.json.get("reason").and_then(|r| r.as_str());
            let lock: Option<LockState> = line
                .json
                .get("lock")
                .and_then(|l| serde_json::from_value(l.clone()).ok());
            if let Some(k) = kind {
                self.states.apply(k, reason, lock);
            }
            // Only the newest stranger matters (a backlog's older ones are not fetched).
            if self.cfg.unknown_face_picture && for_ha::stranger_picture(line) {
                self.picture = Some(PendingPicture {
                    seq: line.seq,
                    due: Instant::now(),
                    tries: 0,
                });
            }
            // What leaves the door is cut down in `for_ha` (issue #24 item 10, finding 14).
            if let Some(access) = for_ha::access_event(line, &site, &door) {
                self.send(s, &self.topics.access.clone(), false, access.to_string());
            }
            let ev = for_ha::archive_event(line, &site, &door);
            self.send(s, &self.topics.event.clone(), false, ev.to_string());
        }
        self.publish_states(s);
        let last = lines.last().map_or(0, |l| l.seq);
        s.batch = Some((s.sent, last));
    }

    fn publish_states(&mut self, s: &mut Session) {
        if self.published_states.as_ref() == Some(&self.states) {
            return;
        }
        let st = self.states.clone();
        let messages =
            for_ha::state_messages(&self.topics, st.lock, st.contact, st.alarm.as_deref());
        for (topic, payload) in messages {
            self.send(s, &topic, true, payload);
        }
        self.published_states = Some(st);
    }

    /// Asks the door for the pending stranger's picture when it is due, and publishes it
    /// retained (raw PNG) to `unknown_face`. Too early (not written yet), the door's rate or
    /// the door away: asked again later, [`PICTURE_TRIES`] times at most; refused: dropped.
    fn publish_picture(&mut self, s: &mut Session) {
        let Some(p) = self.picture.as_mut() else {
            return;
        };
        if Instant::now() < p.due {
            return;
        }
        p.tries += 1;
        let PendingPicture { seq, tries, .. } = *p;
        let asked = DoorClient::connect(&self.socket, None).and_then(|mut d| d.site_picture(seq));
        let retry = match asked {
            Ok(png) => {
                self.picture = None;
                if !png.starts_with(PNG_SIGNATURE) {
                    tracing::warn!("the door's picture of line {seq} is not a PNG: not published");
                    return;
                }
                let bytes = png.len();
                match s.client.try_publish(
                    self.topics.unknown_face.as_str(),
                    QoS::AtLeastOnce,
                    true,
                    png,
                ) {
                    Ok(()) => {
                        s.sent += 1;
                        tracing::info!(seq, bytes, "the latest unknown face published");
                    }
                    Err(e) => tracing::warn!("mqtt publish to {}: {e}", self.topics.unknown_face),
                }
                return;
            }
            Err(ClientError::Refused(e)) if e.starts_with("no picture") => {
                Some(Duration::from_secs(1 << tries))
            }
            Err(ClientError::Refused(e)) if e == "refused: rate" => Some(PICTURE_RATE_WAIT),
            Err(ClientError::Refused(e)) => {
                let e: String = e.chars().take(120).collect();
                tracing::warn!(
                    "the door refused the picture of line {seq}: {}",
                    e.escape_default()
                );
                None
            }
            Err(e) => {
                tracing::warn!("the door's control API {}: {e}", self.socket.display());
                Some(Duration::from_secs(1 << tries))
            }
        };
        match (retry, self.picture.as_mut()) {
            (Some(wait), Some(p)) if tries < PICTURE_TRIES => p.due = Instant::now() + wait,
            _ => {
                if retry.is_some() {
                    tracing::warn!(
                        "the picture of line {seq} not published: the door did not serve it"
                    );
                }
                self.picture = None;
            }
        }
    }

    fn goodbye(&mut self, mut s: Session) {
        if !s.connected {
            return;
        }
        // The last head the broker has, so the anchor is as new as the published log.
        self.publish_head(&mut s);
        self.send(
            &mut s,
            &self.topics.availability.clone(),
            true,
            "offline".into(),
        );
        let _ = s.client.try_disconnect();
        let end = Instant::now() + Duration::from_millis(500);
        while Instant::now() < end {
            match s.conn.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) => break,
                Err(RecvTimeoutError::Disconnected) => break,
                _ => {}
            }
        }
    }

    /// A message from the broker: dropped here if too large or not signed by the site key
    /// (counted), else handed to the door, which judges it.
    fn incoming(&mut self, topic: &str, payload: &[u8]) {
        let Some(key) = &self.trusted else { return };
        let gallery = topic == self.topics.gallery;
        let command = self.cfg.commands
            && [
                &self.topics.command,
                &self.topics.site_command,
                &self.topics.lockdown,
                &self.topics.site_lockdown,
            ]
            .iter()
            .any(|t| *t == topic);
        if !gallery && !command {
            return;
        }
        if payload.is_empty() {
            return; // a retained message cleared
        }
        let max = if gallery {
            max_gallery_bytes(self.cfg.max_people)
        } else {
            MAX_COMMAND_BYTES
        };
        if payload.len() > max {
            return self.refused_here(gallery, Refusal::TooLarge);
        }
        let envelope = match Envelope::open(payload, key) {
            Ok(e) => e,
            Err(SignError::BadSignature) => {
                return self.refused_here(gallery, Refusal::BadSignature)
            }
            Err(_) => return self.refused_here(gallery, Refusal::Malformed),
        };
        // One line, whatever the sender's formatting: the signature covers the fields.
        let json = envelope.to_json();
        let answer = if gallery {
            control_api::ask_with_payload(
                &self.socket,
                &format!("site gallery {}", json.len()),
                json.as_bytes(),
            )
        } else {
            control_api::ask(&self.socket, &format!("site command {json}"))
        };
        match answer {
            Ok(Ok(text)) => {
                tracing::info!("site message taken by the door: {text}");
                if text.starts_with("taken: lockdown") {
                    self.lockdown_news = true;
                }
            }
            // The door recorded it (within its own budget).
            Ok(Err(text)) => {
                // A flood of replays would be a flood of log lines: the first few a minute.
                self.door_refusals = self.door_refusals.saturating_add(1);
                if self.door_refusals <= LOGGED_PER_MINUTE {
                    tracing::warn!("site message refused by the door: {text}");
                } else {
                    tracing::debug!("site message refused by the door: {text}");
                }
            }
            Err(e) => tracing::error!(
                "the door's control API {}: {e}; the message waits for the broker's next copy",
                self.socket.display()
            ),
        }
    }

    fn refused_here(&mut self, gallery: bool, why: Refusal) {
        if self.refusals.count(gallery, why) {
            let what = if gallery { "gallery" } else { "command" };
            tracing::warn!(
                "site {what} message refused: {why} (more this minute are counted, reported once)"
            );
            self.tell_door(gallery, why, 1);
        }
    }

    /// Hands the refusals counted this minute to the door to record (one line each kind).
    fn report_refusals(&mut self) {
        let door = std::mem::take(&mut self.door_refusals);
        if door > LOGGED_PER_MINUTE {
            tracing::warn!(
                "{} more site messages refused by the door in the last minute (not logged one by one)",
                door - LOGGED_PER_MINUTE
            );
        }
        self.refusals.seen.clear();
        for ((gallery, why), count) in std::mem::take(&mut self.refusals.counts) {
            self.tell_door(gallery, why, count);
        }
    }

    fn tell_door(&self, gallery: bool, why: Refusal, count: u32) {
        let what = if gallery { "gallery" } else { "command" };
        let line = format!("site refused {what} {why} {count}");
        if let Err(e) = control_api::ask(&self.socket, &line)
            .map_err(|e| e.to_string())
            .and_then(|a| a)
        {
            tracing::warn!("{count} refused site {what} messages ({why}) not recorded: {e}");
        }
    }

    /// The lockdown state to publish after the door took a lockdown change.
    fn take_lockdown_news(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.lockdown_news) {
            return None;
        }
        self.door_lockdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> States {
        States {
            lock: "LOCKED",
            contact: None,
            alarm: None,
        }
    }

    /// Defect of c8d23fe: Home Assistant was told LOCKED while office hours held the door open,
    /// and UNLOCKED for a reader-mode grant that never moved the relay.
    /// A link restarted beside a running door published its defaults (locked, no alarm) until
    /// the next audit line: an alarm in force showed as off.
    #[test]
    fn a_link_that_connects_starts_from_the_doors_status_not_from_defaults() {
        let mut s = states();
        let status = serde_json::json!({
            "door": {"lock": "unlocked", "lockdown": true},
            "alarm": "ALARM: the audit log cannot be written",
            "site": {"lockdown_version": 42},
        });
        s.seed(&status);
        assert_eq!(s.lock, "UNLOCKED");
        assert_eq!(
            s.alarm.as_deref(),
            Some("ALARM: the audit log cannot be written")
        );
        assert_eq!(lockdown_state(&status), r#"{"lockdown":true,"version":42}"#);
        s.seed(&serde_json::json!({"door": {"lock": "locked"}, "alarm": null}));
        assert_eq!((s.lock, s.alarm), ("LOCKED", None));
    }

    #[test]
    fn the_lock_state_published_is_the_relays_as_the_gate_recorded_it() {
        let mut s = states();
        let unlocked = Some(LockState::Unlocked);
        s.apply(EventKind::OfficeHoursStart, None, unlocked);
        assert_eq!(s.lock, "UNLOCKED");
        s.apply(EventKind::Relock, None, Some(LockState::Locked));
        assert_eq!(s.lock, "LOCKED");
        // Reader mode: the grant and the card read leave the relay locked.
        s.apply(EventKind::Grant, None, Some(LockState::Locked));
        s.apply(EventKind::CredentialSent, None, Some(LockState::Locked));
        assert_eq!(s.lock, "LOCKED");
        // A line of an older log (no `lock`) is read by its kind.
        s.apply(EventKind::Exit, None, None);
        assert_eq!(s.lock, "UNLOCKED");
        s.apply(EventKind::Start, None, None);
        assert_eq!(s.lock, "LOCKED");
    }
}

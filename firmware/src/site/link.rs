//! The link thread: connects to the broker (rumqttc, rustls), publishes the audit log's new
//! lines with a persisted cursor, the door's states and Home Assistant discovery, and takes the
//! signed site gallery and commands. Everything it needs from the door loop goes through
//! [`Control`]; a broker that is down only delays publishing.

use super::follow::{Follower, Line};
use super::signing::{load_public, Envelope, SignError};
use super::{discovery, for_ha, Command, MqttConfig, Topics};
use crate::control::Control;
use crate::hal::LockState;
use crate::people::gallery::{Gallery, Locked};
use crate::records::audit::EventKind;
use ed25519_dalek::VerifyingKey;
use rumqttc::{
    Client, Connection, Event, LastWill, MqttOptions, Packet, QoS, RecvTimeoutError,
    TlsConfiguration, Transport,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines published per batch before waiting for the broker's acknowledgements.
const BATCH: usize = 50;
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A remote unlock older than this is refused (a delayed or replayed message).
const UNLOCK_MAX_AGE_MS: u64 = 30_000;
/// Largest message taken (a site gallery of a few thousand people).
const MAX_PACKET: usize = 64 << 20;

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
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
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

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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

/// What the door accepted from the site, kept across restarts (replays of older messages are
/// refused, and a lockdown survives a restart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct SiteState {
    gallery_version: u64,
    command_version: u64,
    lockdown_by: Option<String>,
}

/// The running link; stopping it publishes what is left (briefly) and `offline`.
pub struct Handle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
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

impl States {
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
            K::CameraError | K::LockError | K::AuditFailed => {
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
    gallery_path: PathBuf,
    fingerprint: String,
    control: Control,
    stop: Arc<AtomicBool>,
    state_path: PathBuf,
    state: SiteState,
    states: States,
    published_states: Option<States>,
}

/// Starts the link thread for the door whose audit log and gallery are at these paths, running
/// the model with `fingerprint`. Errors are in the settings (files, TLS); the broker itself is
/// only ever retried.
pub fn start(
    cfg: &MqttConfig,
    audit_path: &Path,
    gallery_path: &Path,
    fingerprint: &str,
    control: Control,
) -> Result<Handle, LinkError> {
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
    let state_path = {
        let mut p = gallery_path.as_os_str().to_owned();
        p.push(".site.json");
        PathBuf::from(p)
    };
    let state: SiteState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if cfg.commands {
        if let Some(by) = &state.lockdown_by {
            tracing::warn!("lockdown (asked by {by}) still in force from before the restart");
            control.set_lockdown(true);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let link = Link {
        cfg: cfg.clone(),
        topics,
        opts,
        follower: Follower::new(audit_path, &cursor),
        trusted,
        gallery_path: gallery_path.to_owned(),
        fingerprint: fingerprint.to_owned(),
        control,
        stop: stop.clone(),
        state_path,
        state,
        states: States {
            lock: "LOCKED",
            contact: None,
            alarm: None,
        },
        published_states: None,
    };
    let thread = std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || link.run())
        .map_err(|e| LinkError::Config(format!("cannot start the link thread: {e}")))?;
    Ok(Handle {
        stop,
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
                        }
                    }
                }
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => self.incoming(&p.topic, &p.payload),
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
        }
        // The states now, retained, at every connect (finding 16: they used to wait for the
        // next audit line, and Home Assistant showed "unknown" until then). They go before
        // `online`, so an entity that becomes available shows the door as it is.
        self.published_states = None;
        self.publish_states(s);
        self.send(s, &self.topics.availability.clone(), true, "online".into());
        if self.trusted.is_some() {
            let _ = s
                .client
                .try_subscribe(&self.topics.gallery, QoS::AtLeastOnce);
        }
        if self.cfg.commands {
            let _ = s
                .client
                .try_subscribe(&self.topics.command, QoS::AtLeastOnce);
            let _ = s
                .client
                .try_subscribe(&self.topics.site_command, QoS::AtLeastOnce);
        }
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

    fn goodbye(&mut self, mut s: Session) {
        if !s.connected {
            return;
        }
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

    fn incoming(&mut self, topic: &str, payload: &[u8]) {
        if topic == self.topics.gallery {
            match self.take_gallery(payload) {
                Ok(Some(msg)) => tracing::info!("{msg}"),
                Ok(None) => {}
                Err(why) => {
                    tracing::error!("site gallery refused: {why}");
                    self.control.note(
                        EventKind::GalleryRefused,
                        None,
                        format!(
                            "site gallery from the broker refused: {why}; the gallery in use stays"
                        ),
                    );
                }
            }
        } else if self.cfg.commands
            && (topic == self.topics.command || topic == self.topics.site_command)
        {
            if let Err(why) = self.take_command(payload) {
                tracing::error!("command refused: {why}");
                self.control.note(
                    EventKind::CommandRefused,
                    None,
                    format!("command refused: {why}"),
                );
            }
        }
    }

    fn open(&self, payload: &[u8], kind: &str) -> Result<Option<Envelope>, String> {
        let Some(key) = &self.trusted else {
            return Ok(None);
        };
        let e = Envelope::open(payload, key).map_err(|e| e.to_string())?;
        if e.kind != kind {
            return Err(format!(
                "a {:?} message where a {kind} was expected",
                e.kind
            ));
        }
        if e.site != self.cfg.site {
            return Err(format!(
                "for site {:?}, this is {:?}",
                e.site, self.cfg.site
            ));
        }
        Ok((e.door == "*" || e.door == self.cfg.door).then_some(e))
    }

    fn save_state(&self) {
        let bytes = serde_json::to_vec(&self.state).unwrap_or_default();
        if let Err(e) = crate::people::gallery::write_atomic(&self.state_path, &bytes) {
            tracing::warn!("cannot save the site state: {e}");
        }
    }

    /// A signed gallery: checked, then saved atomically for the door's reloader.
    fn take_gallery(&mut self, payload: &[u8]) -> Result<Option<String>, String> {
        if payload.is_empty() {
            return Ok(None); // the retained gallery was cleared
        }
        let Some(e) = self.open(payload, "gallery")? else {
            return Ok(None);
        };
        if e.fingerprint != self.fingerprint {
            return Err(format!(
                "made with model {}, this door runs {}",
                e.fingerprint, self.fingerprint
            ));
        }
        if e.version == self.state.gallery_version {
            return Ok(None); // the retained message again, after a reconnect
        }
        if e.version < self.state.gallery_version {
            return Err(format!(
                "older (version {}) than the site gallery in use (version {}): replayed?",
                e.version, self.state.gallery_version
            ));
        }
        let g = Gallery::parse(&e.payload, Path::new("site gallery"), &self.fingerprint)
            .map_err(|e| e.to_string())?;
        Locked::acquire(&self.gallery_path)
            .and_then(|l| l.save(&g))
            .map_err(|e| format!("cannot save it: {e}"))?;
        self.state.gallery_version = e.version;
        self.save_state();
        Ok(Some(format!(
            "site gallery version {} saved ({} people)",
            e.version,
            g.people.len()
        )))
    }

    fn take_command(&mut self, payload: &[u8]) -> Result<(), String> {
        let Some(e) = self.open(payload, "command")? else {
            return Ok(());
        };
        if e.version <= self.state.command_version {
            return Err(format!(
                "not newer (version {}) than the last command taken ({}): replayed?",
                e.version, self.state.command_version
            ));
        }
        let c: Command = serde_json::from_str(&e.payload).map_err(|e| e.to_string())?;
        let age = now_ms().saturating_sub(e.version);
        match c.action.as_str() {
            "lockdown" => {
                self.control.set_lockdown(true);
                self.state.lockdown_by = Some(c.by.clone());
                self.control.note(
                    EventKind::Lockdown,
                    Some(c.by),
                    "lockdown: no face unlocks until cleared".into(),
                );
            }
            "clear_lockdown" => {
                self.control.set_lockdown(false);
                self.state.lockdown_by = None;
                self.control.note(
                    EventKind::LockdownCleared,
                    Some(c.by),
                    "lockdown cleared".into(),
                );
            }
            "unlock" if age > UNLOCK_MAX_AGE_MS => {
                return Err(format!("remote unlock by {} is {age} ms old", c.by));
            }
            "unlock" => self.control.request_remote_unlock(c.by),
            other => return Err(format!("unknown action {other:?}")),
        }
        self.state.command_version = e.version;
        self.save_state();
        Ok(())
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

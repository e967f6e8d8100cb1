//! The site link: a door's events out to an MQTT broker, Home Assistant discovery, the site's
//! signed gallery and optional signed commands in. It runs as a process of its own
//! (`facegate-site`, with the network; the door's `facegated` has none): it follows the audit
//! log (the source of truth) and hands signed messages to the door's control API, where
//! [`trust`] judges them. Recognition and relocking never wait for the network.

pub mod acks;
pub mod discovery;
pub mod follow;
pub mod for_ha;
pub mod link;
pub mod signing;
pub mod trust;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use link::{send_signed, start, Handle, LinkError};
pub use trust::SiteTrust;

/// Milliseconds since the Unix epoch now: a site message's version, and the door's clock it is
/// judged by.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `[mqtt]`: the broker and this door's place in the site. Absent: the daemon opens no network
/// socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (8883: MQTT over TLS).
    pub port: u16,
    /// TLS to the broker (rustls). May be off only for a broker on the same machine
    /// (`localhost`, 127.0.0.0/8, `::1`): [`MqttConfig::problem`] refuses it otherwise, since
    /// passwords, events and the site gallery would cross the network in clear.
    pub tls: bool,
    /// CA certificate(s) (PEM) that signed the broker's certificate; required with TLS.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for brokers that authenticate doors by certificate.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// User name, for brokers with password authentication.
    pub username: Option<String>,
    /// File holding the password (first line), so the config can stay world-readable.
    pub password_file: Option<PathBuf>,
    /// The site's name (a topic level).
    pub site: String,
    /// This door's name (a topic level).
    pub door: String,
    /// MQTT client id (default `facegate-<site>-<door>`).
    pub client_id: Option<String>,
    /// Where the publisher keeps how far the broker has the audit log (default: beside the
    /// audit log, `<audit path>.mqtt-cursor`).
    pub cursor: Option<PathBuf>,
    /// The site's public key (`facegate keygen`): with it the door takes the signed site
    /// gallery from the broker; without it, the local gallery file only.
    pub site_key: Option<PathBuf>,
    /// Take signed lockdown and remote-unlock commands (needs `site_key`).
    pub commands: bool,
    /// Publish Home Assistant discovery configs.
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// The most people a signed site gallery may hold: it bounds the size of a gallery message
    /// ([`trust::max_gallery_bytes`]), so the broker cannot make the door take any size.
    pub max_people: usize,
    /// Share the picture of the latest stranger refused (a denial of an unknown face) with
    /// the site: the door serves it to the link (`site picture`), which publishes it retained
    /// to `unknown_face` for Home Assistant's image entity. Biometric data: off by default;
    /// needs `[audit] faces`.
    pub unknown_face_picture: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 8883,
            tls: true,
            ca: None,
            cert: None,
            key: None,
            username: None,
            password_file: None,
            site: "site".into(),
            door: "door".into(),
            client_id: None,
            cursor: None,
            site_key: None,
            commands: false,
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            max_people: 2000,
            unknown_face_picture: false,
        }
    }
}

impl MqttConfig {
    /// What is wrong with these settings, if anything: `(key, problem)`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let level = |s: &str| {
            !s.is_empty() && !s.contains(['/', '+', '#']) && !s.chars().any(char::is_control)
        };
        if !level(&self.site) {
            return Some(("mqtt.site", "must be one topic level (no / + #)".into()));
        }
        if !level(&self.door) || self.door == "*" {
            return Some(("mqtt.door", "must be one topic level (no / + # *)".into()));
        }
        if !self.tls && !Self::is_loopback(&self.host) {
            return Some((
                "mqtt.tls",
                format!(
                    "TLS may be off only for a broker on this machine (localhost, 127.0.0.0/8, ::1), not {:?}: passwords, events and the site gallery would cross the network in clear",
                    self.host
                ),
            ));
        }
        if self.tls && self.ca.is_none() {
            return Some((
                "mqtt.ca",
                "TLS needs the CA certificate that signed the broker's".into(),
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Some(("mqtt.cert", "a client certificate needs its key".into()));
        }
        if self.commands && self.site_key.is_none() {
            return Some((
                "mqtt.commands",
                "commands must be signed: set mqtt.site_key".into(),
            ));
        }
        if self.max_people == 0 {
            return Some(("mqtt.max_people", "must be 1 or more".into()));
        }
        None
    }
    /// Whether `host` names this machine: `localhost`, 127.0.0.0/8 or `::1` (bracketed or not,
    /// or IPv4-mapped). Any other name may resolve off the machine, so it is not trusted.
    fn is_loopback(host: &str) -> bool {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        if h.eq_ignore_ascii_case("localhost") || h.eq_ignore_ascii_case("localhost.") {
            return true;
        }
        h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

/// The topic tree of one door.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    /// Every audit event, JSON, QoS 1 (`facegate/<site>/<door>/event`).
    pub event: String,
    /// Grants and denials only, for Home Assistant's event entity.
    pub access: String,
    /// `LOCKED` / `UNLOCKED`, retained.
    pub lock_state: String,
    /// Door contact `ON` (open) / `OFF`, retained.
    pub contact_state: String,
    /// `ON` while a camera, lock or audit fault is unresolved, retained.
    pub alarm_state: String,
    /// The alarm's cause, JSON, retained.
    pub alarm_attributes: String,
    /// `online` / `offline` (the last will), retained.
    pub availability: String,
    /// Signed commands for this door.
    pub command: String,
    /// Signed commands for every door of the site.
    pub site_command: String,
    /// The site's signed gallery, retained.
    pub gallery: String,
    /// Signed lockdown state for this door, retained (a door that connects later takes it).
    pub lockdown: String,
    /// Signed lockdown state for every door of the site, retained.
    pub site_lockdown: String,
    /// The lockdown this door holds (`{"lockdown":bool,"version":N}`), retained: the admin's
    /// acknowledgement.
    pub lockdown_state: String,
    /// The audit chain's head as the broker has it (`{"seq","hash","time"}`), retained: an
    /// anchor outside the door for `facegate audit verify --head`.
    pub audit_head: String,
    /// The latest stranger's face (PNG bytes), retained, with `unknown_face_picture` only.
    pub unknown_face: String,
}

impl Topics {
    /// The topics of `door` at `site`.
    pub fn new(site: &str, door: &str) -> Self {
        let d = format!("facegate/{site}/{door}");
        Self {
            event: format!("{d}/event"),
            access: format!("{d}/access"),
            lock_state: format!("{d}/lock/state"),
            contact_state: format!("{d}/contact/state"),
            alarm_state: format!("{d}/alarm/state"),
            alarm_attributes: format!("{d}/alarm/attributes"),
            availability: format!("{d}/availability"),
            command: format!("{d}/command"),
            site_command: format!("facegate/{site}/command"),
            gallery: format!("facegate/{site}/gallery"),
            lockdown: format!("{d}/lockdown"),
            site_lockdown: format!("facegate/{site}/lockdown"),
            lockdown_state: format!("{d}/lockdown/state"),
            audit_head: format!("{d}/audit/head"),
            unknown_face: format!("{d}/unknown_face"),
        }
    }
}

/// A command in a signed envelope's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// `lockdown`, `clear_lockdown` or `unlock`.
    pub action: String,
    /// Who asked (recorded in the audit log).
    pub by: String,
}

//! `facegate keygen`, `publish` and `command`: the admin side of a site of several doors
//! (the site key, the signed site gallery and signed commands sent over MQTT).

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use facegate::people::gallery::Gallery;
use facegate::site::signing::{Envelope, SiteKey};
use facegate::site::{send_signed, Command as SiteCommand, MqttConfig, Topics};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// What `facegate command` asks.
#[derive(Subcommand, Clone, Debug)]
pub enum Action {
    /// No face unlocks until cleared (the exit button and remote unlocks still work).
    Lockdown,
    /// Lifts a lockdown.
    ClearLockdown,
    /// One momentary unlock now.
    Unlock,
}

/// The door a command goes to: `--door` as given; without it, every door (`*`) for a lockdown or
/// its end (acts on the whole site), but an unlock must name its door, or `'*'` on purpose: an
/// unlock of every door by a forgotten flag is the mistake this prevents.
pub fn door_for(action: &Action, door: Option<&str>) -> Result<String> {
    match (action, door) {
        (_, Some(d)) if d.trim().is_empty() => bail!("--door: empty door name"),
        (_, Some(d)) => Ok(d.to_owned()),
        (Action::Unlock, None) => {
            bail!("--door: which door to unlock? (its mqtt.door name, or '*' for every door of the site)")
        }
        (Action::Lockdown | Action::ClearLockdown, None) => Ok("*".to_owned()),
    }
}

/// The broker settings: the `[mqtt]` table of a config file.
pub fn mqtt_of(path: &Path) -> Result<MqttConfig> {
    let c = facegate::config::Config::load(path)?;
    c.mqtt
        .with_context(|| format!("{}: no [mqtt] section", path.display()))
}

/// Writes a new site key pair: `KEY` (private, 0600) and `KEY.pub`.
pub fn keygen(private: &Path) -> Result<ExitCode> {
    let mut public = private.as_os_str().to_owned();
    public.push(".pub");
    let key = SiteKey::generate()?;
    key.save(private, Path::new(&public))?;
    println!(
        "private key {} (keep it on the admin machine only)\npublic key {} = {}\ncopy the public key to each door and set mqtt.site_key",
        private.display(),
        Path::new(&public).display(),
        key.public_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// Sends the gallery as the site's retained, signed gallery.
pub fn publish(
    gallery: &Path,
    fingerprint: &str,
    key: &Path,
    mqtt: &MqttConfig,
) -> Result<ExitCode> {
    let g = Gallery::load(gallery, fingerprint)?;
    let text = toml::to_string(&g).context("serialising the gallery")?;
    let key = SiteKey::load(key)?;
    let env = Envelope::sign(
        &key,
        "gallery",
        &mqtt.site,
        "*",
        facegate::site::link::now_ms(),
        fingerprint,
        text,
    );
    let topic = Topics::new(&mqtt.site, "-").gallery;
    send_signed(mqtt, &topic, &env, true, Duration::from_secs(20))?;
    println!(
        "published the gallery ({} people, {} bytes) to {topic} (retained)",
        g.people.len(),
        env.payload.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Sends a signed command to one door, or every door (`door` = `*`).
pub fn command(
    action: &Action,
    door: &str,
    by: &str,
    key: &Path,
    mqtt: &MqttConfig,
) -> Result<ExitCode> {
    if by.trim().is_empty() {
        bail!("--by: say who asks (it is recorded in the audit log)");
    }
    let action = match action {
        Action::Lockdown => "lockdown",
        Action::ClearLockdown => "clear_lockdown",
        Action::Unlock => "unlock",
    };
    let payload = serde_json::to_string(&SiteCommand {
        action: action.into(),
        by: by.into(),
    })?;
    let key = SiteKey::load(key)?;
    let env = Envelope::sign(
        &key,
        "command",
        &mqtt.site,
        door,
        facegate::site::link::now_ms(),
        "",
        payload,
    );
    let topics = Topics::new(&mqtt.site, door);
    let topic = if door == "*" {
        topics.site_command
    } else {
        topics.command
    };
    send_signed(mqtt, &topic, &env, false, Duration::from_secs(20))?;
    println!("sent {action} to {topic}");
    Ok(ExitCode::SUCCESS)
}

//! `facegate keygen`, `publish` and `command`: the admin side of a site of several doors
//! (the site key, the signed site gallery and signed commands sent over MQTT).

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use facegate::door::control_api::is_name;
use facegate::people::gallery::Gallery;
use facegate::site::acks::Acks;
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

/// Sends a signed command to one door, or every door (`door` = `*`). A lockdown or its end is
/// a retained state (a door that connects later takes it); with `wait`, waits for each door's
/// acknowledgement and names those that did not give one.
pub fn command(
    action: &Action,
    door: &str,
    by: &str,
    key: &Path,
    mqtt: &MqttConfig,
    wait: Option<Duration>,
) -> Result<ExitCode> {
    if !is_name(by) {
        bail!("--by: who asks, 1 to 64 of A-Z a-z 0-9 . _ - @ (it is recorded in each door's audit log)");
    }
    let (word, retained) = match action {
        Action::Lockdown => ("lockdown", true),
        Action::ClearLockdown => ("clear_lockdown", true),
        Action::Unlock => ("unlock", false),
    };
    if wait.is_some() && !retained {
        bail!("--wait: only for lockdown and clear-lockdown (an unlock is audited at the door)");
    }
    let payload = serde_json::to_string(&SiteCommand {
        action: word.into(),
        by: by.into(),
    })?;
    let key = SiteKey::load(key)?;
    let version = facegate::site::link::now_ms();
    let env = Envelope::sign(&key, "command", &mqtt.site, door, version, "", payload);
    let topics = Topics::new(&mqtt.site, door);
    let topic = match (retained, door == "*") {
        (true, true) => topics.site_lockdown,
        (true, false) => topics.lockdown,
        (false, true) => topics.site_command,
        (false, false) => topics.command,
    };
    // Listening before sending: no acknowledgement is missed.
    let listener = match wait {
        Some(w) => Some(Acks::listen(mqtt, w)?),
        None => None,
    };
    send_signed(mqtt, &topic, &env, retained, Duration::from_secs(20))?;
    let Some(listener) = listener else {
        if retained {
            println!("sent {word} to {topic} (retained: doors not connected now take it when they connect); --wait SECONDS waits for the doors");
        } else {
            println!("sent {word} to {topic}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let on = word == "lockdown";
    let (took, missing) = listener.wait(door, version, on);
    for d in &took {
        println!("{d}: lockdown {}", if on { "on" } else { "off" });
    }
    if missing.is_empty() && !took.is_empty() {
        println!("every door ({}) holds the new state", took.len());
        return Ok(ExitCode::SUCCESS);
    }
    if took.is_empty() && missing.is_empty() {
        eprintln!(
            "no door answered, and the broker knows of none at site {}",
            mqtt.site
        );
    }
    for d in &missing {
        eprintln!("{d}: no acknowledgement (offline, or not taking commands); it takes the retained state when it connects");
    }
    Ok(ExitCode::FAILURE)
}

//! The configuration reference, `docs/configuration.md`, names every key the daemon reads: each
//! key of the config types and of the shipped `systemd/config.toml` (its commented-out options
//! too) appears there in backticks as its full dotted path, and the reference's tables name no
//! key the daemon does not know.

use facegate::config::Config;
use std::collections::BTreeSet;

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/config.toml");

/// Every optional key given a value, so that its key and those of the sections it switches on
/// serialise (a `None` is not written). Parsed without the config's checks: only the keys count.
const OPTIONS_SET: &str = r#"
[recognition]
models = "/usr/share/facegate/models/manifest.toml"
embedder = "sface_2021dec_int8"
threshold = 0.5
min_margin = 0.05
calibration = "/var/lib/facegate/calibration.toml"

[door]
exit_gpio = 22
contact_gpio = 23
alarm_gpio = 24

[access]
factor_threshold = 0.55

[access.inputs]
wiegand_d0_gpio = 5
wiegand_d1_gpio = 6
keypad = "/dev/input/event0"

[liveness.nir]

[output.osdp]
device = "/dev/ttyUSB0"

[mqtt]
ca = "/etc/facegate/ca.pem"
cert = "/etc/facegate/front.pem"
key = "/etc/facegate/front.key"
username = "front"
password_file = "/etc/facegate/mqtt.password"
client_id = "facegate-hq-front"
cursor = "/var/lib/facegate/audit.jsonl.mqtt-cursor"
site_key = "/etc/facegate/site.pub"
"#;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The dotted paths of every leaf of `value` (tables are walked; arrays are values), under
/// `prefix`.
fn leaf_paths(prefix: &str, value: &toml::Value, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(&path, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn serialised<T: serde::Serialize>(prefix: &str, value: &T) -> BTreeSet<String> {
    let value = toml::Value::try_from(value)
        .unwrap_or_else(|e| panic!("{prefix}: does not serialise to TOML: {e}"));
    let mut out = BTreeSet::new();
    leaf_paths(prefix, &value, &mut out);
    out
}

/// A TOML key at the start of `line` (`key = ...`), if there is one.
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    plain.then_some(key)
}

/// The keys of the shipped config: those it sets, and those it shows commented out under a
/// section (`# key = value`), including commented-out sections (`# [liveness.nir]`).
fn shipped_keys() -> BTreeSet<String> {
    let text = read(SHIPPED);
    let parsed: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{SHIPPED} is not TOML: {e}"));
    let mut keys = BTreeSet::new();
    leaf_paths("", &parsed, &mut keys);
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        let commented = line.strip_prefix('#').map(str::trim);
        let code = commented.unwrap_or(line);
        if let Some(rest) = code.strip_prefix('[') {
            if let Some((name, _)) = rest.split_once(']') {
                section = Some(name.trim().to_owned());
                continue;
            }
        }
        if let (Some(body), Some(section)) = (commented, &section) {
            if let Some(key) = key_of(body) {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

/// The keys of the config types: the defaults, every optional key set, and the optional
/// sections' own types.
fn type_keys() -> BTreeSet<String> {
    let mut keys = serialised("", &Config::default());
    let options: Config = toml::from_str(OPTIONS_SET)
        .unwrap_or_else(|e| panic!("the optional keys no longer parse: {e}"));
    keys.extend(serialised("", &options));
    keys.extend(serialised("mqtt", &facegate::site::MqttConfig::default()));
    keys.extend(serialised(
        "liveness.nir",
        &facegate::access::cues::NirConfig::default(),
    ));
    keys
}

/// The keys of `keys` that the reference does not name as `` `key` ``.
fn missing_from_reference(keys: &BTreeSet<String>) -> Vec<String> {
    let reference = read(REFERENCE);
    keys.iter()
        .filter(|k| !reference.contains(&format!("`{k}`")))
        .cloned()
        .collect()
}

#[test]
fn the_collectors_find_set_commented_and_optional_keys() {
    let shipped = shipped_keys();
    for key in [
        "camera.width",
        "camera.source",
        "recognition.threshold",
        "recognition.quality.max_yaw",
        "liveness.nir.scale",
        "liveness.nir.camera.device",
        "door.exit_gpio",
        "output.osdp.device",
    ] {
        assert!(shipped.contains(key), "{key} not found in {shipped:?}");
    }
    let types = type_keys();
    for key in [
        "camera.rpicam_command",
        "recognition.embedder",
        "liveness.nir.camera.fps",
        "output.osdp.secure_channel",
        "mqtt.host",
        "mqtt.site_key",
        "performance.workers",
    ] {
        assert!(types.contains(key), "{key} not found in {types:?}");
    }
}

#[test]
fn every_key_of_the_shipped_config_is_in_the_reference() {
    let missing = missing_from_reference(&shipped_keys());
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks these keys of systemd/config.toml:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_key_of_the_config_types_is_in_the_reference() {
    let missing = missing_from_reference(&type_keys());
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks these keys of facegate::config::Config:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_reference_tables_name_only_keys_the_daemon_knows() {
    let known = type_keys();
    let reference = read(REFERENCE);
    let unknown: Vec<&str> = reference
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(key, _)| key))
        .filter(|key| !known.contains(*key))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the config types do not have:\n  {}",
        unknown.join("\n  ")
    );
}

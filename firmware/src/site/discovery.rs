//! Home Assistant MQTT discovery: the retained config messages that make a door appear as a
//! device with an access event entity and binary sensors for the lock (read-only), the door
//! contact and alarms, and (only with `[mqtt] unknown_face_picture`) an image entity of the
//! latest stranger's face.

use super::Topics;
use serde_json::json;

/// The node id of `door` at `site` in discovery topics and unique ids.
fn node(site: &str, door: &str) -> String {
    format!("facegate_{site}_{door}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `(topic, retained JSON config)` of one entity: `extra` over the keys every entity has.
fn entity(
    prefix: &str,
    topics: &Topics,
    (site, door): (&str, &str),
    (component, id): (&str, &str),
    extra: serde_json::Value,
) -> (String, String) {
    let node = node(site, door);
    let device = json!({
        "identifiers": [node],
        "name": format!("facegate {site} {door}"),
        "manufacturer": "facegate",
        "model": "face-recognition door controller",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    // The entity id is set both ways: `object_id` ("slug") is what Home Assistant up to 2025.9
    // reads (it drops `default_entity_id`, an unknown key, from discovery configs), and
    // `default_entity_id` ("domain.slug") replaced it in 2025.10, which reads that one; both
    // give the same id. The deprecation notice says `object_id` stops working in 2026.4.
    let mut config = json!({
        "unique_id": format!("{node}_{id}"),
        "object_id": format!("{node}_{id}"),
        "default_entity_id": format!("{component}.{node}_{id}"),
        "availability_topic": topics.availability,
        "device": device,
    });
    if let (Some(a), serde_json::Value::Object(b)) = (config.as_object_mut(), extra) {
        a.extend(b);
    }
    (
        format!("{prefix}/{component}/{node}/{id}/config"),
        config.to_string(),
    )
}

/// `(topic, retained JSON config)` for every entity of this door.
pub fn configs(prefix: &str, topics: &Topics, site: &str, door: &str) -> Vec<(String, String)> {
    let node = node(site, door);
    let entities = [
        // Read-only: the door takes no unsigned command, and Home Assistant cannot sign, so a
        // `lock` entity showed buttons that did nothing (finding 15). For a binary sensor of
        // class `lock`, on means unlocked.
        (
            "binary_sensor",
            "lock",
            json!({
                "name": "Lock",
                "state_topic": topics.lock_state,
                "device_class": "lock",
                "payload_on": "UNLOCKED",
                "payload_off": "LOCKED",
            }),
        ),
        (
            "event",
            "access",
            json!({
                "name": "Access",
                "state_topic": topics.access,
                "event_types": ["grant", "deny", "duress"],
                "icon": "mdi:face-recognition",
            }),
        ),
        (
            "binary_sensor",
            "contact",
            json!({
                "name": "Door",
                "state_topic": topics.contact_state,
                "device_class": "door",
            }),
        ),
        (
            "binary_sensor",
            "alarm",
            json!({
                "name": "Alarm",
                "state_topic": topics.alarm_state,
                "device_class": "problem",
                "json_attributes_topic": topics.alarm_attributes,
            }),
        ),
    ];
    // Earlier builds published a `lock` entity there: an empty retained config removes it
    // from Home Assistant (and the broker), so existing installs lose the dead buttons.
    let retired = (format!("{prefix}/lock/{node}/lock/config"), String::new());
    std::iter::once(retired)
        .chain(entities.into_iter().map(|(component, id, extra)| {
            entity(prefix, topics, (site, door), (component, id), extra)
        }))
        .collect()
}

/// `(topic, retained config)` of the image entity showing the latest stranger's face
/// (`[mqtt] unknown_face_picture`). Off, the config is empty: a retained empty config removes
/// an entity an earlier run published, so turning the option off takes it out of Home
/// Assistant too.
pub fn unknown_face_config(
    prefix: &str,
    topics: &Topics,
    site: &str,
    door: &str,
    on: bool,
) -> (String, String) {
    let (topic, body) = entity(
        prefix,
        topics,
        (site, door),
        ("image", "unknown_face"),
        json!({
            "name": "Unknown face",
            "image_topic": topics.unknown_face,
            "content_type": "image/png",
        }),
    );
    (topic, if on { body } else { String::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn each_entity_has_a_unique_id_the_device_and_availability() {
        let t = Topics::new("hq", "front");
        let c = configs("homeassistant", &t, "hq", "front");
        let topics: Vec<&str> = c.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/lock/facegate_hq_front/lock/config",
                "homeassistant/binary_sensor/facegate_hq_front/lock/config",
                "homeassistant/event/facegate_hq_front/access/config",
                "homeassistant/binary_sensor/facegate_hq_front/contact/config",
                "homeassistant/binary_sensor/facegate_hq_front/alarm/config",
            ]
        );
        let entities = &c[1..];
        let ids: Vec<String> = entities
            .iter()
            .map(|(_, b)| parse(b)["default_entity_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids,
            [
                "binary_sensor.facegate_hq_front_lock",
                "event.facegate_hq_front_access",
                "binary_sensor.facegate_hq_front_contact",
                "binary_sensor.facegate_hq_front_alarm",
            ]
        );
        for (_, body) in entities {
            let v = parse(body);
            assert_eq!(v["availability_topic"], "facegate/hq/front/availability");
            assert_eq!(v["device"]["identifiers"][0], "facegate_hq_front");
            assert!(v["state_topic"]
                .as_str()
                .unwrap()
                .starts_with("facegate/hq/front/"));
        }
    }

    /// Finding 18: the entity ids depended on the Home Assistant version (`default_entity_id`
    /// is read from 2025.10 only). Both keys name the same id.
    #[test]
    fn the_entity_id_is_the_same_for_home_assistant_before_and_after_2025_10() {
        let t = Topics::new("hq", "front");
        for (_, body) in &configs("homeassistant", &t, "hq", "front")[1..] {
            let v = parse(body);
            let (domain, slug) = v["default_entity_id"]
                .as_str()
                .unwrap()
                .split_once('.')
                .unwrap();
            assert_eq!(v["object_id"], slug, "{body}");
            assert!(["binary_sensor", "event"].contains(&domain));
        }
    }

    /// The image entity is there only when the site turned sharing on; off, its config is
    /// cleared (an entity left by an earlier run goes).
    #[test]
    fn the_unknown_face_image_entity_only_when_on() {
        let t = Topics::new("hq", "front");
        let (topic, body) = unknown_face_config("homeassistant", &t, "hq", "front", true);
        assert_eq!(
            topic,
            "homeassistant/image/facegate_hq_front/unknown_face/config"
        );
        let v = parse(&body);
        assert_eq!(v["image_topic"], "facegate/hq/front/unknown_face");
        assert_eq!(v["content_type"], "image/png");
        assert_eq!(
            v["default_entity_id"],
            "image.facegate_hq_front_unknown_face"
        );
        assert_eq!(v["object_id"], "facegate_hq_front_unknown_face");
        assert_eq!(v["availability_topic"], "facegate/hq/front/availability");
        assert!(v.get("url_topic").is_none());
        let (off_topic, off) = unknown_face_config("homeassistant", &t, "hq", "front", false);
        assert_eq!((off_topic, off), (topic, String::new()));
        // Not among the entities every door has.
        let all = configs("homeassistant", &t, "hq", "front");
        assert!(all.iter().all(|(_, b)| !b.contains("unknown_face")));
    }

    /// Finding 15: Home Assistant showed a lock whose buttons did nothing (the door takes no
    /// unsigned command). The lock is a read-only binary sensor now, and the old lock entity's
    /// config is cleared so existing installs lose it.
    #[test]
    fn the_lock_is_read_only_and_the_old_lock_entity_is_removed() {
        let t = Topics::new("hq", "front");
        let c = configs("homeassistant", &t, "hq", "front");
        assert!(c.iter().all(|(_, b)| !b.contains("command_topic")));
        let removed: Vec<&str> = c
            .iter()
            .filter(|(_, b)| b.is_empty())
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(
            removed,
            ["homeassistant/lock/facegate_hq_front/lock/config"]
        );
        let lock = c
            .iter()
            .find(|(t, _)| t == "homeassistant/binary_sensor/facegate_hq_front/lock/config")
            .map(|(_, b)| parse(b))
            .unwrap();
        assert_eq!(lock["device_class"], "lock");
        assert_eq!(lock["state_topic"], t.lock_state);
        // Home Assistant's lock class: on means unlocked.
        assert_eq!(lock["payload_on"], "UNLOCKED");
        assert_eq!(lock["payload_off"], "LOCKED");
    }
}

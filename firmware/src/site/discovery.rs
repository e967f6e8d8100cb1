//! Home Assistant MQTT discovery: the retained config messages that make a door appear as a
//! device with a lock, an access event entity and binary sensors for the door contact and alarms.

use super::Topics;
use serde_json::json;

/// `(topic, retained JSON config)` for every entity of this door.
pub fn configs(prefix: &str, topics: &Topics, site: &str, door: &str) -> Vec<(String, String)> {
    let node = format!("facegate_{site}_{door}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>();
    let device = json!({
        "identifiers": [node],
        "name": format!("facegate {site} {door}"),
        "manufacturer": "facegate",
        "model": "face-recognition door controller",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    // `default_entity_id` ("domain.slug") replaced `object_id` in Home Assistant 2025.10;
    // its deprecation notice says `object_id` stops working in 2026.4.
    let common = |component: &str, id: &str| {
        json!({
            "unique_id": format!("{node}_{id}"),
            "default_entity_id": format!("{component}.{node}_{id}"),
            "availability_topic": topics.availability,
            "device": device,
        })
    };
    let merge = |mut a: serde_json::Value, b: serde_json::Value| {
        if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
            a.extend(b);
        }
        a
    };
    let entities = [
        (
            "lock",
            "lock",
            json!({
                "name": "Lock",
                "state_topic": topics.lock_state,
                // HA requires a command topic; the door ignores it (unsigned), see
                // docs/site-and-panels.md (Home Assistant).
                "command_topic": topics.lock_set,
                "state_locked": "LOCKED",
                "state_unlocked": "UNLOCKED",
                "optimistic": false,
            }),
        ),
        (
            "event",
            "access",
            json!({
                "name": "Access",
                "state_topic": topics.access,
                "event_types": ["grant", "deny"],
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
    entities
        .into_iter()
        .map(|(component, id, extra)| {
            (
                format!("{prefix}/{component}/{node}/{id}/config"),
                merge(common(component, id), extra).to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entity_has_a_unique_id_the_device_and_availability() {
        let t = Topics::new("hq", "front");
        let c = configs("homeassistant", &t, "hq", "front");
        let topics: Vec<&str> = c.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/lock/facegate_hq_front/lock/config",
                "homeassistant/event/facegate_hq_front/access/config",
                "homeassistant/binary_sensor/facegate_hq_front/contact/config",
                "homeassistant/binary_sensor/facegate_hq_front/alarm/config",
            ]
        );
        let ids: Vec<String> = c
            .iter()
            .map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).unwrap())
            .map(|v| v["default_entity_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids,
            [
                "lock.facegate_hq_front_lock",
                "event.facegate_hq_front_access",
                "binary_sensor.facegate_hq_front_contact",
                "binary_sensor.facegate_hq_front_alarm",
            ]
        );
        for (_, body) in &c {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["availability_topic"], "facegate/hq/front/availability");
            assert_eq!(v["device"]["identifiers"][0], "facegate_hq_front");
            assert!(v.get("object_id").is_none(), "deprecated by Home Assistant");
            assert!(v["state_topic"]
                .as_str()
                .unwrap()
                .starts_with("facegate/hq/front/"));
        }
    }
}

//! What of the door leaves for the broker's readers (issue #24 item 10): access events cut down
//! to an explicit allow-list for Home Assistant, the site archive's copy of the log without the
//! nearest enrolled person, and the retained states in the order Home Assistant must see them.

use super::follow::Line;
use super::Topics;
use serde_json::{Map, Value};

/// The only fields of a grant or denial that reach the `access` topic (Home Assistant, and
/// whoever else the broker lets read it): who, when, which door, the verdict and a stable id.
/// Everything else of the audit line stays off it on purpose: `nearest` says whom a stranger
/// resembles, `distance`/`margin` are a hill-climbing oracle for a forged face, `reason` says
/// which check caught a spoof, `frames`/`t`/`boot_id`/`clock_synced` and the chain (`seq`,
/// `hash`) are bookkeeping of the door. A field added to the audit line later stays off too
/// until it is named here.
pub const ACCESS_FIELDS: [&str; 7] = ["id", "site", "door", "time", "event", "identity", "name"];

/// Audit fields that never leave the door, on any topic: for a denial, `nearest` names the
/// enrolled person a stranger resembles most (whom to impersonate, or whom to look for).
pub const WITHHELD: [&str; 1] = ["nearest"];

/// The line as the site archive gets it (`event` topic): every audit field except
/// [`WITHHELD`], plus `id`, `site` and `door`. The chain fields (`seq`, `hash`) stay so that
/// an archive sees gaps and can match each line with the door's own log; a denial's `hash`
/// cannot be recomputed off the door, since the text it covers includes the withheld fields.
pub fn archive_event(line: &Line, site: &str, door: &str) -> Value {
    let mut o = match &line.json {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    for k in WITHHELD {
        o.remove(k);
    }
    o.insert("id".into(), line.id(door).into());
    o.insert("site".into(), site.into());
    o.insert("door".into(), door.into());
    Value::Object(o)
}

/// The grant, denial or duress (a duress PIN opened the door: the site's silent alarm) of
/// `line` for the `access` topic: [`ACCESS_FIELDS`] only, plus `event_type` (what Home
/// Assistant's event entity reads). `None` for every other kind.
pub fn access_event(line: &Line, site: &str, door: &str) -> Option<Value> {
    let kind = line.json.get("event").and_then(Value::as_str)?;
    if !matches!(kind, "grant" | "deny" | "duress") {
        return None;
    }
    let full = archive_event(line, site, door);
    let mut o: Map<String, Value> = ACCESS_FIELDS
        .iter()
        .filter_map(|k| Some((k.to_string(), full.get(*k)?.clone())))
        .collect();
    o.insert("event_type".into(), kind.into());
    Some(Value::Object(o))
}

/// Whether `line` is a stranger's denial with its picture kept: the one kind of line whose
/// picture the link asks the door for (`[mqtt] unknown_face_picture`). The door judges the
/// request again by its own rule ([`crate::door::control_api::site_picture::shareable`]); this
/// only spares it requests it would refuse.
pub fn stranger_picture(line: &Line) -> bool {
    let field = |k: &str| line.json.get(k).and_then(Value::as_str);
    crate::door::control_api::site_picture::stranger_denial(
        field("event") == Some("deny"),
        field("identity"),
        field("reason"),
        line.json.get("picture").and_then(Value::as_bool),
    )
}

/// The retained state messages `(topic, payload)` for the door's lock (`LOCKED`/`UNLOCKED`),
/// contact (`ON` open / `OFF`, none while unknown) and alarm (its cause while one is
/// unresolved), in the order they must be published.
///
/// The alarm's state and its cause are two topics, and Home Assistant records every change: the
/// cause goes first when an alarm is on (so it is never "on" without a cause), the state first
/// when it is off (so it is never "on" with its cause already cleared). The broker keeps one
/// client's messages in order, to each subscriber.
pub fn state_messages(
    topics: &Topics,
    lock: &str,
    contact: Option<&str>,
    alarm: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = vec![(topics.lock_state.clone(), lock.to_owned())];
    if let Some(c) = contact {
        out.push((topics.contact_state.clone(), c.to_owned()));
    }
    let cause = (
        topics.alarm_attributes.clone(),
        serde_json::json!({ "cause": alarm }).to_string(),
    );
    let state = (
        topics.alarm_state.clone(),
        if alarm.is_some() { "ON" } else { "OFF" }.to_owned(),
    );
    if alarm.is_some() {
        out.extend([cause, state]);
    } else {
        out.extend([state, cause]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(json: Value) -> Line {
        Line {
            seq: json["seq"].as_u64().unwrap(),
            hash: json["hash"].as_str().unwrap().to_owned(),
            json,
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// A stranger's denial as the door logs it: the nearest enrolled person, distance and margin,
    /// the check's reason, the chain.
    fn stranger() -> Line {
        line(json!({
            "seq": 41, "time": "2025-04-02T08:15:00.123Z", "t": 812.5, "event": "deny",
            "identity": "unknown", "nearest": "ann", "distance": 0.71, "margin": 0.05,
            "frames": 3, "reason": "not_recognised", "lock": "locked",
            "boot_id": "b0", "clock_synced": true, "hash": "ab".repeat(32),
        }))
    }

    /// Finding 14: the `access` topic carried every audit field, `nearest` (whom the stranger
    /// resembles) and the chain included.
    #[test]
    fn a_denial_for_home_assistant_says_who_when_where_and_the_verdict_only() {
        let a = access_event(&stranger(), "hq", "front").unwrap();
        assert_eq!(
            a,
            json!({
                "id": format!("front:41:{}", &"ab".repeat(8)),
                "site": "hq", "door": "front", "time": "2025-04-02T08:15:00.123Z",
                "event": "deny", "event_type": "deny", "identity": "unknown",
            })
        );
    }

    #[test]
    fn a_grant_for_home_assistant_names_the_person_and_nothing_else_of_the_decision() {
        let g = line(json!({
            "seq": 42, "time": "2025-04-02T08:16:00.000Z", "t": 870.0, "event": "grant",
            "identity": "bob", "name": "Bob B.", "distance": 0.31, "margin": 0.2, "frames": 3,
            "lock": "unlocked", "boot_id": "b0", "clock_synced": true, "hash": "cd".repeat(32),
            "a_field_added_later": "x",
        }));
        let a = access_event(&g, "hq", "front").unwrap();
        let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "door",
                "event",
                "event_type",
                "id",
                "identity",
                "name",
                "site",
                "time"
            ]
        );
        assert_eq!(a["name"], "Bob B.");
    }

    /// A duress PIN's event reaches the site's access topic (the door shows nothing).
    #[test]
    fn a_duress_event_is_an_access_event() {
        let d = line(json!({
            "seq": 43, "time": "2025-04-02T08:17:00.000Z", "t": 871.0, "event": "duress",
            "identity": "bob", "name": "Bob B.", "reason": "duress PIN",
            "boot_id": "b0", "clock_synced": true, "hash": "ef".repeat(32),
        }));
        let a = access_event(&d, "hq", "front").unwrap();
        assert_eq!(a["event_type"], "duress");
        assert_eq!(a["identity"], "bob");
    }

    #[test]
    fn only_a_strangers_denial_with_its_picture_is_asked_for() {
        assert!(!stranger_picture(&stranger()), "no picture kept");
        let mut l = stranger();
        l.json["picture"] = true.into();
        // The door's word for "nobody enrolled is near enough".
        l.json["reason"] = "unknown".into();
        assert!(stranger_picture(&l));
        let mut known = l.clone();
        known.json["identity"] = "ann".into();
        assert!(!stranger_picture(&known));
        let mut grant = l.clone();
        grant.json["event"] = "grant".into();
        assert!(!stranger_picture(&grant));
        let mut spoof = l;
        spoof.json["reason"] = "spoof_suspected".into();
        assert!(!stranger_picture(&spoof));
    }

    #[test]
    fn other_events_are_not_access_events() {
        let mut l = stranger();
        l.json["event"] = "relock".into();
        assert_eq!(access_event(&l, "hq", "front"), None);
    }

    /// Finding 14, the archive's topic: the chain stays (gaps, matching the door's log), the
    /// nearest enrolled person does not.
    #[test]
    fn the_archive_copy_keeps_the_chain_and_drops_the_nearest_person() {
        let e = archive_event(&stranger(), "hq", "front");
        assert!(e.get("nearest").is_none());
        assert_eq!(e["seq"], 41);
        assert_eq!(e["hash"], "ab".repeat(32));
        assert_eq!(e["reason"], "not_recognised");
        assert_eq!(e["site"], "hq");
        assert_eq!(e["door"], "front");
        assert_eq!(e["id"], format!("front:41:{}", &"ab".repeat(8)));
    }

    /// Finding 16: the alarm's state was published before its cause, so Home Assistant recorded
    /// a moment of "on" with no cause (and, clearing, a moment of "on" with the cause gone).
    #[test]
    fn an_alarm_is_never_on_without_its_cause_in_the_order_published() {
        let t = Topics::new("hq", "front");
        let on = state_messages(&t, "LOCKED", Some("OFF"), Some("CameraError: stalled"));
        assert_eq!(
            on,
            pairs(&[
                ("facegate/hq/front/lock/state", "LOCKED"),
                ("facegate/hq/front/contact/state", "OFF"),
                (
                    "facegate/hq/front/alarm/attributes",
                    r#"{"cause":"CameraError: stalled"}"#,
                ),
                ("facegate/hq/front/alarm/state", "ON"),
            ])
        );
        let off = state_messages(&t, "UNLOCKED", None, None);
        assert_eq!(
            off,
            pairs(&[
                ("facegate/hq/front/lock/state", "UNLOCKED"),
                ("facegate/hq/front/alarm/state", "OFF"),
                ("facegate/hq/front/alarm/attributes", r#"{"cause":null}"#),
            ])
        );
        // Replayed as Home Assistant sees it: the alarm is never on without a cause.
        let mut ha = (String::from("OFF"), Value::Null);
        for (topic, payload) in on.iter().chain(&off) {
            if topic.ends_with("alarm/state") {
                ha.0 = payload.clone();
            } else if topic.ends_with("alarm/attributes") {
                ha.1 = serde_json::from_str::<Value>(payload).unwrap()["cause"].clone();
            }
            assert!(
                ha.0 == "OFF" || !ha.1.is_null(),
                "on without a cause: {ha:?}"
            );
        }
    }
}

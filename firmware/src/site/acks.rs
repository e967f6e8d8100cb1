//! The admin's wait for the doors (`facegate command lockdown --wait`): each door publishes the
//! lockdown state it holds, retained, and the broker keeps each door's availability, so the
//! admin learns which doors took a lockdown and which did not answer.

use super::link::LinkError;
use super::MqttConfig;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The doors' lockdown acknowledgements (`facegate/<site>/+/lockdown/state`) and the doors the
/// broker knows (`facegate/<site>/+/availability`).
pub struct Acks {
    client: rumqttc::Client,
    conn: rumqttc::Connection,
    site: String,
    until: Instant,
}

impl Acks {
    /// Subscribes, before the command is sent, for at most `wait`.
    pub fn listen(mqtt: &MqttConfig, wait: Duration) -> Result<Self, LinkError> {
        let id = format!(
            "facegate-admin-wait-{}-{}",
            std::process::id(),
            super::link::now_ms()
        );
        let (client, conn) = rumqttc::Client::new(super::link::options(mqtt, &id, None)?, 64);
        for t in ["lockdown/state", "availability"] {
            client
                .subscribe(
                    format!("facegate/{}/+/{t}", mqtt.site),
                    rumqttc::QoS::AtLeastOnce,
                )
                .map_err(|e| LinkError::Broker(e.to_string()))?;
        }
        Ok(Self {
            client,
            conn,
            site: mqtt.site.clone(),
            until: Instant::now() + wait,
        })
    }

    /// Waits until every door known (or `door`) holds `on` at `version` or later; returns the
    /// doors that did and those that did not.
    pub fn wait(mut self, door: &str, version: u64, on: bool) -> (Vec<String>, Vec<String>) {
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut took: BTreeSet<String> = BTreeSet::new();
        if door != "*" {
            known.insert(door.to_owned());
        }
        let prefix = format!("facegate/{}/", self.site);
        while Instant::now() < self.until {
            let msg = match self.conn.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => p,
                Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {
                    if !known.is_empty() && known.is_subset(&took) {
                        break;
                    }
                    continue;
                }
                Ok(Err(_)) | Err(rumqttc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let Some(rest) = msg.topic.strip_prefix(&prefix) else {
                continue;
            };
            let Some((name, what)) = rest.split_once('/') else {
                continue;
            };
            if door != "*" && name != door {
                continue;
            }
            if what == "availability" {
                known.insert(name.to_owned());
            } else if what == "lockdown/state" {
                known.insert(name.to_owned());
                let state: serde_json::Value =
                    serde_json::from_slice(&msg.payload).unwrap_or_default();
                let v = state["version"].as_u64().unwrap_or(0);
                if v >= version && state["lockdown"].as_bool() == Some(on) {
                    took.insert(name.to_owned());
                }
            }
            if !known.is_empty() && known.is_subset(&took) {
                break;
            }
        }
        let _ = self.client.try_disconnect();
        let missing = known.difference(&took).cloned().collect();
        (took.into_iter().collect(), missing)
    }
}

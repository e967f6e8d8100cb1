//! Shared by the scenario tests: runs a scenario on the real daemon loop and asserts its own
//! expectations. (Each test file uses a part of it.)
#![allow(dead_code)]

use facegate::control::Control;
use facegate_e2e::{fixture, fixtures_dir};
use facegate_sim::{run_scenario, Report, RunOptions, Scenario};
use std::path::Path;

/// Runs `host-sim/scenarios/NAME.toml` with the f32 embedder (fast on this CPU) after fetching
/// the fixture `photos` it shows; fails the test with the events if an expectation failed.
pub fn run_shipped(name: &str, photos: &[&str]) -> Report {
    for f in photos {
        fixture(f);
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../host-sim/scenarios/{name}.toml"));
    let mut table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/manifest.toml");
    let config = table
        .entry("config")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap();
    // The scenario's own [config.recognition] keys stay; the models are this checkout's.
    let rec = config
        .entry("recognition")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap();
    rec.insert("models".into(), manifest.into());
    rec.insert("embedder".into(), "dlib_resnet_v1_f32".into());
    let s = Scenario::parse(&toml::to_string(&table).unwrap(), &path, &fixtures_dir()).unwrap();
    run_checked(&s, false)
}

/// Runs `s` (simulated time, or `realtime`); fails the test with the events if an expectation
/// of the scenario failed.
pub fn run_checked(s: &Scenario, realtime: bool) -> Report {
    let options = RunOptions {
        realtime,
        workdir: None,
    };
    let r = run_scenario(s, &options, Control::default()).unwrap();
    assert!(
        r.failures.is_empty(),
        "failed: {:#?}\nevents: {:#?}",
        r.failures,
        r.json_lines()
    );
    r
}

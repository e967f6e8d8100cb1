//! Replays each target's seed corpus (`corpus/TARGET/`) and every input a fuzzing campaign
//! found to crash or hang (`regressions/TARGET/`) through the target bodies: CI's cheap smoke,
//! and the regression tests of the bugs fuzzing found.

use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut n = 0;
    for (name, target) in facegate_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            eprintln!("{name}: {}", f.display());
            target(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_target_survives_its_seed_corpus() {
    let n = replay("corpus");
    // Each target has seeds: a missing corpus would make this test pass on nothing.
    for (name, _) in facegate_fuzz::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        assert!(
            std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) > 0,
            "no seeds in {}",
            dir.display()
        );
    }
    assert!(n >= facegate_fuzz::TARGETS.len());
}

#[test]
fn every_input_fuzzing_found_is_handled() {
    replay("regressions");
}

//! `facegate-sim`: runs the real door daemon on simulated devices. `run` plays a scenario file and
//! checks its expectations; `demo` enrols one person from one photo and shows what the door does
//! for them, for strangers and for frames without a face.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use facegate::control::Control;
use facegate::records::audit::{Event, EventKind};
use facegate_sim::runner::{fixtures_dir, require};
use facegate_sim::{run_scenario, Report, RunOptions, Scenario};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Simulated camera, relay and clock driving the real facegate daemon.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Daemon log on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file: print every event as a JSON line, then a summary; exit 1 if an
    /// expectation failed, 2 on an error.
    Run {
        /// The scenario (TOML; see host-sim/README.md).
        scenario: PathBuf,
        /// Let simulated time pass at real speed (so real signals can be sent mid-run).
        #[arg(long)]
        realtime: bool,
        /// With --realtime: model a machine this many times slower than this one (e.g. 6 for a
        /// Raspberry Pi 4's one core against a current x86 core): recognition of each frame
        /// takes this many times as long while the camera keeps its pace.
        /// What it models depends on this host's speed; --recognition-ms does not.
        #[arg(
            long,
            value_name = "FACTOR",
            requires = "realtime",
            conflicts_with = "recognition_ms"
        )]
        slowdown: Option<f64>,
        /// With --realtime: model a machine on which recognising one frame takes MS
        /// milliseconds (per worker), whatever this machine's speed (e.g. 150 for a Raspberry
        /// Pi 4 core with the int8 embedder; see docs).
        #[arg(long, value_name = "MS", requires = "realtime")]
        recognition_ms: Option<f64>,
        /// The camera's frame rate for every `show` step (overrides the scenario's).
        #[arg(long, value_name = "FPS")]
        fps: Option<f64>,
        /// With --realtime: frames recognised at once (`[performance] workers`; e.g. 4 for a
        /// Raspberry Pi's four cores, each modelled at --recognition-ms or --slowdown).
        #[arg(long, value_name = "N", requires = "realtime")]
        workers: Option<u32>,
        /// Keep the gallery, config and audit log in this directory (default: a temporary one).
        #[arg(long, value_name = "DIR")]
        workdir: Option<PathBuf>,
        /// Only the summary, no event lines.
        #[arg(long)]
        quiet: bool,
    },
    /// The main demo: enrol Barack Obama from one photo, then show the door him (other photos),
    /// strangers and an empty scene.
    Demo {
        /// The test photos (default: $FACEGATE_FIXTURES or ~/.cache/facegate/fixtures, filled by
        /// scripts/fetch_fixtures.py).
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
        /// Where to write the demo's scenario, gallery and audit log (default: ./facegate-demo).
        #[arg(long, value_name = "DIR", default_value = "facegate-demo")]
        workdir: PathBuf,
        /// The door at work with its web console instead: the real daemon in real time on a
        /// camera that loops through an employee, two strangers and empty frames, and the
        /// console beside it; prints `console: URL USER PASSWORD`, runs until Ctrl-C.
        #[arg(long)]
        console: bool,
        /// With --console: where the console listens.
        #[arg(
            long,
            value_name = "ADDRESS:PORT",
            default_value = "127.0.0.1:8443",
            requires = "console"
        )]
        listen: String,
        /// With --console: how long the door's camera loop plays, in minutes.
        #[arg(
            long,
            value_name = "MINUTES",
            default_value_t = 60.0,
            requires = "console"
        )]
        minutes: f64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = ["warn", "info", "debug"][usize::from(args.verbose.min(2))];
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match args.command {
        Command::Run {
            scenario,
            realtime,
            slowdown,
            recognition_ms,
            fps,
            workers,
            workdir,
            quiet,
        } => run(
            &scenario,
            realtime,
            Overrides {
                slowdown,
                recognition_ms,
                fps,
                workers,
            },
            workdir,
            quiet,
        ),
        Command::Demo {
            fixtures,
            workdir,
            console: true,
            listen,
            minutes,
        } => console_demo(fixtures, &workdir, &listen, minutes),
        Command::Demo {
            fixtures, workdir, ..
        } => demo(fixtures, &workdir),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("facegate-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A control whose flags SIGTERM/SIGINT/SIGHUP set, as in `facegated`.
fn signal_control() -> Result<Control> {
    let control = Control::default();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, control.stop_flag())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, control.reload_flag())?;
    Ok(control)
}

/// The command line's overrides of a scenario's keys.
struct Overrides {
    slowdown: Option<f64>,
    recognition_ms: Option<f64>,
    fps: Option<f64>,
    workers: Option<u32>,
}

fn run(
    path: &Path,
    realtime: bool,
    overrides: Overrides,
    workdir: Option<PathBuf>,
    quiet: bool,
) -> Result<bool> {
    let Overrides {
        slowdown,
        recognition_ms,
        fps,
        workers,
    } = overrides;
    let mut text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    // The overrides go through the scenario's own checks.
    if slowdown.is_some() || recognition_ms.is_some() || fps.is_some() || workers.is_some() {
        let mut t: toml::Table =
            toml::from_str(&text).with_context(|| path.display().to_string())?;
        // The command line's model of the machine replaces the scenario's.
        if let Some(f) = slowdown {
            t.remove("recognition_ms");
            t.insert("slowdown".into(), f.into());
        }
        if let Some(ms) = recognition_ms {
            t.remove("slowdown");
            t.insert("recognition_ms".into(), ms.into());
        }
        if let Some(n) = workers {
            let config = t
                .entry("config")
                .or_insert_with(|| toml::Table::new().into());
            let Some(config) = config.as_table_mut() else {
                anyhow::bail!("{}: [config] is not a table", path.display());
            };
            let perf = config
                .entry("performance")
                .or_insert_with(|| toml::Table::new().into());
            let Some(perf) = perf.as_table_mut() else {
                anyhow::bail!("{}: [config.performance] is not a table", path.display());
            };
            perf.insert("workers".into(), i64::from(n).into());
        }
        if let Some(f) = fps {
            t.insert("fps".into(), f.into());
            if let Some(toml::Value::Array(steps)) = t.get_mut("step") {
                for st in steps.iter_mut().filter_map(toml::Value::as_table_mut) {
                    st.remove("fps");
                }
            }
        }
        text = toml::to_string(&t)?;
    }
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scenario = Scenario::parse(&text, path, base)?;
    let report = run_scenario(
        &scenario,
        &RunOptions { realtime, workdir },
        signal_control()?,
    )?;
    if !quiet {
        for line in report.json_lines() {
            println!("{line}");
        }
    }
    summary(&report, scenario.description.as_deref(), realtime);
    Ok(report.failures.is_empty())
}

fn summary(r: &Report, description: Option<&str>, realtime: bool) {
    let s = &r.summary;
    eprintln!();
    if let Some(d) = description {
        eprintln!("scenario: {d}");
    }
    eprintln!(
        "model {}: {:.1} s simulated, {} frames ({} with a face), {} unlock(s), {} denial(s), {} camera error(s); {:.1} ms per frame of processing",
        r.model,
        r.end.as_secs_f64(),
        s.frames,
        s.faces,
        r.unlocks().len(),
        s.denials,
        s.camera_errors,
        if s.frames > 0 { s.busy.as_secs_f64() * 1000.0 / s.frames as f64 } else { 0.0 }
    );
    if realtime || s.delivered > s.frames || s.stale_dropped > 0 {
        // Real-time mode: what the freshest-frame policy did and how punctual the door was.
        eprintln!(
            "real time: {} worker(s); {} frames delivered, {} recognised, {} dropped as stale; oldest frame recognised {:.1} ms; latest relock {:.1} ms after due",
            s.workers,
            s.delivered,
            s.frames,
            s.stale_dropped,
            s.frame_age.max.as_secs_f64() * 1000.0,
            s.relock_late.max.as_secs_f64() * 1000.0
        );
        let mut first_to_unlock = facegate::door::realtime::Spread::default();
        r.unlock_latencies()
            .into_iter()
            .for_each(|d| first_to_unlock.add(d));
        eprintln!(
            "  recognition of a frame:            {}",
            s.recognition.describe()
        );
        if r.over_cost > 0 {
            eprintln!(
                "  WARNING: on {} frame(s) this machine's own work took longer than recognition_ms: it was too slow or too loaded to model that machine",
                r.over_cost
            );
        }
        eprintln!(
            "  frame age when recognition starts: {}",
            s.frame_age.describe()
        );
        eprintln!(
            "  frame age when decided:            {}",
            s.decision_lag.describe()
        );
        eprintln!(
            "  relock after its due time:         {}",
            s.relock_late.describe()
        );
        eprintln!(
            "  step's first frame to unlocked:    {}",
            first_to_unlock.describe()
        );
    }
    for p in &r.passed {
        eprintln!("  ok    {p}");
    }
    for f in &r.failures {
        eprintln!("  FAIL  {f}");
    }
}

fn line(e: &Event) -> String {
    let who = e.identity.as_deref().unwrap_or("");
    let name = e
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let dist = e
        .distance
        .map(|d| format!(" distance {d:.3}"))
        .unwrap_or_default();
    let margin = e
        .margin
        .map(|m| format!(" margin {m:.3}"))
        .unwrap_or_default();
    let frames = e
        .frames
        .map(|f| format!(", {f} frames"))
        .unwrap_or_default();
    match e.event {
        EventKind::Grant => format!("UNLOCK  {who}{name}:{dist}{margin}{frames}"),
        EventKind::Deny => format!(
            "DENIED  {who} ({}{}){dist}{frames}",
            e.reason.as_deref().unwrap_or(""),
            e.nearest
                .as_deref()
                .map(|n| format!(", nearest {n}"))
                .unwrap_or_default()
        ),
        EventKind::Relock => "locked again".into(),
        EventKind::Start => format!("door daemon started: {}", e.reason.as_deref().unwrap_or("")),
        EventKind::Stop => format!("door daemon stopped: {}", e.reason.as_deref().unwrap_or("")),
        other => format!("{other:?} {}", e.reason.as_deref().unwrap_or("")),
    }
}

/// `demo --console`: the door at work and its console until Ctrl-C (or the loop's end).
fn console_demo(
    fixtures: Option<PathBuf>,
    workdir: &Path,
    listen: &str,
    minutes: f64,
) -> Result<bool> {
    let fx = fixtures.unwrap_or_else(fixtures_dir);
    for name in facegate_sim::at_work::PHOTOS {
        require(&fx.join(name)).with_context(|| {
            format!(
                "test photo missing: run `python3 scripts/fetch_fixtures.py` first (looked in {})",
                fx.display()
            )
        })?;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let door = facegate_sim::at_work::ConsoleDoor::start(&fx, workdir, listen, minutes)?;
    println!("console: {} {} {}", door.url, door.admin.0, door.admin.1);
    println!(
        "  (viewer: {} {}; a self-signed certificate: the browser asks once. The camera loops \
         through Barack Obama, enrolled, and two strangers: enrol one from the door camera \
         (People, Add), the other from Review. Ctrl-C stops.)",
        door.viewer.0, door.viewer.1
    );
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && !door.door_finished() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let report = door.stop()?;
    eprintln!(
        "door stopped: {} grants, {} denials",
        report.grants().len(),
        report.of(EventKind::Deny).len()
    );
    Ok(true)
}

fn demo(fixtures: Option<PathBuf>, workdir: &Path) -> Result<bool> {
    let fx = fixtures.unwrap_or_else(fixtures_dir);
    for name in [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden.jpg",
        "astronaut.png",
        "coffee.png",
    ] {
        require(&fx.join(name)).with_context(|| {
            format!(
                "test photo missing: run `python3 scripts/fetch_fixtures.py` first (looked in {})",
                fx.display()
            )
        })?;
    }
    std::fs::create_dir_all(workdir).with_context(|| workdir.display().to_string())?;
    let workdir = std::fs::canonicalize(workdir)?;
    // A fresh gallery and audit log each time.
    for f in ["gallery.toml", "audit.jsonl"] {
        let _ = std::fs::remove_file(workdir.join(f));
    }
    let fx = std::fs::canonicalize(&fx)?;
    let p = |n: &str| fx.join(n).display().to_string();
    let text = format!(
        r#"description = "one person enrolled from one photo; the door sees an empty scene, two strangers and the person"
fps = 5

[[enroll]]
id = "obama"
name = "Barack Obama"
photos = ["{obama}"]

[[step]]
show = "{coffee}"    # nobody at the door
seconds = 1
expect = "no_unlock"

[[step]]
show = "{biden}"     # a stranger
seconds = 3
expect = "no_unlock"

[[step]]
show = "{obama2}"    # the enrolled person, another photo
seconds = 2
expect = "unlock"
person = "obama"
within = 1.0

[[step]]
show = "blank"       # he walks through; the door locks again
seconds = 6

[[step]]
show = "{astronaut}" # another stranger
seconds = 3
expect = "no_unlock"

[[step]]
show = "{obama3}"    # the enrolled person again, a third photo
seconds = 2
expect = "unlock"
person = "obama"
within = 1.0

[[step]]
show = "blank"
seconds = 6

[expect]
unlocks = 2
min_denials = 2
"#,
        obama = p("obama.jpg"),
        coffee = p("coffee.png"),
        biden = p("biden.jpg"),
        obama2 = p("obama2.jpg"),
        astronaut = p("astronaut.png"),
        obama3 = p("obama3.jpg"),
    );
    let scenario_path = workdir.join("demo.toml");
    std::fs::write(&scenario_path, &text)?;
    println!("facegate demo: enrolling Barack Obama from one photo (obama.jpg), then playing the door scene in {}", scenario_path.display());
    let scenario = Scenario::load(&scenario_path)?;
    let report = run_scenario(
        &scenario,
        &RunOptions {
            realtime: false,
            workdir: Some(workdir.clone()),
        },
        signal_control()?,
    )?;
    let mut marks = report.marks.iter().peekable();
    let mut rows: Vec<(f64, String)> = report.events.iter().map(|e| (e.t, line(e))).collect();
    for (t, s) in &report.relay {
        rows.push((t.as_secs_f64(), format!("relay -> {s:?}").to_lowercase()));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!();
    for (t, text) in rows {
        while let Some((i, at)) = marks.peek() {
            if at.as_secs_f64() <= t {
                let st = &scenario.step[*i];
                let shown = match &st.show {
                    Some(facegate_sim::scenario::Show::One(p)) => p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    _ => "?".into(),
                };
                println!(
                    "{:7.2} s  -- the camera now sees {shown} for {} s",
                    at.as_secs_f64(),
                    st.seconds.unwrap_or(0.0)
                );
                marks.next();
            } else {
                break;
            }
        }
        println!("{t:7.2} s  {text}");
    }
    summary(&report, scenario.description.as_deref(), false);
    println!();
    println!(
        "gallery: {}; audit log: {}; replay with: facegate-sim run {}",
        workdir.join("gallery.toml").display(),
        workdir.join("audit.jsonl").display(),
        scenario_path.display()
    );
    Ok(report.failures.is_empty())
}

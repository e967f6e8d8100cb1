//! A door at work, for the web console: the real daemon in real time on a camera that loops
//! through the enrolled person, two strangers and empty frames, with its control API on a socket
//! and decision pictures kept, so that the console (`scripts/demo --console`, the browser test)
//! has something live to show, to enrol from and to review.

use std::path::Path;

/// The photos the loop shows (from the pinned test photos).
pub const PHOTOS: [&str; 4] = ["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"];

/// One pass of the loop: who stands at the door and for how long (seconds). Each stranger stays
/// long enough to be enrolled from the camera while the live view shows them.
const LOOP: [(&str, f64); 6] = [
    ("blank", 1.5),
    ("obama2.jpg", 3.0),
    ("blank", 1.5),
    ("astronaut.png", 5.0),
    ("blank", 1.5),
    ("biden.jpg", 5.0),
];

/// The scenario (TOML) of a door at work for about `minutes`: Barack Obama enrolled, the
/// astronaut and Joe Biden strangers until someone enrols them. `extra_config` is appended to
/// the scenario's `[config]` table (e.g. a `[config.console]` section); paths in it are used
/// as they are.
pub fn scenario(fixtures: &Path, minutes: f64, extra_config: &str) -> String {
    let photo = |n: &str| -> String {
        if n == "blank" {
            "blank".into()
        } else {
            toml_string(&fixtures.join(n).display().to_string())
        }
    };
    let pass: f64 = LOOP.iter().map(|(_, s)| s).sum();
    let passes = ((minutes * 60.0) / pass).ceil().max(1.0) as usize;
    let mut text = format!(
        r#"description = "a door at work for the web console: one employee, two strangers, empty frames, looping"
fps = 5

[config]
camera = {{ fps = 5 }}
lock = {{ unlock_seconds = 1 }}
recognition = {{ cooldown_seconds = 2 }}
control = {{ socket = "control.sock" }}
audit = {{ faces = true, faces_days = 1 }}
{extra_config}

[[enroll]]
id = "obama"
name = "Barack Obama"
photos = [{obama}]
"#,
        obama = photo("obama.jpg"),
    );
    for _ in 0..passes {
        for (show, seconds) in LOOP {
            let show = if show == "blank" {
                "\"blank\"".to_owned()
            } else {
                photo(show)
            };
            text.push_str(&format!("\n[[step]]\nshow = {show}\nseconds = {seconds}\n"));
        }
    }
    text
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_parses_as_a_scenario_and_lasts_the_minutes_asked() {
        let text = scenario(Path::new("/photos"), 2.0, "");
        let s = crate::Scenario::parse(&text, Path::new("at_work.toml"), Path::new("/"))
            .expect("the generated scenario parses");
        let seconds: f64 = s.step.iter().filter_map(|st| st.seconds).sum();
        assert!((120.0..150.0).contains(&seconds), "{seconds} s");
        assert_eq!(s.enroll.len(), 1);
    }
}

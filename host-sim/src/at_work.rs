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

/// A door at work with its web console, both running: the real daemon in real time on the
/// looping camera (its control API on `control.sock` in the work directory, the operator key
/// beside it) and the console on `url`, with an admin and a viewer account.
pub struct ConsoleDoor {
    /// Where the console answers (`https://127.0.0.1:PORT`).
    pub url: String,
    /// The admin account: login and password.
    pub admin: (String, String),
    /// The viewer account: login and password.
    pub viewer: (String, String),
    control: facegate::control::Control,
    console_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    door: Option<std::thread::JoinHandle<Result<crate::Report, crate::runner::SimError>>>,
    console: Option<std::thread::JoinHandle<Result<(), facegate::console::ConsoleError>>>,
}

/// A random password of 20 letters and digits.
fn password() -> Result<String, crate::runner::SimError> {
    let mut bytes = [0u8; 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|source| crate::runner::SimError::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

impl ConsoleDoor {
    /// Starts the door (for about `minutes`) and the console on `listen` (`127.0.0.1:0`: any
    /// free port) in `workdir`, with the test photos in `fixtures`. Returns once both answer.
    pub fn start(
        fixtures: &Path,
        workdir: &Path,
        listen: &str,
        minutes: f64,
    ) -> Result<Self, crate::runner::SimError> {
        use crate::runner::SimError;
        use facegate::console::users::{Role, Users};
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SimError::Io { path, source }
        };
        std::fs::create_dir_all(workdir).map_err(io(workdir))?;
        let workdir = std::fs::canonicalize(workdir).map_err(io(workdir))?;
        // A fresh door each time: gallery, audit log, pictures.
        for f in ["gallery.toml", "audit.jsonl", "gallery.toml.site.json"] {
            let _ = std::fs::remove_file(workdir.join(f));
        }
        let _ = std::fs::remove_dir_all(workdir.join("faces"));
        let _ = std::fs::remove_dir_all(workdir.join("crops"));
        // The operator key, as the package makes it.
        let key = workdir.join("console.key");
        std::fs::write(&key, format!("{}{}\n", password()?, password()?)).map_err(io(&key))?;
        // The accounts, as `facegate console user add` makes them.
        let users_path = workdir.join("console-users.toml");
        let mut users = Users::default();
        let admin = ("admin".to_owned(), password()?);
        let viewer = ("viewer".to_owned(), password()?);
        for (login, role, pw) in [
            (&admin.0, Role::Admin, &admin.1),
            (&viewer.0, Role::Viewer, &viewer.1),
        ] {
            users
                .set(login, role, pw)
                .map_err(|e| SimError::Site(e.to_string()))?;
        }
        users
            .save(&users_path)
            .map_err(|e| SimError::Site(e.to_string()))?;
        let listener = std::net::TcpListener::bind(listen).map_err(io(Path::new(listen)))?;
        let port = listener.local_addr().map_err(io(Path::new(listen)))?.port();
        let q = |p: &Path| toml_string(&p.display().to_string());
        let extra = format!(
            "control = {{ socket = {socket}, operator_key = {key} }}\n\
             console = {{ listen = \"127.0.0.1:{port}\", users = {users}, operator_key = {key} }}",
            key = q(&key),
            users = q(&users_path),
            socket = q(&workdir.join("control.sock")),
        );
        let text = scenario(fixtures, minutes, &extra)
            .replace("control = { socket = \"control.sock\" }\n", "");
        let s = crate::Scenario::parse(&text, &workdir.join("at_work.toml"), fixtures)?;
        let control = facegate::control::Control::default();
        let opts = crate::RunOptions {
            realtime: true,
            workdir: Some(workdir.clone()),
        };
        let door = {
            let control = control.clone();
            std::thread::Builder::new()
                .name("door".into())
                .spawn(move || crate::run_scenario(&s, &opts, control))
                .map_err(io(&workdir))?
        };
        // The console starts on the door's config (written by the run) once the door answers.
        let socket = workdir.join("control.sock");
        let since = std::time::Instant::now();
        while !(socket.exists() && facegate::door::control_api::ask(&socket, "status").is_ok()) {
            if door.is_finished() || since.elapsed() > std::time::Duration::from_secs(120) {
                control.request_stop();
                return match door.join() {
                    Ok(Err(e)) => Err(e),
                    _ => Err(SimError::Site(
                        "the door did not start its control API".into(),
                    )),
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let config = facegate::config::Config::load(&workdir.join("config.toml"))?;
        let operator_key = Some(
            facegate::console::read_operator_key(&key)
                .map_err(|e| SimError::Site(e.to_string()))?,
        );
        let console_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let console = {
            let stop = console_stop.clone();
            std::thread::Builder::new()
                .name("console".into())
                .spawn(move || {
                    facegate::console::server::run_blocking(
                        config,
                        operator_key,
                        listener,
                        facegate::console::server::stop_when(stop),
                        move || {
                            let _ = ready_tx.send(());
                        },
                    )
                })
                .map_err(io(&workdir))?
        };
        let mut running = Self {
            url: format!("https://127.0.0.1:{port}"),
            admin,
            viewer,
            control,
            console_stop,
            door: Some(door),
            console: Some(console),
        };
        if ready_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let why = match running.console.take().map(|c| c.join()) {
                Some(Ok(Err(e))) => e.to_string(),
                _ => "it did not start".into(),
            };
            running.stop_all();
            return Err(SimError::Site(format!("the console: {why}")));
        }
        Ok(running)
    }

    /// Whether the door's run is over (its camera loop played to the end, or it failed).
    pub fn door_finished(&self) -> bool {
        self.door.as_ref().is_none_or(|d| d.is_finished())
    }

    fn stop_all(&mut self) {
        self.console_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.control.request_stop();
    }

    /// Stops both; the door's report (every event of the run).
    pub fn stop(mut self) -> Result<crate::Report, crate::runner::SimError> {
        self.stop_all();
        if let Some(c) = self.console.take() {
            match c.join() {
                Ok(Err(e)) => tracing::error!("the console: {e}"),
                Err(_) => tracing::error!("the console's thread panicked"),
                Ok(Ok(())) => {}
            }
        }
        match self.door.take().map(|d| d.join()) {
            Some(Ok(r)) => r,
            _ => Err(crate::runner::SimError::Site(
                "the door's thread panicked".into(),
            )),
        }
    }
}

impl Drop for ConsoleDoor {
    fn drop(&mut self) {
        self.stop_all();
    }
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

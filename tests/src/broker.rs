//! A real Mosquitto broker for the site-link tests and the door bench: TLS with certificates
//! made here, one client certificate per user as its identity, per-user ACLs, on 127.0.0.1.

use facegate::site::MqttConfig;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The installed `mosquitto` binary, if any (Debian puts it in /usr/sbin).
pub fn mosquitto() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A broker with TLS, client certificates as identities and ACLs, in a temporary directory.
pub struct Broker {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// The client certificates made: the admin, two doors and a watcher that may read everything.
pub const USERS: [&str; 4] = ["admin", "door1", "door2", "watcher"];

impl Broker {
    /// Starts `mosquitto` (from [`mosquitto`]) on a free port of 127.0.0.1, with [`USERS`].
    pub fn start(bin: PathBuf) -> Self {
        // Doors publish under their own topics and read the site's gallery and commands only.
        let mut acl = String::from(
            "user admin\ntopic readwrite facegate/#\n\nuser watcher\ntopic read #\n\n",
        );
        for door in ["door1", "door2"] {
            acl.push_str(&format!(
                "user {door}\ntopic readwrite facegate/hq/{door}/#\ntopic read facegate/hq/gallery\ntopic read facegate/hq/command\ntopic read facegate/hq/lockdown\ntopic write homeassistant/+/facegate_hq_{door}/#\n\n"
            ));
        }
        Self::with_acl(bin, &acl)
    }

    /// Starts `mosquitto` with the ACL file `acl` (Mosquitto's format), a client certificate
    /// for each of its `user` lines.
    pub fn with_acl(bin: PathBuf, acl: &str) -> Self {
        let users: Vec<&str> = acl
            .lines()
            .filter_map(|l| l.trim().strip_prefix("user "))
            .map(str::trim)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "facegate test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
        let issue = |name: &str, sans: Vec<String>| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
            std::fs::write(d.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(d.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        };
        issue("server", vec!["localhost".into(), "127.0.0.1".into()]);
        for u in users {
            issue(u, vec![]);
        }
        std::fs::write(d.join("acl"), acl).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            d.join("mosquitto.conf"),
            format!(
                "user root\nallow_anonymous false\npersistence true\npersistence_location {dir}/\n\
                 listener {port} 127.0.0.1\ncafile {dir}/ca.pem\ncertfile {dir}/server.pem\nkeyfile {dir}/server.key\n\
                 require_certificate true\nuse_identity_as_username true\nacl_file {dir}/acl\n",
                dir = d.display()
            ),
        )
        .unwrap();
        let mut b = Self {
            bin,
            dir,
            port,
            child: None,
        };
        b.up();
        b
    }

    /// Starts (again) the broker process and waits until it accepts connections.
    pub fn up(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "mosquitto did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGTERM: it saves its sessions, as a service restart does).
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// What the broker printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// The `[mqtt]` settings of `user` (door name or admin) at site `hq`.
    pub fn config(&self, user: &str) -> MqttConfig {
        let d = self.dir.path();
        MqttConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: true,
            ca: Some(d.join("ca.pem")),
            cert: Some(d.join(format!("{user}.pem"))),
            key: Some(d.join(format!("{user}.key"))),
            site: "hq".into(),
            door: user.into(),
            client_id: Some(format!("test-{user}")),
            ..MqttConfig::default()
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

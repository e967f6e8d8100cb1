//! The OSDP reader (PD) on an RS-485 serial line (cargo feature `osdp`, LibOSDP): a grant's
//! credential becomes one card read for the panel (CP), over Secure Channel by default. LibOSDP
//! must be refreshed every few milliseconds, so it runs on its own thread and the door's loop
//! only queues card reads and collects link changes.

use crate::panel::osdp::{read_key, write_key, KeyError, OsdpConfig, PanelCommand, StatusOutput};
use crate::panel::reader::{CredentialOutput, LinkChange, LinkEvent, OutputError};
use crate::people::credential::{pack_bits, Credential};
use libosdp::{
    Channel, ChannelError, OsdpCardFormats, OsdpCommand, OsdpEvent, OsdpEventCardRead, OsdpFlag,
    OsdpLedColor, PdCapEntity, PdCapability, PdId, PdInfoBuilder, PeripheralDevice,
};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The OSDP reader could not start.
#[derive(Debug, thiserror::Error)]
pub enum OsdpError {
    /// `[output.osdp]` has no device.
    #[error("output.osdp.device is not set")]
    NoDevice,
    /// The serial device cannot be opened or set up.
    #[error("{}: {source}", path.display())]
    Device {
        /// The device.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Secure Channel key cannot be used.
    #[error("output.osdp.key_file: {0}")]
    Key(#[from] KeyError),
    /// LibOSDP refused the settings.
    #[error("OSDP reader setup: {0}")]
    Setup(String),
}

/// Longest wait between two LibOSDP refreshes (it asks for at most 50 ms).
const REFRESH: Duration = Duration::from_millis(5);

/// Link state bits shared with the door's loop.
const ONLINE: u8 = 1;
const SECURE: u8 = 2;

/// The serial line, non-blocking, raw, at the configured speed.
struct Serial {
    file: File,
}

impl Serial {
    fn open(path: &Path, baud: u32) -> Result<Self, std::io::Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)?;
        let speed = match baud {
            9600 => libc::B9600,
            19200 => libc::B19200,
            38400 => libc::B38400,
            57600 => libc::B57600,
            115_200 => libc::B115200,
            230_400 => libc::B230400,
            _ => return Err(std::io::Error::other(format!("unsupported baud {baud}"))),
        };
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is open for the whole block; `t` is a plain C struct filled by tcgetattr.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // 8N1, no flow control, no echo or line editing: OSDP is binary.
            libc::cfmakeraw(&mut t);
            t.c_cflag |= libc::CLOCAL | libc::CREAD;
            t.c_cflag &= !(libc::CSTOPB | libc::PARENB | libc::CRTSCTS);
            if libc::cfsetispeed(&mut t, speed) != 0
                || libc::cfsetospeed(&mut t, speed) != 0
                || libc::tcsetattr(fd, libc::TCSANOW, &t) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Self { file })
    }
}

impl Channel for Serial {
    fn get_id(&self) -> i32 {
        0
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        Ok(self.file.read(buf)?)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, ChannelError> {
        Ok(self.file.write(buf)?)
    }

    fn flush(&mut self) -> Result<(), ChannelError> {
        // Drops bytes not yet read: LibOSDP asks for this after a broken packet.
        // SAFETY: the fd is open while `self` lives.
        unsafe { libc::tcflush(self.file.as_raw_fd(), libc::TCIFLUSH) };
        Ok(())
    }

    fn close(&mut self) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// The OSDP reader: a PD thread on the serial line, fed card reads by [`CredentialOutput::send`].
pub struct OsdpOutput {
    cards: Sender<OsdpEventCardRead>,
    links: Receiver<LinkEvent>,
    state: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    secure: bool,
}

fn color(c: OsdpLedColor) -> &'static str {
    match c {
        OsdpLedColor::None => "none",
        OsdpLedColor::Red => "red",
        OsdpLedColor::Green => "green",
        OsdpLedColor::Amber => "amber",
        OsdpLedColor::Blue => "blue",
        OsdpLedColor::Magenta => "magenta",
        OsdpLedColor::Cyan => "cyan",
        OsdpLedColor::Unknown(_) => "unknown",
    }
}

/// The panel's command as a status-output command (`None`: not one of those).
fn panel_command(cmd: &OsdpCommand) -> Option<PanelCommand> {
    let ms = |count: u8| u32::from(count) * 100;
    Some(match cmd {
        OsdpCommand::Led(l) => {
            // A temporary state (control code 2) takes over for its timer; else the permanent one.
            let (p, for_ms) = if l.temporary.control_code == 2 {
                (&l.temporary, u32::from(l.temporary.timer_count) * 100)
            } else {
                (&l.permanent, 0)
            };
            PanelCommand::Led {
                led: l.led_number,
                color: color(p.on_color),
                off_color: color(p.off_color),
                on_ms: ms(p.on_count),
                off_ms: ms(p.off_count),
                for_ms,
            }
        }
        OsdpCommand::Buzzer(b) => PanelCommand::Buzzer {
            // Control code 2 is the default tone; 0 and 1 silence it.
            on_ms: if b.control_code == 2 {
                ms(b.on_count)
            } else {
                0
            },
            off_ms: ms(b.off_count),
            count: b.rep_count,
        },
        OsdpCommand::Output(o) => PanelCommand::Output {
            output: o.output_no,
            on: matches!(o.control_code, 2 | 4 | 5),
            for_ms: if o.control_code >= 5 {
                u32::from(o.timer_count) * 100
            } else {
                0
            },
        },
        OsdpCommand::Text(t) => PanelCommand::Text(String::from_utf8_lossy(&t.data).into_owned()),
        _ => return None,
    })
}

/// Whether a key the panel sets (KEYSET) may be saved; `Err` says why not. The key is what a
/// device on the line could take over, so:
/// - with Secure Channel off, never: LibOSDP then runs in install mode (it has no key), so any
///   panel could open an SCBK-D session and set one, and nothing here would use it;
/// - in install mode, only while no key file exists: pairing sets the first key, and a rogue
///   panel on the line cannot replace it afterwards.
///
/// Out of install mode the session was opened with the saved key, so the panel that holds it
/// may change it.
fn key_set_allowed(
    secure_channel: bool,
    install_mode: bool,
    key_file_exists: bool,
) -> Result<(), &'static str> {
    if !secure_channel {
        return Err("Secure Channel is off (output.osdp.secure_channel = false): a panel's key is never saved");
    }
    if install_mode && key_file_exists {
        return Err("a key is already paired, and install mode (output.osdp.install_mode) must not replace it: turn install mode off");
    }
    Ok(())
}

/// Whether LibOSDP runs in install mode (accepts SCBK-D): only when asked and no key is paired.
fn install_mode_on(c: &OsdpConfig, key: Option<&[u8; 16]>) -> bool {
    c.secure_channel && c.install_mode && key.is_none()
}

/// What the PD thread needs to decide on a panel's key, and where its verdict is audited.
struct KeyPolicy {
    file: PathBuf,
    secure_channel: bool,
    install_mode: bool,
    /// The door's loop drains this queue (`link_events`) into the audit log.
    audit: Sender<LinkEvent>,
}

impl KeyPolicy {
    /// Decides on `key`, saves it if allowed, audits the outcome; 0 acknowledges, -1 refuses.
    fn set(&self, key: &[u8]) -> i32 {
        let (code, detail) = match self.verdict(key) {
            Ok(()) => {
                tracing::warn!(
                    "the panel set a new Secure Channel key, saved to {}",
                    self.file.display()
                );
                (
                    0,
                    format!(
                        "the panel set this reader's Secure Channel key: saved to {}",
                        self.file.display()
                    ),
                )
            }
            Err(why) => {
                tracing::error!("the panel's Secure Channel key refused: {why}");
                (-1, format!("the panel's Secure Channel key refused: {why}"))
            }
        };
        // The loop may be gone (shutting down): the journal above has it then.
        let _ = self.audit.send(LinkEvent {
            change: LinkChange::Key,
            detail,
        });
        code
    }

    fn verdict(&self, key: &[u8]) -> Result<(), String> {
        // A file that cannot be looked at counts as there: refusing is the safe side.
        let exists = self.file.try_exists().unwrap_or(true);
        key_set_allowed(self.secure_channel, self.install_mode, exists)?;
        let key = <[u8; 16]>::try_from(key)
            .map_err(|_| format!("a key of {} bytes (16 expected)", key.len()))?;
        write_key(&self.file, &key).map_err(|e| e.to_string())
    }
}

/// Handles one command of the panel (on the PD thread): 0 acknowledges it, -1 refuses it.
fn on_command(cmd: &OsdpCommand, status: &mut dyn StatusOutput, keys: &KeyPolicy) -> i32 {
    if let Some(pc) = panel_command(cmd) {
        return match status.apply(&pc) {
            Ok(()) => 0,
            Err(e) => {
                tracing::warn!(?pc, "panel command failed: {e}");
                -1
            }
        };
    }
    match cmd {
        // Pairing or a key change: kept for the next start if allowed, audited either way.
        OsdpCommand::KeySet(k) => keys.set(&k.data),
        other => {
            // Speed or address changes (COMSET) stay in the config file, under the admin's
            // control: refused.
            tracing::info!(?other, "panel command not supported: refused");
            -1
        }
    }
}

/// The PD's description from `[output.osdp]`.
fn pd_info(c: &OsdpConfig, key: Option<[u8; 16]>) -> Result<PdInfoBuilder, OsdpError> {
    let setup = |e: libosdp::OsdpError| OsdpError::Setup(e.to_string());
    let v = c.vendor_code.to_be_bytes();
    let fw = |s: &str| s.parse::<u8>().unwrap_or(0);
    let id = PdId {
        version: c.version,
        model: c.model,
        vendor_code: (v[1], v[2], v[3]),
        serial_number: c.serial_number.to_be_bytes(),
        firmware_version: (
            fw(env!("CARGO_PKG_VERSION_MAJOR")),
            fw(env!("CARGO_PKG_VERSION_MINOR")),
            fw(env!("CARGO_PKG_VERSION_PATCH")),
        ),
    };
    let mut caps = vec![
        // Card data as an array of bits (compliance 1).
        PdCapability::CardDataFormat(PdCapEntity::new(1, 0)),
        PdCapability::CheckCharacterSupport(PdCapEntity::new(1, 0)),
    ];
    if c.leds > 0 {
        // Compliance 2: on/off and timed flashing, one colour per state.
        caps.push(PdCapability::LedControl(PdCapEntity::new(2, c.leds)));
    }
    if c.buzzer {
        caps.push(PdCapability::AudibleOutput(PdCapEntity::new(2, 1)));
    }
    if c.outputs > 0 {
        caps.push(PdCapability::OutputControl(PdCapEntity::new(2, c.outputs)));
    }
    let mut info = PdInfoBuilder::new()
        .name("facegate")
        .map_err(setup)?
        .address(i32::from(c.address))
        .map_err(setup)?
        .baud_rate(c.baud as i32)
        .map_err(setup)?
        .id(&id);
    if c.secure_channel {
        caps.push(PdCapability::CommunicationSecurity(PdCapEntity::new(1, 1)));
        if install_mode_on(c, key.as_ref()) {
            info = info.flag(OsdpFlag::InstallMode);
        } else {
            if c.install_mode {
                tracing::warn!(
                    "output.osdp.install_mode is ignored: {} already holds a key (pairing is over; turn install mode off)",
                    c.key_file.display()
                );
            }
            // Never the well-known install key, never a clear session.
            info = info.flag(OsdpFlag::EnforceSecure);
        }
        if let Some(k) = key {
            info = info.secure_channel_key(k);
        }
    }
    Ok(info.capabilities(&caps))
}

impl OsdpOutput {
    /// Opens the serial line and starts the PD thread. The key comes from `key_file` (in
    /// install mode it may be missing: the panel then sets one).
    pub fn open(c: &OsdpConfig, status: Box<dyn StatusOutput>) -> Result<Self, OsdpError> {
        let path = c.device.as_ref().ok_or(OsdpError::NoDevice)?;
        let key = if !c.secure_channel {
            None
        } else {
            match read_key(&c.key_file) {
                Ok(k) => Some(k),
                Err(KeyError::Read { source, .. })
                    if c.install_mode && source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => return Err(e.into()),
            }
        };
        let serial = Serial::open(path, c.baud).map_err(|source| OsdpError::Device {
            path: path.clone(),
            source,
        })?;
        let wake = serial
            .file
            .try_clone()
            .map_err(|source| OsdpError::Device {
                path: path.clone(),
                source,
            })?;
        let mut pd = PeripheralDevice::new(pd_info(c, key)?, Box::new(serial))
            .map_err(|e| OsdpError::Setup(e.to_string()))?;
        let (cards, card_rx) = mpsc::channel();
        let (link_tx, links) = mpsc::channel();
        let keys = KeyPolicy {
            file: c.key_file.clone(),
            secure_channel: c.secure_channel,
            install_mode: c.install_mode,
            audit: link_tx.clone(),
        };
        let mut status = status;
        pd.set_command_callback(move |cmd| on_command(cmd, status.as_mut(), &keys));
        let state = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("osdp-pd".into())
            .spawn({
                let (state, stop) = (state.clone(), stop.clone());
                move || pd_loop(pd, wake, card_rx, link_tx, &state, &stop)
            })
            .map_err(|e| OsdpError::Setup(format!("PD thread: {e}")))?;
        tracing::info!(
            device = %path.display(),
            address = c.address,
            baud = c.baud,
            secure_channel = c.secure_channel,
            "OSDP reader started"
        );
        Ok(Self {
            cards,
            links,
            state,
            stop,
            thread: Some(thread),
            secure: c.secure_channel,
        })
    }
}

/// The PD thread: refreshes LibOSDP when the line has bytes or every [`REFRESH`], queues card
/// reads for the next poll, and reports online and Secure Channel changes.
fn pd_loop(
    mut pd: PeripheralDevice,
    wake: File,
    cards: Receiver<OsdpEventCardRead>,
    links: Sender<LinkEvent>,
    state: &AtomicU8,
    stop: &AtomicBool,
) {
    let mut last = 0u8;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(card) = cards.try_recv() {
            if pd.notify_event(OsdpEvent::CardRead(card)).is_err() {
                tracing::error!("OSDP event queue full: card read dropped");
            }
        }
        pd.refresh();
        let now = (u8::from(pd.is_online()) * ONLINE) | (u8::from(pd.is_sc_active()) * SECURE);
        if now != last {
            state.store(now, Ordering::SeqCst);
            if now & ONLINE == 0 {
                // A read queued for an absent panel must not open the door when it returns.
                pd.flush_events();
            }
            let _ = links.send(LinkEvent {
                change: if now & ONLINE != 0 {
                    LinkChange::Online
                } else {
                    LinkChange::Offline
                },
                detail: match (now & ONLINE != 0, now & SECURE != 0) {
                    (true, true) => "the panel polls this reader over Secure Channel".into(),
                    (true, false) => "the panel polls this reader (no Secure Channel)".into(),
                    (false, _) => "the panel stopped polling this reader".into(),
                },
            });
            last = now;
        }
        let mut pfd = libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the call. Wakes on the panel's bytes; else at REFRESH.
        let n = unsafe { libc::poll(&mut pfd, 1, REFRESH.as_millis() as i32) };
        if n > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // A hung-up line (adapter unplugged, pty closed) would wake poll at once, forever.
            std::thread::sleep(REFRESH);
        }
    }
}

impl CredentialOutput for OsdpOutput {
    fn send(&mut self, credential: &Credential) -> Result<String, OutputError> {
        credential.check()?;
        let state = self.state.load(Ordering::SeqCst);
        if state & ONLINE == 0 {
            return Err(OutputError::Device(
                "the panel is not polling this reader (offline)".into(),
            ));
        }
        if self.secure && state & SECURE == 0 {
            return Err(OutputError::Device(
                "no Secure Channel with the panel yet".into(),
            ));
        }
        let bits = credential.card_bits();
        let format = match credential {
            Credential::Raw { .. } => OsdpCardFormats::Unspecified,
            _ => OsdpCardFormats::Wiegand,
        };
        let card = OsdpEventCardRead {
            reader_no: 0,
            format,
            direction: false,
            nr_bits: bits.len(),
            data: pack_bits(&bits),
        };
        self.cards
            .send(card)
            .map_err(|_| OutputError::Device("the OSDP reader thread has stopped".into()))?;
        Ok(format!(
            "{credential} ({} bits over OSDP{})",
            bits.len(),
            if self.secure {
                ", Secure Channel"
            } else {
                ", in clear"
            }
        ))
    }

    fn link_events(&mut self) -> Vec<LinkEvent> {
        self.links.try_iter().collect()
    }
}

impl Drop for OsdpOutput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libosdp::{OsdpCommandBuzzer, OsdpCommandLed, OsdpLedParams};

    #[test]
    fn panel_commands_reach_the_status_output() {
        let led = OsdpCommand::Led(OsdpCommandLed {
            reader: 0,
            led_number: 0,
            temporary: OsdpLedParams {
                control_code: 2,
                on_count: 5,
                off_count: 5,
                on_color: OsdpLedColor::Green,
                off_color: OsdpLedColor::None,
                timer_count: 30,
            },
            permanent: OsdpLedParams::default(),
        });
        assert_eq!(
            panel_command(&led),
            Some(PanelCommand::Led {
                led: 0,
                color: "green",
                off_color: "none",
                on_ms: 500,
                off_ms: 500,
                for_ms: 3000
            })
        );
        let beep = OsdpCommand::Buzzer(OsdpCommandBuzzer {
            reader: 0,
            control_code: 2,
            on_count: 1,
            off_count: 1,
            rep_count: 2,
        });
        let mut status = crate::panel::osdp::LoggedStatus::default();
        let dir = tempfile::tempdir().unwrap();
        let (keys, audit) = policy(&dir.path().join("k"), true, true);
        assert_eq!(on_command(&beep, &mut status, &keys), 0);
        assert_eq!(on_command(&led, &mut status, &keys), 0);
        assert_eq!(status.counts.buzzer.load(Ordering::Relaxed), 1);
        assert_eq!(status.counts.led.load(Ordering::Relaxed), 1);
        // Pairing: the panel's new key is kept, private, for the next start, and audited.
        let key = *b"0123456789abcdef";
        let set = OsdpCommand::KeySet(libosdp::OsdpCommandKeyset::new_scbk(key));
        assert_eq!(on_command(&set, &mut status, &keys), 0);
        assert_eq!(read_key(&dir.path().join("k")).unwrap(), key);
        let ev = audit.try_recv().unwrap();
        assert_eq!(ev.change, LinkChange::Key);
        assert!(ev.detail.contains("saved to"), "{}", ev.detail);
    }

    fn policy(
        file: &Path,
        secure_channel: bool,
        install_mode: bool,
    ) -> (KeyPolicy, Receiver<LinkEvent>) {
        let (audit, rx) = mpsc::channel();
        let keys = KeyPolicy {
            file: file.to_owned(),
            secure_channel,
            install_mode,
            audit,
        };
        (keys, rx)
    }

    /// Issue #24 finding 7: with a key file present and install mode on, a rogue panel on the
    /// line replaced the real key; with Secure Channel off, a panel's key was saved.
    #[test]
    fn a_panels_key_is_saved_only_over_secure_channel_and_install_mode_never_replaces_one() {
        // (secure channel, install mode, key file exists) -> saved?
        for (sc, install, exists, saved) in [
            (false, false, false, false),
            (false, false, true, false),
            (false, true, false, false),
            (false, true, true, false),
            (true, true, false, true),  // pairing
            (true, true, true, false),  // a rogue panel in install mode
            (true, false, true, true),  // the panel holding the key changes it
            (true, false, false, true), // (open() refuses to start without the file)
        ] {
            assert_eq!(
                key_set_allowed(sc, install, exists).is_ok(),
                saved,
                "sc {sc} install {install} exists {exists}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("osdp.key");
        let (real, rogue) = ([1u8; 16], [2u8; 16]);
        // Secure Channel off: never saved, audited.
        let (keys, audit) = policy(&file, false, false);
        assert_eq!(keys.set(&rogue), -1);
        assert!(!file.exists());
        let ev = audit.try_recv().unwrap();
        assert_eq!(ev.change, LinkChange::Key);
        assert!(
            ev.detail.contains("refused") && ev.detail.contains("never saved"),
            "{}",
            ev.detail
        );
        // Install mode: the first key pairs; a second one, from anyone, is refused.
        let (keys, audit) = policy(&file, true, true);
        assert_eq!(keys.set(&real), 0);
        assert_eq!(keys.set(&rogue), -1);
        assert_eq!(read_key(&file).unwrap(), real);
        let details: Vec<String> = audit.try_iter().map(|e| e.detail).collect();
        assert!(
            details[0].contains("saved") && details[1].contains("already paired"),
            "{details:?}"
        );
        // A key of the wrong size is refused and audited too.
        let (keys, audit) = policy(&file, true, false);
        assert_eq!(keys.set(&[3; 8]), -1);
        assert!(audit.try_recv().unwrap().detail.contains("8 bytes"));
        assert_eq!(read_key(&file).unwrap(), real);
        // Out of install mode (the session used the saved key) the panel may change it.
        assert_eq!(keys.set(&rogue), 0);
        assert_eq!(read_key(&file).unwrap(), rogue);
    }

    #[test]
    fn install_mode_runs_only_while_no_key_is_paired() {
        let c = OsdpConfig {
            install_mode: true,
            ..OsdpConfig::default()
        };
        assert!(install_mode_on(&c, None));
        assert!(!install_mode_on(&c, Some(&[1; 16])));
        let off = OsdpConfig {
            secure_channel: false,
            ..c.clone()
        };
        assert!(!install_mode_on(&off, None));
        assert!(!install_mode_on(&OsdpConfig::default(), None));
    }

    #[test]
    fn a_missing_device_or_exposed_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("osdp.key");
        let c = OsdpConfig {
            device: Some(dir.path().join("ttyNONE")),
            key_file: key.clone(),
            ..OsdpConfig::default()
        };
        let open = |c: &OsdpConfig| {
            OsdpOutput::open(c, Box::<crate::panel::osdp::LoggedStatus>::default())
        };
        assert!(matches!(
            open(&c),
            Err(OsdpError::Key(KeyError::Read { .. }))
        ));
        write_key(&key, &[7; 16]).unwrap();
        let e = open(&c).err().unwrap();
        assert!(matches!(e, OsdpError::Device { .. }), "{e}");
        assert!(e.to_string().contains("ttyNONE"), "{e}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            open(&c),
            Err(OsdpError::Key(KeyError::Exposed { .. }))
        ));
    }
}

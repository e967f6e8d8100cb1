//! The command line of `facegate`: every subcommand, flag and argument, with the doc comments
//! that are its `--help` text. The commands themselves live in their own modules.

use crate::{audit, console, credential, door, pin, policy, site};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Administer a facegate door: enrol employees, identify faces, compute and compare embeddings.
///
/// Exit status: 0 success (or "same person", "recognised"), 1 a negative answer ("different
/// people", "unknown"), 2 an error (nothing is changed on error).
#[derive(Parser)]
#[command(name = "facegate", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct GlobalArgs {
    /// Model manifest to load instead of the models built into this binary
    /// (files are looked up beside the manifest and checked against its sha256 sums).
    #[arg(long, global = true, value_name = "MANIFEST")]
    pub models: Option<PathBuf>,
    /// Embedding network to use, by its name in the manifest (default: the manifest's default,
    /// the int8 network the door runs).
    #[arg(long, global = true, value_name = "NAME")]
    pub embedder: Option<String>,
    /// Smallest face to look for, in pixels of the photo. Lower it (down to 12) for small faces
    /// in group photos; detection time grows with the square of 1/PIXELS.
    #[arg(long, global = true, value_name = "PIXELS", default_value_t = 80.0)]
    pub min_face: f32,
    /// The employee gallery file (default: the door config's `[gallery] path`, so the CLI and
    /// the door always use the same file; /var/lib/facegate/gallery.toml without a config).
    #[arg(long, global = true, value_name = "FILE", env = "FACEGATE_GALLERY")]
    pub gallery: Option<PathBuf>,
    /// The door's config file: `identify`, `verify`, enrolment's duplicate check and `calibrate
    /// --open-set` apply its [recognition] threshold, min_margin and min_face, as the door does
    /// (default: /etc/facegate/config.toml if it exists, else the defaults; the model's threshold
    /// when the config sets none). Its models and embedder are used unless --models / --embedder
    /// are given.
    #[arg(long, global = true, value_name = "FILE", env = "FACEGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print every face of each image as one JSON object per line: box [x, y, w, h] in pixels of
    /// the original image, detector score, 5 landmarks (eyes, nose, mouth corners) and embedding.
    ///
    /// Directories are walked recursively in sorted order, taking .jpg, .jpeg and .png files.
    /// An unreadable image gives {"path": ..., "error": ...}; the others are still processed and
    /// the exit status is 2 at the end.
    Embed {
        /// Image files or directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Enrol a person from one photo or more (each photo adds an embedding). Refused, with
    /// nothing written, when a photo has no face, several faces of similar size none of which is
    /// clearly the subject, a face under 48 pixels or too poor for the door's own quality gates,
    /// cannot be read, or matches another enrolled person (unless --force). A merely poor photo
    /// (a face under 80 pixels, past enrolment's stricter quality gates, or beside other faces)
    /// is enrolled with a warning; --strict refuses it.
    Enroll(EnrollArgs),
    /// Enrol many people at once from DIR/<name>/<photos>: each photo is checked on its own (as
    /// `enroll` checks it), bad ones are skipped with the reason, poor ones enrolled with a
    /// warning, and a summary is printed (progress bar on a terminal).
    Import(ImportArgs),
    /// From labelled photos (DIR/<name>/<photos>): same- and different-person distance
    /// distributions, false-accept and false-reject rates at several thresholds, and the
    /// threshold recommended for a target false-accept rate.
    ///
    /// With --open-set: the door's 1:N question. A gallery is built the way `import` builds it,
    /// every probe photo is embedded once, and the door's own acceptance rule is run for gallery
    /// sizes --sizes (random sub-galleries, several seeded draws pooled) over a grid of
    /// thresholds x margins. Prints FPIR (strangers accepted as anybody) and FNIR (employees not
    /// accepted as themselves, and how many of those as someone else), and the operating point
    /// with the lowest FNIR whose FPIR <= --target-fpir at the largest size.
    Calibrate(CalibrateArgs),
    /// Group the faces of unknown people by identity (e.g. photos of visitors the door did not
    /// recognise) to review and enrol them.
    Cluster(ClusterArgs),
    /// List the enrolled people, with their photo counts; those with fewer photos than the
    /// site's `recognition.target_fnir` needs at the gallery's size are marked.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only the people with fewer photos than advised.
        #[arg(long)]
        fewer_photos: bool,
    },
    /// Show one person and where each of their embeddings came from.
    Show {
        /// The person's id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a person and all their embeddings.
    Remove {
        /// The person's id.
        id: String,
    },
    /// Show or edit a person's access policy: --disable/--enable, --from/--until (site-local
    /// date or date-time), --window "mon-fri 07:00-19:00" (repeatable), --clear-windows. Prints
    /// whether the door would let them in now, else which rule refuses (disabled,
    /// not_yet_valid, expired, outside_schedule); exit status 0 allowed, 1 refused.
    Policy(policy::PolicyArgs),
    /// Set the card credential a person's face stands for when the door is the reader of an
    /// access-control panel ([output] mode = "wiegand"), e.g.
    /// `facegate credential ann --facility 18 --card 4660`; `--clear` removes it. One card is
    /// never given to two people.
    Credential(credential::CredentialArgs),
    /// Set or clear a person's PIN for the door's second factor ([access] factors =
    /// "face_and_pin"): `echo 4711 | facegate pin set ann` (read from standard input, stored as
    /// an argon2id hash, never in clear); `--duress` sets the duress PIN, which opens the door
    /// and raises a silent `duress` event; `facegate pin clear ann [--duress]`.
    Pin(pin::PinArgs),
    /// Change a person's display name (the id stays).
    Rename {
        /// The person's id.
        id: String,
        /// The new name.
        name: String,
    },
    /// Move the gallery to another embedding network (--embedder NAME, e.g. the f32 form on a
    /// CPU where int8 is slow) without re-enrolling: every embedding is recomputed from the face
    /// crop kept at enrolment, under the gallery's lock, and the new gallery replaces the old
    /// one atomically. Refused, with nothing written, if any photo has no crop (enrolled before
    /// crops were kept): those are named, to re-enrol.
    Reembed {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Say who is in each photo (every face), judged by the door's acceptance rule with the
    /// config's values: the person, or the rule that refused the face (too_small, unknown,
    /// ambiguous, or a quality problem), with the nearest person, distance and margin.
    /// Exit status 0 if any face was recognised, 1 if none, 2 on error.
    Identify {
        /// Photos.
        #[arg(required = true, value_name = "PHOTO")]
        photos: Vec<PathBuf>,
        /// Print one JSON object per face.
        #[arg(long)]
        json: bool,
    },
    /// Time the pipeline on this machine, stage by stage (decode, detect, landmarks, align,
    /// embed, 1:1000 match, whole photo), for every embedding network of the manifest (or
    /// --embedder's): e.g. int8 against f32 on the Pi that runs the door. Prints the median over
    /// photos of each photo's median over the rounds.
    Bench(BenchArgs),
    /// Compare the main (largest) faces of two photos: prints the distance and whether it is the
    /// same person. Exit status 0 same, 1 different, 2 error (unreadable file, no face...).
    Verify(VerifyArgs),
    /// Make the site key pair for a site of several doors: KEY (private, mode 0600, for the
    /// admin machine only) and KEY.pub (for every door's mqtt.site_key).
    Keygen {
        /// Where to write the private key (refuses to overwrite).
        #[arg(default_value = "site.key")]
        key: PathBuf,
    },
    /// Send the gallery to the broker as the site's retained, signed gallery: every door with
    /// the site's public key takes it within seconds (embeddings only: face crops stay here).
    Publish {
        /// The site's private key (`facegate keygen`).
        #[arg(long, default_value = "site.key")]
        key: PathBuf,
        /// A config file whose [mqtt] names the broker and the site (default: --config).
        #[arg(long, value_name = "FILE")]
        mqtt: Option<PathBuf>,
    },
    /// Send a signed command to a door (or every door: --door '*'), if its mqtt.commands is on.
    #[command(name = "command")]
    Remote {
        #[command(subcommand)]
        action: site::Action,
        /// The door's name (mqtt.door), or '*' for every door of the site. Required for
        /// `unlock` (an unlock of every door must be asked for by name); lockdown and
        /// clear-lockdown go to every door without it.
        #[arg(long, global = true)]
        door: Option<String>,
        /// Who asks, recorded in each door's audit log (default: your login name).
        #[arg(long, global = true)]
        by: Option<String>,
        /// The site's private key.
        #[arg(long, global = true, default_value = "site.key")]
        key: PathBuf,
        /// Lockdown and clear-lockdown: wait up to SECONDS for each door to say it holds the new
        /// state, and name the doors that did not (exit status 1). The doors are those the
        /// broker knows (their retained availability).
        #[arg(long, global = true, value_name = "SECONDS")]
        wait: Option<f64>,
        /// A config file whose [mqtt] names the broker and the site (default: --config).
        #[arg(long, global = true, value_name = "FILE")]
        mqtt: Option<PathBuf>,
    },
    /// The door's audit log: `facegate audit verify [PATH]` checks its hash chain.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCommand,
    },
    /// The running door, through its local control API: `facegate door status`, `events`,
    /// `unlock`, `lockdown on|off`, `reload`. Exit status 1 if the door refused.
    Door {
        #[command(subcommand)]
        cmd: door::DoorCommand,
        /// The door's control socket (default: the door config's `[control] socket`).
        #[arg(long, global = true, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// The web console's accounts (`user add|remove|list`) and its certificate's fingerprint.
    /// The accounts file is the config's `[console] users`.
    Console {
        #[command(subcommand)]
        cmd: console::ConsoleCommand,
    },
}

/// The arguments of `facegate enroll`.
#[derive(Args)]
pub struct EnrollArgs {
    /// Display name, e.g. "Ada Lovelace".
    #[arg(long)]
    pub name: String,
    /// Stable id (default: derived from the name); an existing id gets the photos added.
    #[arg(long)]
    pub id: Option<String>,
    /// Enrol even if a face matches another enrolled person.
    #[arg(long)]
    pub force: bool,
    /// Refuse a merely poor photo too (a face under 80 px, blurred, badly lit or turned beyond
    /// enrolment's stricter gates, or other faces of similar size) instead of enrolling it with
    /// a warning.
    #[arg(long)]
    pub strict: bool,
    /// Photos of the person.
    #[arg(required = true, value_name = "PHOTO")]
    pub photos: Vec<PathBuf>,
}

/// The arguments of `facegate import`.
#[derive(Args)]
pub struct ImportArgs {
    /// Directory with one sub-directory of photos per person.
    pub dir: PathBuf,
    /// Enrol even faces that match another enrolled person.
    #[arg(long)]
    pub force: bool,
    /// Refuse a merely poor photo too (a face under 80 px, blurred, badly lit or turned beyond
    /// enrolment's stricter gates, or other faces of similar size) instead of enrolling it with
    /// a warning.
    #[arg(long)]
    pub strict: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `facegate calibrate`.
#[derive(Args)]
pub struct CalibrateArgs {
    /// Directory with one sub-directory of photos per person.
    #[arg(required_unless_present = "open_set", conflicts_with = "open_set")]
    pub dir: Option<PathBuf>,
    /// Largest acceptable false-accept rate (pairs mode).
    #[arg(long, default_value_t = 0.0)]
    pub target_far: f64,
    /// Open-set evaluation from an openset.csv (role,person,image with roles enrol, genuine,
    /// impostor; photos relative to the CSV's folder) or from DIR/<name>/<photos> (a share
    /// of the people held out as strangers, see --strangers).
    #[arg(long, value_name = "CSV_OR_DIR")]
    pub open_set: Option<PathBuf>,
    /// Open set from a directory: share of people held out as strangers (seeded).
    #[arg(long, default_value_t = 0.3)]
    pub strangers: f64,
    /// Open set from a directory: photos enrolled per person (the rest are probes).
    #[arg(long, default_value_t = 1)]
    pub enrol_photos: usize,
    /// Gallery sizes to evaluate (a size above the people enrolled is capped to it).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub sizes: Vec<usize>,
    /// Random sub-galleries drawn per size smaller than the whole gallery.
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    /// Seed of the strangers' split and of the draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest acceptable FPIR at the largest size, for the recommendation.
    #[arg(long, default_value_t = 0.001)]
    pub target_fpir: f64,
    /// Largest acceptable false-match rate of the 1:1 check a card or PIN asks for (the face
    /// against the one person named), for its threshold (`one_to_one` in --write-points).
    #[arg(long, default_value_t = 0.0001)]
    pub target_fmr: f64,
    /// Thresholds to try, comma-separated (default: 0.4 to 1.1 times the model's).
    #[arg(long, value_delimiter = ',')]
    pub thresholds: Option<Vec<f32>>,
    /// Margins to try, comma-separated (default: 0 to 0.3 times the model's threshold).
    #[arg(long, value_delimiter = ',')]
    pub margins: Option<Vec<f32>>,
    /// Embed every chip and its mirror image, averaged (test-time augmentation; twice the
    /// embedding time), for enrolment and probes alike.
    #[arg(long, requires = "open_set")]
    pub flip: bool,
    /// Check enrol photos as `import --strict` does (default: as `import` does).
    #[arg(long, requires = "open_set")]
    pub strict: bool,
    /// Write the recommended threshold and min_margin into this config's [recognition]
    /// (created if missing; the rest of the file and its comments are kept).
    #[arg(long, value_name = "PATH", requires = "open_set")]
    pub write_config: Option<PathBuf>,
    /// Gallery sizes to give the door a threshold for (--write-points): sizes beyond the
    /// people enrolled are estimated from the measured distances.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,5000",
        requires = "open_set"
    )]
    pub point_sizes: Vec<usize>,
    /// Write the door's threshold for each of --point-sizes (the site's calibration; point
    /// `recognition.calibration` at it). The model's margin is kept.
    #[arg(long, value_name = "PATH", requires = "open_set")]
    pub write_points: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `facegate cluster`.
#[derive(Args)]
pub struct ClusterArgs {
    /// Photos or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Distance under which faces are grouped (default: the model's threshold).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Print the groups as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `facegate bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Photos with a face, or directories of them.
    #[arg(required = true, value_name = "PHOTO")]
    pub paths: Vec<PathBuf>,
    /// Timed rounds over all photos, after one warm-up round.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Threads per network run, as `[performance] threads`: "auto" (one per core) or N.
    #[arg(long, default_value = "1")]
    pub threads: facegate::cores::Threads,
    /// Also the door's frame rate (BlazeFace, align, embed; photos fitted into 640x480
    /// frames) with one recognition worker and with N side by side, as `[performance]
    /// workers` runs them: on a Pi, `--workers 4` shows what its four cores really give.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    pub workers: Option<u16>,
}

/// The arguments of `facegate verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// First photo.
    pub a: PathBuf,
    /// Second photo.
    pub b: PathBuf,
    /// Same-person threshold on the distance (default: the config's, else the model's).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

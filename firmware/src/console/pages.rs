//! The console's HTML, server-rendered with maud (every value escaped). No inline script or
//! style: the Content-Security-Policy allows only /static/console.js and /static/console.css.

use super::auth::Session;
use super::users::Role;
use maud::{html, Markup, DOCTYPE};

/// The page frame: title, navigation for the session's role, and `body`.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - facegate" }
                // For the script's own requests; the forms carry it as a field.
                @if let Some(s) = session { meta name="csrf" content=(s.csrf); }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                @if let Some(s) = session {
                    nav {
                        a href="/" { "Live" }
                        a href="/audit" { "Audit" }
                        a href="/people" { "People" }
                        @if s.role == Role::Admin {
                            a href="/review" { "Review" }
                        }
                        span.who { (s.user) " (" (s.role.word()) ")" }
                        form #logout method="post" action="/logout" class="inline" {
                            (csrf(s))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every POST form carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// The login page, with an optional message and the login form's token (no login CSRF).
pub fn login(message: Option<&str>, token: &str) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            @if let Some(m) = message { p.error { (m) } }
            form #login method="post" action="/login" {
                input type="hidden" name="login" value=(token);
                label { "Name " input type="text" name="name" autocomplete="username" required maxlength="32"; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required maxlength="256"; }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// The result of enrolling faces from the review page: who was added (`#enrolled`), or why not.
pub fn review_enrolled(s: &Session, added: Option<&str>, lines: &[String]) -> Markup {
    layout(
        "Review",
        Some(s),
        html! {
            @if let Some(id) = added { p #enrolled data-id=(id) { "Enrolled as " code { (id) } "." } }
            @for l in lines { p { (l) } }
            p { a href="/review" { "Back" } }
        },
    )
}

/// A message page (a result, a refusal) with a link back.
pub fn message(session: Option<&Session>, title: &str, lines: &[String], back: &str) -> Markup {
    layout(
        title,
        session,
        html! {
            @for l in lines { p { (l) } }
            p { a href=(back) { "Back" } }
        },
    )
}

/// The live view: the door's camera with boxes and verdicts (drawn by console.js from
/// /api/live and /live.jpg), the door's state and the latest events (/api/events).
pub fn live(s: &Session, status: Result<String, String>) -> Markup {
    layout(
        "Live",
        Some(s),
        html! {
            (live_view())
            h2 { "Door" }
            p #door-state { "..." }
            details {
                summary { "Everything the door reports" }
                @match &status {
                    Ok(json) => { pre #status { (pretty(json)) } }
                    Err(e) => { p.error #status { (e) } }
                }
            }
            @if s.role == Role::Admin {
                div.controls {
                    form #unlock method="post" action="/door/unlock" class="inline" {
                        (csrf(s)) button type="submit" { "Unlock once" }
                    }
                    form #lockdown-on method="post" action="/door/lockdown" class="inline" {
                        (csrf(s)) input type="hidden" name="state" value="on";
                        button type="submit" class="danger" { "Lockdown on" }
                    }
                    form #lockdown-off method="post" action="/door/lockdown" class="inline" {
                        (csrf(s)) input type="hidden" name="state" value="off";
                        button type="submit" { "Lockdown off" }
                    }
                }
            }
            h2 { "Latest events" }
            ul #events {}
        },
    )
}

/// The door camera with each face's box and verdict (drawn by console.js), and the verdicts as
/// a list beside it (readable without the picture, and by a screen reader).
fn live_view() -> Markup {
    html! {
        div #live data-seq="0" {
            canvas #view width="640" height="480" {}
            p #live-note.note { "Connecting to the door camera..." }
            ul #live-faces {}
        }
    }
}

/// JSON text indented for reading (as it came when it is not JSON).
pub fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_owned())
}

/// One person as listed.
pub struct PersonRow {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Enrolled faces.
    pub faces: usize,
}

/// The people list with its search box.
pub fn people(
    s: &Session,
    q: &str,
    rows: &[PersonRow],
    total: usize,
    error: Option<&str>,
) -> Markup {
    layout(
        "People",
        Some(s),
        html! {
            @if let Some(e) = error { p.error { (e) } }
            @if s.role == Role::Admin { p { a href="/people/new" { "Add a person" } } }
            form method="get" action="/people" {
                input type="search" name="q" value=(q) placeholder="name or id" maxlength="100";
                button type="submit" { "Search" }
            }
            p.note { (rows.len()) " of " (total) " people" }
            table {
                tr { th { "Name" } th { "Id" } th { "Faces" } }
                @for r in rows {
                    tr {
                        td { a href={ "/people/" (r.id) } { (r.name) } }
                        td { (r.id) }
                        td { (r.faces) }
                    }
                }
            }
        },
    )
}

/// A person's access policy and card, as the person page shows them.
pub struct PersonAccess<'a> {
    /// The policy.
    pub policy: &'a crate::people::policy::Policy,
    /// The card.
    pub credential: Option<crate::people::credential::Credential>,
    /// Whether the policy lets them in now, in words.
    pub verdict: String,
}

/// One person: their access policy and card (read-only for a viewer, who is not shown the
/// card's number: with it a 26-bit card can be cloned); for an admin, the forms to change them,
/// rename, remove.
pub fn person(s: &Session, p: &PersonRow, enrolled: &[String], a: &PersonAccess) -> Markup {
    use crate::people::credential::Format;
    use crate::people::policy::PolicyRequest;
    let admin = s.role == Role::Admin;
    let form = PolicyRequest::of(a.policy);
    let factors = form.factors.clone().unwrap_or_else(|| "none".to_owned());
    let (format, facility, card) = match a.credential {
        Some(c) => {
            let (f, n) = c.parts();
            (c.format(), f.to_string(), n.to_string())
        }
        None => (Format::Wiegand26, String::new(), String::new()),
    };
    html! {
        (layout(&p.name, Some(s), html! {
            p { "Id: " code { (p.id) } ", " (p.faces) " face(s) enrolled" }
            ul { @for e in enrolled { li { (e) } } }
            h2 { "Access" }
            dl.readonly #access {
                dt { "Let in" } dd { @if a.policy.disabled { "no (disabled)" } @else { "yes" } }
                dt { "Valid from" } dd { (form.valid_from.as_deref().unwrap_or("-")) }
                dt { "Valid until" } dd { (form.valid_until.as_deref().unwrap_or("-")) }
                dt { "Weekly windows" } dd {
                    @if form.windows.is_empty() { "any time" }
                    @for w in &form.windows { (w) br; }
                }
                dt { "Second factors" } dd { (factors) }
                dt { "Now" } dd #verdict { (a.verdict) }
            }
            h2 { "Card" }
            p #card {
                @match a.credential {
                    None => { "No card." }
                    Some(c) if admin => { (c.to_string()) }
                    Some(c) => { "A " (c.format().as_str()) " card (its number is shown to admins only)." }
                }
            }
            @if admin {
                h2 { "Change access" }
                form #policy method="post" action={ "/people/" (p.id) "/policy" } {
                    (csrf(s))
                    label { input type="checkbox" name="enabled" value="yes" checked[!a.policy.disabled]; " Let in (unchecked: refused, kept enrolled)" }
                    label { "Valid from " input type="text" name="valid_from" value=(form.valid_from.as_deref().unwrap_or("")) maxlength="40" placeholder="2026-12-01 or 2026-12-01T08:00"; }
                    label { "Valid until " input type="text" name="valid_until" value=(form.valid_until.as_deref().unwrap_or("")) maxlength="40" placeholder="empty: no end"; }
                    label { "Weekly windows, one a line (empty: any time; e.g. mon-fri 07:00-19:00)"
                        br;
                        textarea name="windows" rows="4" cols="36" maxlength="4000" { (form.windows.join("\n")) }
                    }
                    label { "Second factors always "
                        select name="factors" {
                            @for (v, text) in [("none", "as the site says"), ("card_and_face", "card and face"), ("face_and_pin", "face and PIN")] {
                                option value=(v) selected[factors == v] { (text) }
                            }
                        }
                    }
                    button type="submit" { "Save access" }
                }
                h2 { "Change card" }
                form #credential method="post" action={ "/people/" (p.id) "/credential" } {
                    (csrf(s))
                    label { "Format "
                        select name="format" {
                            option value="wiegand26" selected[format == Format::Wiegand26] { "26-bit Wiegand (facility 0-255)" }
                            option value="wiegand34" selected[format == Format::Wiegand34] { "34-bit Wiegand (facility 0-65535)" }
                        }
                    }
                    label { "Facility " input type="text" inputmode="numeric" name="facility" value=(facility) required maxlength="10"; }
                    label { "Card " input type="text" inputmode="numeric" name="card" value=(card) required maxlength="10"; }
                    button type="submit" { "Save card" }
                }
                @if a.credential.is_some() {
                    form #credential-clear method="post" action={ "/people/" (p.id) "/credential" } {
                        (csrf(s))
                        input type="hidden" name="clear" value="yes";
                        button type="submit" class="danger" { "Remove the card" }
                    }
                }
                h2 { "Rename" }
                form method="post" action={ "/people/" (p.id) "/rename" } {
                    (csrf(s))
                    input type="text" name="name" value=(p.name) required maxlength="100";
                    button type="submit" { "Rename" }
                }
                h2 { "Remove" }
                form method="post" action={ "/people/" (p.id) "/remove" } {
                    (csrf(s))
                    label { input type="checkbox" name="confirm" value="yes" required; " Remove " (p.name) ", their faces and their pictures" }
                    button type="submit" class="danger" { "Remove" }
                }
            }
        }))
    }
}

/// Adding a person: from the door camera, or from photos.
pub fn new_person(s: &Session, people: &[PersonRow]) -> Markup {
    layout(
        "Add a person",
        Some(s),
        html! {
            h2 { "From the door camera" }
            p.note { "The person stands in front of the door camera, looking into it. Five pictures are taken over two seconds; the good ones are enrolled." }
            (live_view())
            form #from-camera method="post" action="/people/new" {
                (csrf(s))
                (name_or_existing(people))
                label { input type="checkbox" name="force" value="yes"; " Add even if they look like someone enrolled" }
                button type="submit" { "Take pictures and enrol" }
            }
            h2 { "From photos" }
            form #from-photos method="post" action="/people/upload" enctype="multipart/form-data" {
                (csrf(s))
                (name_or_existing(people))
                label { "Photos (JPEG or PNG, up to 5, 8 MB in all) " input type="file" name="photo" accept="image/jpeg,image/png" multiple required; }
                label { input type="checkbox" name="force" value="yes"; " Add even if they look like someone enrolled" }
                button type="submit" { "Enrol" }
            }
        },
    )
}

fn name_or_existing(people: &[PersonRow]) -> Markup {
    html! {
        label { "Name " input type="text" name="name" maxlength="100"; }
        label { "or add the faces to "
            select name="id" {
                option value="" { "(a new person)" }
                @for p in people { option value=(p.id) { (p.name) " (" (p.id) ")" } }
            }
        }
    }
}

/// What an enrolment attempt gave: each image's outcome and the door's answer.
pub fn enrolled(
    s: &Session,
    checked: &[super::faces::Checked],
    answer: &str,
    added: Option<&str>,
) -> Markup {
    layout(
        "Enrolment",
        Some(s),
        html! {
            @match added {
                Some(id) => { p #enrolled data-id=(id) { "Enrolled as " code { (id) } "." } }
                None => { p { (answer) } }
            }
            table {
                tr { th { "Picture" } th { "Result" } }
                @for c in checked {
                    tr {
                        td { (c.label) }
                        td {
                            @match &c.outcome {
                                Ok(f) if f.warnings.is_empty() => { "good" }
                                Ok(f) => { "usable: " @for w in &f.warnings { (w) " " } }
                                Err(e) => { span.error { "not used: " (e) } }
                            }
                        }
                    }
                }
            }
            p { a href="/people/new" { "Add another" } " " a href="/people" { "People" } }
        },
    )
}

/// The audit filters as given.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Person id or name.
    pub person: String,
    /// Event word.
    pub event: String,
    /// From (RFC 3339 or a date).
    pub from: String,
    /// To.
    pub to: String,
    /// Page (0 = newest).
    pub page: usize,
}

impl AuditFilter {
    /// The filter as a query string (for the CSV link and the pages).
    pub fn query(&self, page: usize) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        format!(
            "person={}&event={}&from={}&to={}&page={page}",
            enc(&self.person),
            enc(&self.event),
            enc(&self.from),
            enc(&self.to)
        )
    }
}

/// One audit line as shown.
pub struct AuditRow {
    /// seq.
    pub seq: u64,
    /// time.
    pub time: String,
    /// event.
    pub event: String,
    /// Who (identity or name).
    pub who: String,
    /// The rest, short.
    pub detail: String,
    /// Whether the door kept a picture.
    pub picture: bool,
}

/// The audit page.
pub fn audit(
    s: &Session,
    f: &AuditFilter,
    rows: &[AuditRow],
    more: bool,
    error: Option<&str>,
) -> Markup {
    layout(
        "Audit",
        Some(s),
        html! {
            form method="get" action="/audit" class="filters" {
                label { "Person " input type="text" name="person" value=(f.person) maxlength="100"; }
                label { "Event " input type="text" name="event" value=(f.event) maxlength="40" placeholder="grant, deny, ..."; }
                label { "From " input type="text" name="from" value=(f.from) maxlength="40" placeholder="2026-11-29"; }
                label { "To " input type="text" name="to" value=(f.to) maxlength="40" placeholder="2026-11-30T08:00:00Z"; }
                button type="submit" { "Filter" }
            }
            @if let Some(e) = error { p.error { (e) } }
            p { a href={ "/audit.csv?" (f.query(0)) } { "CSV of these lines" } }
            // Its own box scrolls sideways on a narrow screen; the page keeps its width.
            div.scroll {
                table #audit {
                    tr { th { "Seq" } th { "Time" } th { "Event" } th { "Who" } th { "Detail" } th { "Picture" } }
                    @for r in rows {
                        tr {
                            td { (r.seq) } td { (r.time) } td { (r.event) } td { (r.who) } td { (r.detail) }
                            td { @if r.picture { img.chip src={ "/picture/" (r.seq) } alt="face"; } }
                        }
                    }
                }
            }
            p {
                @if f.page > 0 { a href={ "/audit?" (f.query(f.page - 1)) } { "Newer" } " " }
                @if more { a href={ "/audit?" (f.query(f.page + 1)) } { "Older" } }
            }
        },
    )
}

/// The review page: groups of unknown faces.
pub fn review(s: &Session, groups: &[Vec<u64>], people: &[PersonRow], notes: &[String]) -> Markup {
    layout(
        "Review unknown faces",
        Some(s),
        html! {
            @for n in notes { p.note { (n) } }
            @if groups.is_empty() { p { "No pictures of unknown faces." } }
            @for (i, g) in groups.iter().enumerate() {
                @let seqs = g.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                section.group {
                    h2 { "Group " (i + 1) " (" (g.len()) " picture(s))" }
                    div.chips { @for seq in g { img.chip src={ "/picture/" (seq) } alt={ "face " (seq) }; } }
                    form method="post" action="/review/enrol" class="inline enrol-new" {
                        (csrf(s)) input type="hidden" name="seqs" value=(seqs);
                        input type="text" name="name" placeholder="name" required maxlength="100";
                        button type="submit" { "Enrol as new person" }
                    }
                    @if !people.is_empty() {
                        form method="post" action="/review/add" class="inline" {
                            (csrf(s)) input type="hidden" name="seqs" value=(seqs);
                            select name="id" { @for p in people { option value=(p.id) { (p.name) " (" (p.id) ")" } } }
                            button type="submit" { "Add to person" }
                        }
                    }
                    form method="post" action="/review/dismiss" class="inline dismiss" {
                        (csrf(s)) input type="hidden" name="seqs" value=(seqs);
                        button type="submit" class="danger" { "Dismiss" }
                    }
                }
            }
        },
    )
}

/// A small page for an error status (no details of the server).
pub fn error(status: u16, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" { head { meta charset="utf-8"; title { (status) } } body { p { (status) " " (text) } } }
    }
}

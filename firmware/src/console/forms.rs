//! What the console parses from a request, by hand and bounded: url-encoded forms, the session
//! cookie, a picture's seq, CSV cells out. Never panics on any input (fuzzed:
//! fuzz/fuzz_targets/console.rs).

/// The largest form body taken (a login, a rename, a review action).
pub const MAX_FORM: usize = 16 * 1024;
/// The most fields a form may have.
pub const MAX_FIELDS: usize = 600;

/// A parsed `application/x-www-form-urlencoded` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a form was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormError {
    /// Over [`MAX_FORM`] bytes or [`MAX_FIELDS`] fields.
    #[error("the form is too large")]
    TooLarge,
    /// Not valid percent-encoding of UTF-8.
    #[error("the form is not valid")]
    Invalid,
}

/// Parses an url-encoded body (`a=1&b=x+y%21`).
pub fn parse_form(body: &[u8]) -> Result<Form, FormError> {
    if body.len() > MAX_FORM {
        return Err(FormError::TooLarge);
    }
    let mut out = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if out.len() >= MAX_FIELDS {
            return Err(FormError::TooLarge);
        }
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((decode(k)?, decode(v)?));
    }
    Ok(Form(out))
}

/// Percent-decoding with `+` as space; the result must be UTF-8.
pub fn decode(s: &[u8]) -> Result<String, FormError> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = s.get(i + 1).copied().and_then(hex);
                let lo = s.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h << 4) | l),
                    _ => return Err(FormError::Invalid),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::Invalid)
}

/// The value of cookie `name` in a `Cookie:` header (`a=1; b=2`).
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A picture's seq: decimal digits only (no sign, no path), a u64.
pub fn seq(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A list of seqs, comma-separated (the review page's groups), at most `max`.
pub fn seqs(s: &str, max: usize) -> Option<Vec<u64>> {
    let v: Option<Vec<u64>> = s.split(',').filter(|p| !p.is_empty()).map(seq).collect();
    v.filter(|v| !v.is_empty() && v.len() <= max)
}

/// One CSV cell: quoted when needed, and a cell a spreadsheet would take for a formula
/// (starting with `=`, `+`, `-`, `@`, tab or carriage return) prefixed with `'`.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The longest date field of the access form.
pub const MAX_DATE: usize = 40;
/// The longest line of the windows field (`mon,tue,wed,thu,fri 07:00-19:00` is 31).
pub const MAX_WINDOW: usize = 80;

/// The access form (`enabled`, `valid_from`, `valid_until`, `windows` one a line, `factors`)
/// as the door's `people policy` takes it; checked with the library's code
/// ([`crate::people::policy::PolicyRequest::to_policy`]), which the door applies again.
pub fn policy(form: &Form) -> Result<crate::people::policy::PolicyRequest, String> {
    use crate::people::policy::{PolicyRequest, MAX_WINDOWS};
    let date = |k: &str, what: &str| -> Result<Option<String>, String> {
        let v = form.get(k).unwrap_or("").trim();
        if v.chars().count() > MAX_DATE {
            return Err(format!("{what}: at most {MAX_DATE} characters"));
        }
        Ok((!v.is_empty()).then(|| v.to_owned()))
    };
    let mut windows = Vec::new();
    for line in form.get("windows").unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.chars().count() > MAX_WINDOW {
            return Err(format!("a window is at most {MAX_WINDOW} characters"));
        }
        if windows.len() == MAX_WINDOWS {
            return Err(format!("at most {MAX_WINDOWS} windows"));
        }
        windows.push(line.to_owned());
    }
    let factors = match form.get("factors").unwrap_or("none") {
        f @ ("none" | "card_and_face" | "face_and_pin") => Some(f.to_owned()),
        _ => return Err("second factors: none, card_and_face or face_and_pin".into()),
    };
    let request = PolicyRequest {
        enabled: form.get("enabled") == Some("yes"),
        valid_from: date("valid_from", "valid from")?,
        valid_until: date("valid_until", "valid until")?,
        windows,
        factors,
    };
    request.to_policy()?;
    Ok(request)
}

/// The card form: `clear=yes`, or `format` (wiegand26, wiegand34), `facility` and `card` in
/// decimal digits; ranges checked by the library ([`Credential::from_parts`], as the CLI).
///
/// [`Credential::from_parts`]: crate::people::credential::Credential::from_parts
pub fn credential(form: &Form) -> Result<Option<crate::people::credential::Credential>, String> {
    use crate::people::credential::{Credential, Format};
    if form.get("clear") == Some("yes") {
        return Ok(None);
    }
    let format = match form.get("format").unwrap_or("wiegand26") {
        "wiegand26" => Format::Wiegand26,
        "wiegand34" => Format::Wiegand34,
        _ => return Err("the format is wiegand26 or wiegand34".into()),
    };
    let number = |k: &str, what: &str| -> Result<u64, String> {
        let v = form.get(k).unwrap_or("").trim();
        if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the {what} is a number (digits only)"));
        }
        v.parse().map_err(|_| format!("the {what} is a number"))
    };
    let facility = number("facility", "facility code")?;
    let card = number("card", "card number")?;
    Credential::from_parts(format, Some(facility), card, None)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A display name as the console accepts it: 1 to 100 characters, no control characters.
pub fn display_name(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty() && t.chars().count() <= 100 && !t.chars().any(char::is_control)).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_cookies_and_seqs() {
        let f = parse_form(b"a=1&b=x+y%21&c&a=2").unwrap();
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), Some("x y!"));
        assert_eq!(f.get("c"), Some(""));
        assert_eq!(f.all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(parse_form(b"a=%zz"), Err(FormError::Invalid));
        assert_eq!(parse_form(b"a=%ff"), Err(FormError::Invalid));
        assert_eq!(parse_form(b"a=%4"), Err(FormError::Invalid));
        assert_eq!(
            parse_form(&vec![b'a'; MAX_FORM + 1]),
            Err(FormError::TooLarge)
        );
        assert_eq!(
            cookie("x=1; __Host-facegate=abc ; y=2", "__Host-facegate"),
            Some("abc")
        );
        assert_eq!(cookie("x=1", "__Host-facegate"), None);
        assert_eq!(seq("42"), Some(42));
        for bad in [
            "",
            "..",
            "../x",
            "abc",
            "-1",
            "+1",
            "1.0",
            "99999999999999999999999",
        ] {
            assert_eq!(seq(bad), None, "{bad}");
        }
        assert_eq!(seqs("1,2,3", 3), Some(vec![1, 2, 3]));
        assert_eq!(seqs("1,2,3", 2), None);
        assert_eq!(seqs("1,x", 5), None);
    }

    #[test]
    fn the_access_and_card_forms_are_bounded_and_checked() {
        use crate::people::credential::Credential;
        let f = parse_form(
            b"enabled=yes&valid_from=2026-12-01&valid_until=&windows=mon-fri+07%3A00-19%3A00%0D%0A%0D%0Asat+10%3A00-12%3A00&factors=card_and_face",
        )
        .unwrap();
        let r = policy(&f).unwrap();
        assert!(r.enabled);
        assert_eq!(r.valid_from.as_deref(), Some("2026-12-01"));
        assert_eq!(r.valid_until, None);
        assert_eq!(r.windows, ["mon-fri 07:00-19:00", "sat 10:00-12:00"]);
        assert_eq!(r.factors.as_deref(), Some("card_and_face"));
        // Unchecked: disabled.
        assert!(
            !policy(&parse_form(b"factors=none").unwrap())
                .unwrap()
                .enabled
        );
        for (body, why) in [
            (&b"windows=mon+9-10"[..], "HH:MM"),
            (b"valid_from=2026-12-02&valid_until=2026-12-01", "not after"),
            (b"factors=face", "second factors"),
            (b"valid_from=soon", "not a date"),
        ] {
            let e = policy(&parse_form(body).unwrap()).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let many = format!("windows={}", "daily+01%3A00-02%3A00%0A".repeat(33));
        assert!(policy(&parse_form(many.as_bytes()).unwrap())
            .unwrap_err()
            .contains("at most"));
        let long = format!("valid_from={}", "9".repeat(MAX_DATE + 1));
        assert!(policy(&parse_form(long.as_bytes()).unwrap()).is_err());

        let c = |b: &[u8]| credential(&parse_form(b).unwrap());
        assert_eq!(
            c(b"format=wiegand26&facility=18&card=4660").unwrap(),
            Some(Credential::Wiegand26 {
                facility: 18,
                card: 4660
            })
        );
        assert_eq!(c(b"clear=yes&card=x").unwrap(), None);
        assert!(c(b"facility=256&card=1")
            .unwrap_err()
            .contains("out of range"));
        assert!(c(b"facility=1&card=-1").unwrap_err().contains("digits"));
        assert!(c(b"facility=1").unwrap_err().contains("card number"));
        assert!(c(b"format=raw&facility=1&card=1").is_err());
        assert!(c(b"facility=1&card=99999999999").is_err());
    }

    #[test]
    fn csv_cells_are_not_formulas() {
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("+x,y"), "\"'+x,y\"");
        assert_eq!(csv_cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_cell("a,\"b"), "\"a,\"\"b\"");
        assert_eq!(csv_cell("ada"), "ada");
    }
}

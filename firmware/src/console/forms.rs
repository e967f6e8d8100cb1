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

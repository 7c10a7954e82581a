//! Type errors in the user's terms: the parsers' `invalid u32` / `expected f64` /
//! `expected a sequence` become "must be a whole number from 1 to 50, not `abc`", with the
//! allowed range taken from the key's own validation rule (so a range is written once, in the
//! check), found by validating probe values.

/// The kind of value a key takes, read off a parser's message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    /// An integer; `signed` when it may be negative; `max` is the type's largest value.
    Whole {
        /// Negative values allowed.
        signed: bool,
        /// The type's largest value.
        max: u64,
    },
    /// A real number.
    Number,
    /// `true` or `false`.
    Bool,
    /// A string.
    Text,
    /// A YAML list.
    List,
    /// A mapping (a section).
    Mapping,
}

/// The kind a serde or serde-saphyr message says was expected: serde_json writes
/// `invalid type: string "abc", expected u32`, serde-saphyr `invalid u32` or `expected sequence
/// start`. `None` for other messages (unknown variants, syntax errors).
pub(crate) fn expected_kind(msg: &str) -> Option<Kind> {
    // serde-saphyr adds a source excerpt after the first line.
    let msg = msg.lines().next().unwrap_or("");
    let what = match msg.rsplit_once("expected ") {
        Some((_, w)) => w,
        None => msg.rsplit_once("invalid ")?.1,
    };
    let word = what
        .trim_start_matches("a ")
        .trim_start_matches("an ")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    let whole = |signed: bool, max: u64| Some(Kind::Whole { signed, max });
    match word {
        "u8" => whole(false, u64::from(u8::MAX)),
        "u16" => whole(false, u64::from(u16::MAX)),
        "u32" => whole(false, u64::from(u32::MAX)),
        "u64" | "usize" => whole(false, u64::MAX),
        "i8" | "i16" | "i32" => whole(true, i32::MAX as u64),
        "i64" | "isize" => whole(true, i64::MAX as u64),
        "f32" | "f64" | "floating" => Some(Kind::Number),
        "boolean" | "bool" => Some(Kind::Bool),
        "string" | "char" => Some(Kind::Text),
        "sequence" => Some(Kind::List),
        "map" | "mapping" | "struct" => Some(Kind::Mapping),
        _ => None,
    }
}

/// Values to validate, to learn a kind's allowed range: the edges a range check refuses.
pub(crate) fn probes(kind: Kind) -> Vec<serde_json::Value> {
    match kind {
        Kind::Whole { signed, max } => {
            let mut v = vec![0.into(), max.into()];
            if signed {
                v.push((-(max as i64)).into());
            }
            v
        }
        Kind::Number => [0.0, -1.0, 1e15, -1e15]
            .map(serde_json::Value::from)
            .to_vec(),
        _ => Vec::new(),
    }
}

/// The allowed range in a range check's message (`... out of range: allowed 1..=50`).
pub(crate) fn allowed_in(msg: &str) -> Option<String> {
    msg.split_once("allowed ")
        .map(|(_, a)| a.trim().to_string())
}

/// A range check's `allowed` text in words: `1..=50` -> `from 1 to 50`, `1.. (or empty for all
/// users)` -> `of at least 1 (or empty for all users)`, `(0, 1]` -> `in (0, 1]`.
fn range_words(allowed: &str) -> String {
    let is_num = |s: &str| !s.is_empty() && s.parse::<f64>().is_ok();
    let (range, rest) = match allowed.split_once(' ') {
        Some((r, rest)) if r.contains("..") => (r, format!(" {rest}")),
        _ => (allowed, String::new()),
    };
    if let Some((a, b)) = range.split_once("..=") {
        if is_num(a) && is_num(b) {
            return format!("from {a} to {b}{rest}");
        }
        if a.is_empty() && is_num(b) {
            return format!("of at most {b}{rest}");
        }
    }
    if let Some((a, b)) = range.split_once("..") {
        if is_num(a) && b.is_empty() {
            return format!("of at least {a}{rest}");
        }
        if is_num(a) && !b.is_empty() {
            return format!("from {a} to below {b}{rest}");
        }
    }
    if let Some(a) = allowed.strip_prefix(">= ") {
        return format!("of at least {a}");
    }
    format!("in {allowed}")
}

/// What a value must be: `a whole number from 1 to 50`, `true or false`, ...; `allowed` is the
/// key's range check's text, when a probe found one.
pub(crate) fn describe(kind: Kind, allowed: Option<&str>) -> String {
    let range = allowed.map(|a| format!(" {}", range_words(a)));
    match kind {
        Kind::Whole { signed, .. } => match range {
            Some(r) => format!("a whole number{r}"),
            None if signed => "a whole number".into(),
            None => "a whole number (0 or more)".into(),
        },
        Kind::Number => format!("a number{}", range.unwrap_or_default()),
        Kind::Bool => "true or false".into(),
        Kind::Text => "text".into(),
        Kind::List => "a list, e.g. [a, b]".into(),
        Kind::Mapping => "a section (`key: value` lines indented under it)".into(),
    }
}

/// `value` as the user wrote it, for "not `abc`".
pub(crate) fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "empty".into(),
        v => v.to_string(),
    }
}

/// The message for a value of the wrong kind, or `None` when `parser_msg` is no type error.
/// `probe` validates one probe value for the key and returns the range check's message for it.
pub(crate) fn wrong_kind(
    parser_msg: &str,
    found: Option<&serde_json::Value>,
    probe: impl Fn(serde_json::Value) -> Option<String>,
) -> Option<String> {
    let kind = expected_kind(parser_msg)?;
    let allowed = probes(kind)
        .into_iter()
        .find_map(|p| probe(p).as_deref().and_then(allowed_in));
    let what = describe(kind, allowed.as_deref());
    Some(match found {
        Some(v) => format!("must be {what}, not `{}`", shown(v)),
        None => format!("must be {what}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_both_parsers() {
        let u32k = Some(Kind::Whole {
            signed: false,
            max: 4_294_967_295,
        });
        assert_eq!(expected_kind("line 2 column 8: invalid u32"), u32k);
        assert_eq!(
            expected_kind("invalid type: string \"abc\", expected u32"),
            u32k
        );
        assert_eq!(
            expected_kind("invalid value: integer `-1`, expected u64"),
            Some(Kind::Whole {
                signed: false,
                max: u64::MAX
            })
        );
        assert_eq!(expected_kind("invalid floating point"), Some(Kind::Number));
        assert_eq!(
            expected_kind("invalid type: string \"x\", expected f64"),
            Some(Kind::Number)
        );
        assert_eq!(expected_kind("invalid boolean"), Some(Kind::Bool));
        assert_eq!(expected_kind("expected sequence start"), Some(Kind::List));
        assert_eq!(
            expected_kind("invalid type: string \"x\", expected a sequence"),
            Some(Kind::List)
        );
        assert_eq!(
            expected_kind("unknown variant `x`, expected one of `a`, `b`"),
            None
        );
    }

    #[test]
    fn ranges_in_words() {
        assert_eq!(range_words("1..=50"), "from 1 to 50");
        assert_eq!(range_words("0.01..=1"), "from 0.01 to 1");
        assert_eq!(
            range_words("1.. (or empty for all users)"),
            "of at least 1 (or empty for all users)"
        );
        assert_eq!(
            range_words("0..page_size (5)"),
            "from 0 to below page_size (5)"
        );
        assert_eq!(range_words(">= 0"), "of at least 0");
        assert_eq!(range_words("(0, 1]"), "in (0, 1]");
    }

    #[test]
    fn message_with_probed_range() {
        // A check that refuses 0 with "allowed 1..=50" (as `page_size`'s does).
        let probe = |v: serde_json::Value| {
            (v == serde_json::json!(0)).then(|| "0 is out of range: allowed 1..=50".to_string())
        };
        assert_eq!(
            wrong_kind(
                "invalid type: string \"abc\", expected u32",
                Some(&"abc".into()),
                probe
            )
            .unwrap(),
            "must be a whole number from 1 to 50, not `abc`"
        );
        // No range check: the type's own bound.
        assert_eq!(
            wrong_kind("invalid u64", Some(&(-1.5).into()), |_| None).unwrap(),
            "must be a whole number (0 or more), not `-1.5`"
        );
        assert_eq!(
            wrong_kind("invalid boolean", Some(&"maybe".into()), |_| None).unwrap(),
            "must be true or false, not `maybe`"
        );
    }
}

//! Range and cross-field checks of the core configuration, and the helpers that turn parser
//! messages into errors naming the key and its line.

use super::{redact_url, BackendKind, RecModel, SimConfig, TextSource, REDACTED};

/// `Ok` when `value` lies in `range`, else `Err((key, "<value> is out of range: allowed
/// <allowed>"))`, the message every settings check gives.
///
/// # Errors
/// `value` outside `range`.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    range: impl std::ops::RangeBounds<T>,
    allowed: &str,
) -> Result<(), (String, String)> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{value} is out of range: allowed {allowed}"),
        ))
    }
}

impl SimConfig {
    /// Checks ranges and cross-field rules. Returns `(key, message)` for the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, msg: String) -> Result<(), (String, String)> {
            Err((key.to_string(), msg))
        }
        check_range("round", self.round, 1..=1_000_000, "1..=1000000")?;
        if let Some(0) = self.agent_num {
            return bad(
                "agent_num",
                "0 is out of range: allowed 1.. (or empty for all users)".into(),
            );
        }
        check_range("temperature", self.temperature, 0.0..=2.0, "0..=2")?;
        check_range("max_token", self.max_token, 1..=100_000, "1..=100000")?;
        // RecAgent's README example asks for 100.
        check_range("max_retries", self.max_retries, 0..=100, "0..=100")?;
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return bad(
                "lr",
                format!("{} is out of range: allowed (0, 10)", self.lr),
            );
        }
        check_range("history_size", self.history_size, 1..=1000, "1..=1000")?;
        if self.interactions_parquet && !crate::io::parquet::AVAILABLE {
            return bad(
                "interactions_parquet",
                "this recagent was built without the `parquet` cargo feature: rebuild with it (it is on by default) or set interactions_parquet: false".into(),
            );
        }
        if let Some(start) = self.start_datetime() {
            let clock = crate::clock::SimClock::new(start, self.interval);
            if clock.checked_round_start(self.round).is_none() {
                return bad(
                    "interval",
                    format!(
                        "{} × {} rounds from {} runs past the year 9999: use a shorter interval or fewer rounds",
                        self.interval, self.round, self.start_time
                    ),
                );
            }
        }
        if self.start_datetime().is_none() {
            return bad(
                "start_time",
                format!(
                    "{:?} is not a date-time: expected YYYY-mm-dd HH:MM:SS",
                    self.start_time
                ),
            );
        }
        for (key, v) in [
            ("agent_memory", &self.agent_memory),
            ("recagent_memory", &self.recagent_memory),
        ] {
            if v != "recagent" {
                return bad(key, format!("{v:?} is not supported: allowed \"recagent\""));
            }
        }
        if self.play_role {
            return bad(
                "play_role",
                "the human role agent is not available in this version: allowed false".into(),
            );
        }
        if self
            .simulator_restore_file_name
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return bad(
                "simulator_restore_file_name",
                "restoring RecAgent pickles is not supported: leave it empty".into(),
            );
        }
        check_range("embedding_size", self.embedding_size, 1..=4096, "1..=4096")?;
        check_range("batch_size", self.batch_size, 1..=1_000_000, "1..=1000000")?;
        check_range("epoch_num", self.epoch_num, 0..=100_000, "0..=100000")?;
        if self.rec_model == RecModel::External
            && !self
                .rec_external_url
                .as_deref()
                .is_some_and(|u| u.starts_with("http://"))
        {
            return bad(
                "rec_external_url",
                format!(
                    "{:?} is not usable with rec_model External: allowed an http:// URL",
                    self.rec_external_url.as_deref().unwrap_or("")
                ),
            );
        }
        let asks_servers = self.backend == BackendKind::Llm
            || (self.backend == BackendKind::Hybrid
                && self.hybrid.text_source == TextSource::Llm
                && self.hybrid.text_share > 0.0);
        if asks_servers && self.api_bases.iter().all(|b| b.trim().is_empty()) {
            return bad(
                "api_bases",
                format!(
                    "backend {} needs at least one base URL, e.g. [http://127.0.0.1:8080/v1]",
                    if self.backend == BackendKind::Llm {
                        "llm"
                    } else {
                        "hybrid"
                    }
                ),
            );
        }
        if asks_servers {
            for b in &self.api_bases {
                if b.contains(&format!("{REDACTED}@")) {
                    return bad(
                        "api_bases",
                        format!(
                            "{b:?}: the credentials of this URL are not kept in checkpoints; give the base again, e.g. --set 'api_bases=[http://user:password@host/v1]'"
                        ),
                    );
                }
                let url = reqwest::Url::parse(b);
                if url
                    .as_ref()
                    .is_ok_and(|u| u.query().is_some() || u.fragment().is_some())
                {
                    return bad(
                        "api_bases",
                        format!(
                            "{:?}: a base URL cannot have a query (?...) or fragment (#...): the request path is appended to it",
                            redact_url(b)
                        ),
                    );
                }
                let ok = (b.starts_with("http://") || b.starts_with("https://"))
                    && url.is_ok_and(|u| u.has_host());
                if !ok {
                    return bad(
                        "api_bases",
                        format!(
                            "{:?} is not a base URL: allowed http:// or https:// URLs, e.g. http://127.0.0.1:8080/v1",
                            redact_url(b)
                        ),
                    );
                }
            }
        }
        let replays = self.backend == BackendKind::Replay
            || (self.backend == BackendKind::Hybrid
                && self.hybrid.text_source == TextSource::Replay);
        if replays
            && self
                .transcript_path
                .as_ref()
                .is_none_or(|p| p.as_os_str().is_empty())
        {
            return bad(
                "transcript_path",
                if self.backend == BackendKind::Replay {
                    "backend replay needs the transcript of a recorded run".into()
                } else {
                    "hybrid.text_source replay needs the transcript of a recorded hybrid run".into()
                },
            );
        }
        self.hybrid
            .validate()
            .map_err(|(k, m)| (format!("hybrid.{k}"), m))?;
        self.message_agents
            .validate()
            .map_err(|(k, m)| (format!("message_agents.{k}"), m))?;
        self.llm_options
            .validate()
            .map_err(|(k, m)| (format!("llm_options.{k}"), m))?;
        self.offline
            .validate()
            .map_err(|(k, m)| (format!("offline.{k}"), m))?;
        self.memory
            .validate()
            .map_err(|(k, m)| (format!("memory.{k}"), m))
    }
}

/// 1-based line of `key:` at the start of a line (any indentation) in `text`.
pub(crate) fn key_line(text: &str, key: &str) -> Option<usize> {
    // For `section.leaf`, look for `leaf:` indented under the `section:` line.
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_key = |l: &str, k: &str| {
        l.trim_start()
            .strip_prefix(k)
            .is_some_and(|r| r.trim_start().starts_with(':'))
    };
    let mut from = 0;
    let mut min_indent = 0;
    let parts: Vec<&str> = key.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        let (i, l) = text
            .lines()
            .enumerate()
            .skip(from)
            .filter(|(_, l)| depth == 0 || indent(l) >= min_indent)
            .find(|(_, l)| is_key(l, part))?;
        if depth + 1 == parts.len() {
            return Some(i + 1);
        }
        from = i + 1;
        min_indent = indent(l) + 1;
    }
    None
}

/// Cleans a YAML parser message: no leading `error:`, the real origin instead of `<input>`, and no
/// advice about parser options.
pub(crate) fn tidy_parse_message(msg: &str, origin: &str) -> String {
    msg.trim_start_matches("error: ")
        .replace("<input>", origin)
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

/// The parser names the line of a bad value but not its key: add the key found on that line.
pub(crate) fn name_key_of_bad_value(msg: &str, text: &str) -> String {
    if msg.contains("unknown field") || msg.contains("duplicate") {
        return msg.to_string();
    }
    let line_no = msg
        .split("line ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let key = line_no
        .and_then(|n| text.lines().nth(n.saturating_sub(1)))
        .and_then(|l| l.split_once(':'))
        .map(|(k, _)| k.trim().trim_start_matches("- ").to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '));
    match key {
        Some(k) => format!("invalid value for `{k}`: {msg}"),
        None => msg.to_string(),
    }
}

/// serde's "unknown field `x`" message carries no position; add the line where `x:` stands.
pub(crate) fn add_line_to_unknown_field(msg: &str, text: &str) -> String {
    if let Some(rest) = msg.split("unknown field `").nth(1) {
        if let Some(key) = rest.split('`').next() {
            if let Some(line) = key_line(text, key) {
                if !msg.contains("line ") {
                    return format!("line {line}: {msg}");
                }
            }
        }
    }
    msg.to_string()
}

/// The dotted key (`offline.temperature`) whose value is on 1-based line `line` of `text`: the
/// key on that line, or for a list item the key above it, under every less indented key above.
pub(crate) fn key_path_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    fn key_of(l: &str) -> Option<&str> {
        let t = l.trim_start().trim_start_matches("- ");
        let (k, _) = t.split_once(':')?;
        let k = k.trim();
        (!k.is_empty() && !k.contains(' ') && !k.starts_with('#')).then_some(k)
    }
    let here = *lines.get(line.checked_sub(1)?)?;
    let mut path = Vec::new();
    let mut level = indent(here) + 1;
    if let Some(k) = key_of(here) {
        path.push(k);
        level = indent(here);
    }
    for l in lines[..line - 1].iter().rev() {
        if level == 0 {
            break;
        }
        if l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) >= level {
            continue;
        }
        if let Some(k) = key_of(l) {
            path.push(k);
            level = indent(l);
        }
    }
    path.reverse();
    (!path.is_empty()).then(|| path.join("."))
}

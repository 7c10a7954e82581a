//! Answer shapes for structured output (`llm_options.structured_output`): the JSON-schema
//! builders the decision kinds use in [`super::Decision::answer_schema`], the GBNF grammar
//! derived from a schema (llama.cpp's grammar format, `grammars/README.md` of llama.cpp), and the
//! one-line description of the shape that is appended to a constrained prompt.
//!
//! Schemas are the subset that OpenAI's strict mode accepts and every server named in the
//! README converts: objects whose properties are all `required` and `additionalProperties:
//! false`, strings (free, `enum` or `const`), integers and numbers (with `minimum`/`maximum`),
//! booleans, arrays (`items`, `minItems`, `maxItems`) and `anyOf`. The grammar writes the
//! properties in `required` order (serde_json's map sorts keys), so the order a model writes is
//! the order the kind listed; whitespace between tokens is at most one space, so a model cannot
//! spend its token budget on blank lines.
//!
//! Pure: no I/O, no network.

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::StructuredOutput;

/// How one request constrains its answer (built by [`super::Batch::constraint`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Constraint {
    /// `json_schema` or `grammar` (never `off`).
    pub mode: StructuredOutput,
    /// Schema name sent with `json_schema` (the decision kind: `[a-z_]{1,64}`).
    pub name: &'static str,
    /// The answer's JSON schema.
    pub schema: Value,
    /// The GBNF grammar (`grammar` mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
}

impl Constraint {
    /// The sentence appended to the prompt so the text asks for the shape the constraint
    /// enforces: the templates ask for tags, which a constrained model cannot write.
    pub fn instruction(&self) -> String {
        format!(
            "Write that answer as one JSON object instead, exactly in this form: {}",
            shape(&self.schema)
        )
    }

    /// The `response_format` field of the request body: OpenAI's form in `json_schema` mode,
    /// `{type: json_object, schema}` in `json_object` mode, else `None`.
    pub fn response_format(&self) -> Option<Value> {
        match self.mode {
            StructuredOutput::JsonSchema => Some(json!({
                "type": "json_schema",
                "json_schema": {"name": self.name, "schema": self.schema, "strict": true}
            })),
            StructuredOutput::JsonObject => {
                Some(json!({"type": "json_object", "schema": self.schema}))
            }
            _ => None,
        }
    }
}

/// A schema that does not fit the supported subset (module docs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JSON schema: {0}")]
pub struct SchemaError(pub String);

/// An object with these properties, in this order, all required, nothing else allowed.
pub fn object(props: &[(&str, Value)]) -> Value {
    let mut p = serde_json::Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    let req: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    json!({"type": "object", "properties": p, "required": req, "additionalProperties": false})
}

/// Free text; `what` describes it in the prompt's shape line (`<one sentence>`).
pub fn text(what: &str) -> Value {
    json!({"type": "string", "description": what})
}

/// One of `values` (deduplicated, in the given order).
pub fn one_of(values: &[&str]) -> Value {
    let mut v: Vec<&str> = Vec::with_capacity(values.len());
    for x in values {
        if !v.contains(x) {
            v.push(x);
        }
    }
    json!({"type": "string", "enum": v})
}

/// `schema` with a `description` (shown in the prompt's shape line).
pub fn described(mut schema: Value, what: &str) -> Value {
    if let Value::Object(m) = &mut schema {
        m.insert("description".into(), Value::from(what));
    }
    schema
}

/// An integer in `min..=max`.
pub fn integer(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// A number in `[min, max]`.
pub fn number(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

/// An array of `min..=max` items of `item`.
pub fn array(item: Value, min: u32, max: u32) -> Value {
    json!({"type": "array", "items": item, "minItems": min, "maxItems": max})
}

/// Integer ranges up to this many values become alternatives of literals in the grammar (an
/// exact range); wider ones any integer of the right sign.
const MAX_LITERAL_RANGE: i64 = 100;

/// The GBNF grammar (root rule `root`) whose sentences are the JSON texts that `schema` accepts,
/// written compactly (module docs).
///
/// # Errors
/// [`SchemaError`] for a schema outside the supported subset (e.g. a `required` name without a
/// property, an unknown `type`, an empty `enum`).
pub fn gbnf(schema: &Value) -> Result<String, SchemaError> {
    let mut g = Gbnf::default();
    let root = g.expr(schema)?;
    let mut out = format!("root ::= {root}\n");
    if g.ws {
        out.push_str("ws ::= \" \"?\n");
    }
    if g.string {
        out.push_str("string ::= \"\\\"\" char* \"\\\"\"\n");
        out.push_str(
            "char ::= [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" hex hex hex hex)\n",
        );
        out.push_str("hex ::= [0-9a-fA-F]\n");
    }
    if g.digits {
        out.push_str("uint ::= \"0\" | [1-9] [0-9]*\n");
    }
    Ok(out)
}

#[derive(Default)]
struct Gbnf {
    ws: bool,
    string: bool,
    digits: bool,
}

/// `s` as a GBNF string literal (quotes, backslashes and control characters escaped).
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value written as a GBNF literal (for `enum` and `const`).
fn json_literal(v: &Value) -> String {
    literal(&v.to_string())
}

fn bound(schema: &Value, key: &str) -> Option<i64> {
    schema.get(key).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
    })
}

impl Gbnf {
    fn expr(&mut self, s: &Value) -> Result<String, SchemaError> {
        let bad = |m: String| Err(SchemaError(m));
        if let Some(v) = s.get("const") {
            return Ok(json_literal(v));
        }
        if let Some(e) = s.get("enum") {
            let vals = e.as_array().filter(|a| !a.is_empty());
            let Some(vals) = vals else {
                return bad("`enum` must be a non-empty array".into());
            };
            let alts: Vec<String> = vals.iter().map(json_literal).collect();
            return Ok(format!("({})", alts.join(" | ")));
        }
        if let Some(any) = s.get("anyOf") {
            let Some(alts) = any.as_array().filter(|a| !a.is_empty()) else {
                return bad("`anyOf` must be a non-empty array".into());
            };
            let alts = alts
                .iter()
                .map(|a| self.expr(a))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(format!("({})", alts.join(" | ")));
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => self.object(s),
            Some("string") => {
                self.string = true;
                Ok("string".into())
            }
            Some("boolean") => Ok("(\"true\" | \"false\")".into()),
            Some("integer") => {
                let (lo, hi) = (bound(s, "minimum"), bound(s, "maximum"));
                match (lo, hi) {
                    (Some(lo), Some(hi)) if lo > hi => bad(format!("empty range {lo}..={hi}")),
                    (Some(lo), Some(hi)) if hi - lo < MAX_LITERAL_RANGE => {
                        let alts: Vec<String> =
                            (lo..=hi).map(|i| literal(&i.to_string())).collect();
                        Ok(format!("({})", alts.join(" | ")))
                    }
                    _ => {
                        self.digits = true;
                        Ok(if lo.is_some_and(|l| l >= 0) {
                            "uint".into()
                        } else {
                            "(\"-\"? uint)".into()
                        })
                    }
                }
            }
            Some("number") => {
                self.digits = true;
                let sign = if s
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .is_some_and(|m| m >= 0.0)
                {
                    ""
                } else {
                    "\"-\"? "
                };
                Ok(format!("({sign}uint (\".\" [0-9]+)?)"))
            }
            Some("array") => {
                let item = match s.get("items") {
                    Some(i) => self.expr(i)?,
                    None => return bad("an array needs `items`".into()),
                };
                self.ws = true;
                let min = bound(s, "minItems").unwrap_or(0).max(0) as usize;
                let max = bound(s, "maxItems").map(|m| m.max(0) as usize);
                if max.is_some_and(|m| m < min) {
                    return bad("`maxItems` below `minItems`".into());
                }
                let sep = format!("ws \",\" ws {item}");
                // The first `min` items are required; then either up to `max` more, each
                // optional after the one before, or any number more.
                let mut body = String::new();
                let mut tail = match max {
                    Some(m) => {
                        let extra = m.saturating_sub(min.max(1));
                        let mut t = String::new();
                        for _ in 0..extra {
                            t = format!("({sep} {t})?");
                        }
                        t
                    }
                    None => format!("({sep})*"),
                };
                if max == Some(0) {
                    return Ok("(\"[\" ws \"]\")".into());
                }
                if min == 0 {
                    body.push_str(&format!("({item} {tail})?"));
                    tail.clear();
                } else {
                    body.push_str(&item);
                    for _ in 1..min {
                        body.push(' ');
                        body.push_str(&sep);
                    }
                }
                Ok(format!("(\"[\" ws {body} {tail} ws \"]\")"))
            }
            Some(t) => bad(format!("type `{t}` is not supported")),
            None => bad("a schema needs `type`, `enum`, `const` or `anyOf`".into()),
        }
    }

    fn object(&mut self, s: &Value) -> Result<String, SchemaError> {
        self.ws = true;
        let props = s.get("properties").and_then(Value::as_object);
        let names: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut parts = Vec::with_capacity(names.len());
        for n in names {
            let Some(p) = props.and_then(|p| p.get(n)) else {
                return Err(SchemaError(format!("required `{n}` has no property")));
            };
            let v = self.expr(p)?;
            parts.push(format!(
                "{} ws \":\" ws {v}",
                literal(&Value::from(n).to_string())
            ));
        }
        Ok(format!(
            "(\"{{\" ws {} ws \"}}\")",
            parts.join(" ws \",\" ws ")
        ))
    }
}

/// A one-line description of the JSON `schema` accepts, for the prompt:
/// `{"action": "BUY" | "NEXT", "index": <integer 0 to 5>, "query": "<movie name>"}`.
pub fn shape(schema: &Value) -> String {
    if let Some(v) = schema.get("const") {
        return v.to_string();
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(a) = schema.get("anyOf").and_then(Value::as_array) {
        return a.iter().map(shape).collect::<Vec<_>>().join(" or ");
    }
    let what = schema.get("description").and_then(Value::as_str);
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let props = schema.get("properties").and_then(Value::as_object);
            let names = schema
                .get("required")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let parts: Vec<String> = names
                .iter()
                .filter_map(Value::as_str)
                .map(|n| {
                    let v = props.and_then(|p| p.get(n)).map_or("…".into(), shape);
                    format!("{}: {v}", Value::from(n))
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Some("string") => format!("\"<{}>\"", what.unwrap_or("text")),
        Some("integer") => {
            let what = what.map_or(String::new(), |w| format!("{w}: "));
            match (bound(schema, "minimum"), bound(schema, "maximum")) {
                (Some(lo), Some(hi)) => format!("<{what}integer {lo} to {hi}>"),
                _ => format!("<{what}integer>"),
            }
        }
        Some("number") => match (
            schema.get("minimum").and_then(Value::as_f64),
            schema.get("maximum").and_then(Value::as_f64),
        ) {
            (Some(lo), Some(hi)) => format!("<number {lo} to {hi}>"),
            _ => "<number>".into(),
        },
        Some("boolean") => "true | false".into(),
        Some("array") => {
            let item = schema.get("items").map_or("…".into(), shape);
            format!("[{item}, ...]")
        }
        _ => "<value>".into(),
    }
}

/// Whether `value` is an instance of `schema` (the supported subset; `description` ignored).
/// For tests of the kinds' schemas and of answers that claim to conform.
///
/// # Errors
/// The first violation, with its JSON path (`$.dialogue[1].speaker: ...`).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "$")
}

fn check(s: &Value, v: &Value, at: &str) -> Result<(), String> {
    let no = |m: String| Err(format!("{at}: {m}"));
    if let Some(c) = s.get("const") {
        return if c == v {
            Ok(())
        } else {
            no(format!("expected {c}"))
        };
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return if e.contains(v) {
            Ok(())
        } else {
            no(format!("{v} is not one of {}", Value::from(e.clone())))
        };
    }
    if let Some(a) = s.get("anyOf").and_then(Value::as_array) {
        return if a.iter().any(|x| check(x, v, at).is_ok()) {
            Ok(())
        } else {
            no("matches no alternative of `anyOf`".into())
        };
    }
    let in_range = |x: f64| {
        let lo = s.get("minimum").and_then(Value::as_f64);
        let hi = s.get("maximum").and_then(Value::as_f64);
        lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x <= h)
    };
    match (s.get("type").and_then(Value::as_str), v) {
        (Some("object"), Value::Object(m)) => {
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !m.contains_key(r) {
                    return no(format!("missing `{r}`"));
                }
            }
            for (k, x) in m {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => check(ps, x, &format!("{at}.{k}"))?,
                    None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return no(format!("unexpected `{k}`"))
                    }
                    None => {}
                }
            }
            Ok(())
        }
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => Ok(()),
        (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {
            if n.as_f64().is_some_and(in_range) {
                Ok(())
            } else {
                no(format!("{n} is out of range"))
            }
        }
        (Some("number"), Value::Number(n)) => {
            if n.as_f64().is_some_and(in_range) {
                Ok(())
            } else {
                no(format!("{n} is out of range"))
            }
        }
        (Some("array"), Value::Array(a)) => {
            let n = a.len() as i64;
            if bound(s, "minItems").is_some_and(|m| n < m)
                || bound(s, "maxItems").is_some_and(|m| n > m)
            {
                return no(format!("{n} items is out of range"));
            }
            let item = s.get("items").unwrap_or(&Value::Null);
            for (i, x) in a.iter().enumerate() {
                check(item, x, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (t, v) => no(format!("{v} is not of type {}", t.unwrap_or("?"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_grammar_lists_properties_in_order_with_exact_ranges() {
        let s = object(&[
            ("action", one_of(&["BUY", "NEXT", "BUY"])),
            ("index", integer(0, 3)),
            ("query", text("movie name")),
        ]);
        let g = gbnf(&s).unwrap();
        // By hand: `{`, "action" enum of the two distinct tags, "index" one of 0..=3, "query"
        // a string; one optional space between tokens.
        let root = "root ::= (\"{\" ws \"\\\"action\\\"\" ws \":\" ws (\"\\\"BUY\\\"\" | \"\\\"NEXT\\\"\") ws \",\" ws \"\\\"index\\\"\" ws \":\" ws (\"0\" | \"1\" | \"2\" | \"3\") ws \",\" ws \"\\\"query\\\"\" ws \":\" ws string ws \"}\")\n";
        assert!(g.starts_with(root), "{g}");
        assert!(g.contains("ws ::= \" \"?\n"));
        assert!(g.contains("string ::= "));
        assert!(!g.contains("uint ::="), "no open integer used");
        assert_eq!(
            shape(&s),
            "{\"action\": \"BUY\" | \"NEXT\", \"index\": <integer 0 to 3>, \"query\": \"<movie name>\"}"
        );
    }

    #[test]
    fn arrays_bound_their_items_and_wide_ranges_are_any_integer() {
        let g = gbnf(&array(integer(0, 1000), 1, 3)).unwrap();
        // One required item, then at most two more, each optional after the previous one.
        assert!(
            g.starts_with(
                "root ::= (\"[\" ws uint (ws \",\" ws uint (ws \",\" ws uint )?)? ws \"]\")"
            ),
            "{g}"
        );
        let g = gbnf(&array(text("x"), 0, 0)).unwrap();
        assert!(g.starts_with("root ::= (\"[\" ws \"]\")"), "{g}");
        assert!(gbnf(&json!({"type": "object", "required": ["a"]})).is_err());
        assert!(gbnf(&json!({"type": "null"})).is_err());
        assert!(gbnf(&json!({"enum": []})).is_err());
        assert!(gbnf(&integer(3, 1)).is_err());
    }

    #[test]
    fn literals_escape_quotes_backslashes_and_controls() {
        assert_eq!(literal("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
        // An enum value is written as its JSON text: quotes inside a name are JSON-escaped, and
        // that text GBNF-escaped.
        assert_eq!(
            json_literal(&Value::from("O\"Neil")),
            "\"\\\"O\\\\\\\"Neil\\\"\""
        );
    }

    #[test]
    fn json_schema_mode_sends_the_openai_form() {
        let c = Constraint {
            mode: StructuredOutput::JsonSchema,
            name: "top",
            schema: object(&[("action", one_of(&["A"]))]),
            grammar: None,
        };
        let rf = c.response_format().unwrap();
        assert_eq!(rf["type"], "json_schema");
        assert_eq!(rf["json_schema"]["name"], "top");
        assert_eq!(rf["json_schema"]["strict"], true);
        assert_eq!(rf["json_schema"]["schema"]["required"], json!(["action"]));
        let g = Constraint {
            mode: StructuredOutput::Grammar,
            ..c
        };
        assert_eq!(g.response_format(), None);
        let o = Constraint {
            mode: StructuredOutput::JsonObject,
            ..g.clone()
        };
        let rf = o.response_format().unwrap();
        assert_eq!(rf["type"], "json_object");
        assert_eq!(rf["schema"], o.schema);
        assert_eq!(
            g.instruction(),
            "Write that answer as one JSON object instead, exactly in this form: {\"action\": \"A\"}"
        );
    }
}

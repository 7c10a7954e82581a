//! Structured output (`llm_options.structured_output`) and failed calls' endpoints, against the
//! in-process mock server: what each request body carries in each mode, that schema-conforming
//! answers parse for every kind the simulation asks, that the setting is part of the replay
//! key, and that a failed call names its endpoint (redacted) in the transcript.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recagent::behaviour::{BehaviourBackend, Context, DecisionBatch};
use recagent::config::{BackendKind, SimConfig, StructuredOutput};
use recagent::decision::schema::validate;
use recagent::decision::top::{Top, TopAction};
use recagent::decision::{Decision, DecisionKinds};
use recagent::llm::LlmBackend;
use serde_json::{json, Value};

use crate::common::{demo_config, run};
use crate::llm_mock::{first_prompt, sensible_answer, Mock, Step};

const SECRET: &str = "sk-test-SECRET-structured";

/// A JSON instance of `s` (the schema subset of `recagent::decision::schema`): the first `enum`
/// value, an integer's maximum (so `BUY` names the last movie on the page, a valid one), the
/// smallest array, one sentence for every string.
fn instance(s: &Value) -> Value {
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e[0].clone();
    }
    if let Some(a) = s.get("anyOf").and_then(Value::as_array) {
        return instance(&a[0]);
    }
    match s["type"].as_str() {
        Some("object") => {
            let mut m = serde_json::Map::new();
            for k in s["required"].as_array().unwrap() {
                let k = k.as_str().unwrap();
                m.insert(k.into(), instance(&s["properties"][k]));
            }
            Value::Object(m)
        }
        Some("integer") => s
            .get("maximum")
            .or_else(|| s.get("minimum"))
            .cloned()
            .unwrap_or(json!(1)),
        Some("number") => s.get("minimum").cloned().unwrap_or(json!(1.0)),
        Some("boolean") => json!(false),
        Some("array") => {
            let n = s["minItems"].as_u64().unwrap_or(1).max(1);
            Value::Array((0..n).map(|_| instance(&s["items"])).collect())
        }
        _ => json!("They talk about movies they like."),
    }
}

fn e2e(base: &str, mode: StructuredOutput, agents: u32, rounds: u32) -> SimConfig {
    let mut c = demo_config();
    c.backend = BackendKind::Llm;
    c.api_bases = vec![base.to_string()];
    c.api_keys = vec![SECRET.into()];
    c.agent_num = Some(agents);
    c.round = rounds;
    c.llm_options.backoff_base_ms = 1;
    c.llm_options.structured_output = mode;
    c
}

/// Every body the mock received.
fn bodies(mock: &Mock) -> Vec<Value> {
    mock.seen
        .lock()
        .unwrap()
        .iter()
        .map(|(b, _)| b.clone())
        .collect()
}

#[test]
fn json_schema_mode_sends_each_kinds_schema_and_conforming_answers_parse_at_first() {
    // The mock answers every request with an instance of the schema the request carries, and
    // records the schema names it saw and any instance that failed to validate.
    let bad: Arc<Mutex<Vec<String>>> = Arc::default();
    let bad2 = bad.clone();
    let mock = Mock::start(move |b, _| {
        let rf = &b["response_format"];
        let schema = &rf["json_schema"]["schema"];
        let answer = instance(schema);
        if let Err(e) = validate(schema, &answer) {
            bad2.lock().unwrap().push(e);
        }
        Step::Answer(answer.to_string())
    });
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        e2e(&mock.base, StructuredOutput::JsonSchema, 10, 3),
        dir.path(),
    );
    assert!(bad.lock().unwrap().is_empty(), "{:?}", bad.lock().unwrap());
    let kinds: BTreeSet<String> = DecisionKinds::builtin()
        .iter()
        .map(|k| k.kind.to_string())
        .collect();
    let mut seen = BTreeSet::new();
    for b in bodies(&mock) {
        let rf = &b["response_format"];
        assert_eq!(rf["type"], "json_schema", "{b}");
        assert_eq!(rf["json_schema"]["strict"], true);
        assert_eq!(rf["json_schema"]["schema"]["type"], "object");
        assert!(
            b.get("grammar").is_none(),
            "json_schema mode sends no grammar"
        );
        // The prompt asks for the JSON form the schema enforces.
        assert!(
            first_prompt(&b).contains("Write that answer as one JSON object instead"),
            "{}",
            first_prompt(&b)
        );
        let name = rf["json_schema"]["name"].as_str().unwrap().to_string();
        assert!(kinds.contains(&name), "{name}");
        seen.insert(name);
    }
    for k in ["top", "page", "feel", "compress", "importance"] {
        assert!(seen.contains(k), "no {k} request in {seen:?}");
    }
    // Every conforming answer parsed at the first try, and nothing fell back.
    let u = &r.manifest["llm_usage"];
    assert!(u["calls"].as_u64().unwrap() > 50, "{u}");
    assert_eq!(u["parse_failures"], 0, "{u}");
    assert_eq!(u["corrective_retries"], 0);
    let fallbacks = r.manifest["behaviour_fallbacks"].as_object().unwrap();
    assert!(fallbacks.values().all(|v| v == 0), "{fallbacks:?}");
    assert!(
        r.stats["watches"] > 0 && r.stats["ratings"] > 0,
        "{:?}",
        r.stats
    );
    // The transcript says how each answer was constrained.
    let t = std::fs::read_to_string(dir.path().join("transcript.jsonl")).unwrap();
    assert!(t
        .lines()
        .all(|l| l.contains("\"structured_output\":\"json_schema\"")));
}

#[test]
fn grammar_mode_sends_the_kinds_grammar_json_object_its_schema_and_off_neither() {
    for mode in [
        StructuredOutput::Grammar,
        StructuredOutput::Off,
        StructuredOutput::JsonObject,
    ] {
        // Tag answers: the tolerant parser still reads them in every mode.
        let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
        let dir = tempfile::tempdir().unwrap();
        let r = run(e2e(&mock.base, mode, 6, 2), dir.path());
        let top_grammar = Top::answer_grammar(&()).unwrap();
        let mut tops = 0;
        for b in bodies(&mock) {
            let p = first_prompt(&b);
            let asks_json = p.contains("Write that answer as one JSON object instead");
            match mode {
                StructuredOutput::Off => {
                    assert!(b.get("grammar").is_none(), "{b}");
                    assert!(b.get("response_format").is_none(), "{b}");
                    assert!(!asks_json, "{p}");
                }
                StructuredOutput::JsonObject => {
                    // llama-cpp-python's form: the schema beside `type: json_object`.
                    assert!(b.get("grammar").is_none(), "{b}");
                    let rf = &b["response_format"];
                    assert_eq!(rf["type"], "json_object", "{b}");
                    assert_eq!(rf["schema"]["type"], "object", "{b}");
                    assert!(asks_json, "{p}");
                    if p.contains("[RECOMMENDER]::") {
                        assert_eq!(rf["schema"], Top::answer_schema(&()).unwrap());
                        tops += 1;
                    }
                }
                _ => {
                    assert!(b.get("response_format").is_none(), "{mode:?}: {b}");
                    let g = b["grammar"].as_str().unwrap();
                    assert!(g.starts_with("root ::= "), "{g}");
                    assert!(asks_json, "{p}");
                    if p.contains("[RECOMMENDER]::") {
                        assert_eq!(g, top_grammar);
                        tops += 1;
                    }
                }
            }
        }
        assert!(r.manifest["llm_usage"]["calls"].as_u64().unwrap() > 20);
        if mode != StructuredOutput::Off {
            assert!(tops >= 6, "{mode:?}: {tops} top-level requests");
        }
        assert_eq!(
            r.manifest["config"]["llm_options"]["structured_output"],
            mode.name()
        );
    }
}

#[test]
fn a_grammar_constrained_answer_parses_and_the_request_carries_its_grammar() {
    let mock = Mock::start(|_, _| Step::Answer("{\"action\": \"SOCIAL\"}".into()));
    let a = crate::llm_bridge::agents(3);
    let mut cfg = SimConfig {
        backend: BackendKind::Llm,
        api_bases: vec![mock.base.clone()],
        api_keys: vec![SECRET.into()],
        ..SimConfig::default()
    };
    cfg.llm_options.structured_output = StructuredOutput::Grammar;
    let be = LlmBackend::http(&cfg, Arc::default(), None, &DecisionKinds::builtin()).unwrap();
    let usage = be.stats();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let reqs = crate::llm_bridge::top_requests(&a);
    let batch = DecisionBatch::new(&reqs);
    be.answer_batch(&ctx, &batch);
    let out: Vec<_> = batch.into_answers().map(|x| x.unwrap().unwrap()).collect();
    assert_eq!(out, vec![TopAction::Social; 3]);
    assert_eq!(usage.snapshot().parse_failures, 0);
    // By hand from the schema {"action": one of the three tags}.
    let want = "root ::= (\"{\" ws \"\\\"action\\\"\" ws \":\" ws (\"\\\"RECOMMENDER\\\"\" | \"\\\"SOCIAL\\\"\" | \"\\\"NOTHING\\\"\") ws \"}\")\nws ::= \" \"?\n";
    for b in bodies(&mock) {
        assert_eq!(b["grammar"], want);
    }
}

#[test]
fn the_structured_output_setting_is_part_of_the_replay_key() {
    let mock = Mock::start(|b, _| {
        let s = &b["response_format"]["json_schema"]["schema"];
        Step::Answer(instance(s).to_string())
    });
    let (rec, same, other) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cfg = e2e(&mock.base, StructuredOutput::JsonSchema, 5, 2);
    let r1 = run(cfg.clone(), rec.path());
    let mut replay = cfg;
    replay.backend = BackendKind::Replay;
    replay.transcript_path = Some(rec.path().join("transcript.jsonl"));
    // Same setting: reproduced byte for byte.
    let r2 = run(replay.clone(), same.path());
    assert_eq!(r1.messages, r2.messages);
    assert_eq!(r2.manifest["llm_usage"]["replay_mismatches"], 0);
    // Another setting renders the same prompts without the JSON instruction and another
    // constraint: every first call is a mismatch, named from the first key.
    replay.llm_options.structured_output = StructuredOutput::Off;
    let r3 = run(replay, other.path());
    let first = r3.manifest["llm_usage"]["first_replay_mismatch"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first.contains("round: 1") && first.contains("prompt hash mismatch"),
        "{first}"
    );
}

#[test]
fn a_failed_call_records_its_endpoint_redacted_in_the_transcript() {
    // Endpoint 0: the mock, reached with URL credentials, answering 500; endpoint 1: a port
    // nobody listens on (connection refused). No retries, so each call fails where it went.
    let mock = Mock::start(|_, _| Step::Status(500, None));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let with_creds = mock.base.replace("http://", "http://alice:pw-SECRET-1@");
    let refused = format!("http://127.0.0.1:{port}/v1");
    let a = crate::llm_bridge::agents(4);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("transcript.jsonl");
    let mut cfg = SimConfig {
        backend: BackendKind::Llm,
        api_bases: vec![with_creds, refused.clone()],
        api_keys: vec![SECRET.into()],
        max_retries: 0,
        ..SimConfig::default()
    };
    cfg.llm_options.parse_retries = 0;
    cfg.llm_options.max_in_flight_per_endpoint = 1;
    let be = LlmBackend::http(&cfg, Arc::default(), Some(&t), &DecisionKinds::builtin()).unwrap();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let reqs = crate::llm_bridge::top_requests(&a);
    be.answer_batch(&ctx, &DecisionBatch::new(&reqs));
    let text = std::fs::read_to_string(&t).unwrap();
    assert!(!text.contains("pw-SECRET-1") && !text.contains("alice") && !text.contains(SECRET));
    let creds_redacted = format!(
        "http://<redacted>@{}",
        mock.base.trim_start_matches("http://")
    );
    let mut by_endpoint = [0, 0];
    for l in text.lines() {
        let e: Value = serde_json::from_str(l).unwrap();
        assert!(e["answer"].is_null(), "{e}");
        let i = e["endpoint"].as_u64().unwrap() as usize;
        by_endpoint[i] += 1;
        let (base, error) = (
            e["endpoint_base"].as_str().unwrap(),
            e["error"].as_str().unwrap(),
        );
        if i == 0 {
            assert_eq!(base, creds_redacted);
            assert!(error.contains("HTTP 500"), "{error}");
        } else {
            assert_eq!(base, refused);
            assert!(error.contains("transport error"), "{error}");
        }
    }
    // Least-loaded choice over two endpoints with one call in flight each: both were used.
    assert!(by_endpoint[0] > 0 && by_endpoint[1] > 0, "{by_endpoint:?}");
}

#[test]
fn a_timed_out_call_records_its_endpoint() {
    let mock =
        Mock::start(|_, _| Step::Delay(Duration::from_secs(3), Box::new(Step::Answer("x".into()))));
    let a = crate::llm_bridge::agents(1);
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("transcript.jsonl");
    let mut cfg = SimConfig {
        backend: BackendKind::Llm,
        api_bases: vec![mock.base.clone()],
        api_keys: vec![SECRET.into()],
        max_retries: 0,
        ..SimConfig::default()
    };
    cfg.llm_options.request_timeout_secs = 0.3;
    let be = LlmBackend::http(&cfg, Arc::default(), Some(&t), &DecisionKinds::builtin()).unwrap();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let reqs = crate::llm_bridge::top_requests(&a);
    be.answer_batch(&ctx, &DecisionBatch::new(&reqs));
    let e: Value = serde_json::from_str(std::fs::read_to_string(&t).unwrap().trim()).unwrap();
    assert_eq!(e["error"], "timed out after 300 ms");
    assert_eq!(e["endpoint"], 0);
    assert_eq!(e["endpoint_base"], mock.base.as_str());
}

#[test]
fn redacted_endpoints_drop_credentials_and_query_strings() {
    use recagent::llm::http::redacted_endpoint;
    assert_eq!(
        redacted_endpoint("https://u:p@host:8443/v1?api-key=k#x"),
        "https://<redacted>@host:8443/v1?<redacted>"
    );
    assert_eq!(
        redacted_endpoint("http://127.0.0.1:8080/v1"),
        "http://127.0.0.1:8080/v1"
    );
    assert_eq!(
        redacted_endpoint("http://h/v1#frag"),
        "http://h/v1?<redacted>"
    );
}

#[test]
fn per_kind_counters_are_objects_keyed_by_every_registered_kind() {
    // Every page decision's call is refused (400, not retried): each page request falls back
    // (leave), so fallbacks.page = requests.page; every other kind gets an answer it parses
    // (importance a score, the rest `sensible_answer`), so 0 fallbacks.
    let mock = Mock::start(|b, _| {
        let p = first_prompt(b);
        if p.contains("[BUY]::") {
            Step::Status(400, None)
        } else if p.starts_with("On a scale of 1 to 10") {
            Step::Answer("7".into())
        } else {
            Step::Answer(sensible_answer(b))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let r = run(e2e(&mock.base, StructuredOutput::Off, 8, 2), dir.path());
    let kinds: Vec<String> = {
        let mut k: Vec<String> = DecisionKinds::builtin()
            .iter()
            .map(|k| k.kind.to_string())
            .collect();
        k.sort();
        k
    };
    for field in ["behaviour_requests", "behaviour_fallbacks"] {
        let m = r.manifest[field].as_object().unwrap();
        // Sorted by name, every built-in kind present (serde_json keeps the written order).
        let keys: Vec<String> = m.keys().cloned().collect();
        assert_eq!(keys, kinds, "{field}");
    }
    let (req, fb) = (
        &r.manifest["behaviour_requests"],
        &r.manifest["behaviour_fallbacks"],
    );
    assert!(req["page"].as_u64().unwrap() > 0, "{req}");
    assert_eq!(fb["page"], req["page"]);
    for k in kinds.iter().filter(|k| *k != "page") {
        assert_eq!(fb[k.as_str()], 0, "{k}");
    }
    // Kinds never asked in this run are labelled with 0 (reflections need more rounds).
    assert_eq!(req["reflect_insights"], 0);
    // The manifest's text lists them in that order too.
    let text = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\": ")).unwrap();
    assert!(at("chat") < at("compress") && at("compress") < at("feel"));
}

#[test]
fn structured_output_is_read_from_yaml_by_name() {
    let parse = |v: &str| {
        SimConfig::from_yaml(
            &format!("llm_options:\n  structured_output: {v}\n"),
            "t.yaml",
            std::path::PathBuf::from("/"),
        )
        .map(|c| c.llm_options.structured_output)
        .map_err(|e| e.to_string())
    };
    assert_eq!(parse("off"), Ok(StructuredOutput::Off));
    assert_eq!(parse("json_schema"), Ok(StructuredOutput::JsonSchema));
    assert_eq!(parse("grammar"), Ok(StructuredOutput::Grammar));
    assert_eq!(parse("json_object"), Ok(StructuredOutput::JsonObject));
    let e = parse("jsonschema").unwrap_err();
    assert!(e.contains("structured_output"), "{e}");
}

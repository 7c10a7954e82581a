//! The web demo's HTTP API (`recagent::demo`), against the real server on an ephemeral port:
//! every endpoint, bad input (unknown agent, oversized body, invalid JSON, invalid profile, a
//! setting that cannot change mid-run), the token guard, a double Start (one loop), the event
//! stream, and role play through the same typed decisions.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use recagent::demo::{start, DemoOptions, DemoServer};
use serde_json::{json, Value};
use tempfile::TempDir;

struct Demo {
    server: DemoServer,
    http: ureq::Agent,
    _dir: TempDir,
}

fn demo_with(rounds: u32, host: &str, token: Option<&str>, timeout: u64) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::demo_config()
        .with_overrides(&[
            ("agent_num".into(), "12".into()),
            ("round".into(), rounds.to_string()),
            ("active_prob".into(), "1".into()),
        ])
        .unwrap();
    let server = start(DemoOptions {
        cfg,
        paths: crate::common::paths(dir.path()),
        overwrite: true,
        host: host.into(),
        port: 0,
        token: token.map(str::to_string),
        roleplay_timeout: Duration::from_secs(timeout),
        roleplay_replay: Vec::new(),
    })
    .unwrap();
    Demo {
        server,
        http: client(),
        _dir: dir,
    }
}

/// An HTTP client that reads 4xx/5xx answers (they are JSON errors) instead of failing.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// `POST url {"action": "step"}` on its own thread (a role-played round waits for answers);
/// the handle gives the status.
fn step_in_background(url: String) -> std::thread::JoinHandle<u16> {
    std::thread::spawn(move || {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        http.post(&url)
            .header("content-type", "application/json")
            .send(r#"{"action":"step"}"#)
            .unwrap()
            .status()
            .as_u16()
    })
}

fn demo(rounds: u32) -> Demo {
    demo_with(rounds, "127.0.0.1", None, 30)
}

impl Demo {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }
    fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self.http.get(self.url(path)).call().unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    fn send(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = match method {
            "PATCH" => self.http.patch(self.url(path)),
            _ => self.http.post(self.url(path)),
        }
        .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send(body).unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, &body.to_string(), None)
    }
    fn control(&self, action: &str) -> (u16, Value) {
        self.post("/api/control", json!({ "action": action }))
    }
    fn wait_for(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, s) = self.get("/api/state");
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn reads_state_agents_graph_stats_and_a_redacted_config() {
    let d = demo(3);
    let (s, st) = d.get("/api/state");
    assert_eq!(s, 200);
    assert_eq!(st["round"], 0);
    assert_eq!(st["rounds"], 3);
    assert_eq!(st["agents"], 12);
    assert_eq!(st["running"], false);
    let (s, agents) = d.get("/api/agents");
    assert_eq!(s, 200);
    let ids: Vec<u64> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 12);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {ids:?}");
    let (s, g) = d.get("/api/graph");
    assert_eq!(s, 200);
    assert_eq!(g["nodes"].as_array().unwrap().len(), 12);
    for e in g["edges"].as_array().unwrap() {
        assert!(e[0].as_u64() < e[1].as_u64(), "edge {e}");
    }
    let (s, c) = d.get(&format!("/api/agents/{}", ids[0]));
    assert_eq!(s, 200);
    assert!(!c["name"].as_str().unwrap().is_empty());
    assert_eq!(c["watched"], json!([]));
    let (s, stats) = d.get("/api/stats");
    assert_eq!(s, 200);
    assert_eq!(stats["agents"], 12);
    assert_eq!(stats["rounds"], json!([]));
    let (s, cfg) = d.get("/api/config");
    assert_eq!(s, 200);
    assert_eq!(cfg["agent_num"], 12);
    // Unknown agents and endpoints.
    assert_eq!(d.get("/api/agents/999999").0, 404);
    assert_eq!(d.get("/api/agents/abc").0, 404);
    assert_eq!(d.get("/api/nothing").0, 404);
    // The page and its assets are embedded.
    let mut r = d.http.get(d.url("/")).call().unwrap();
    assert!(r.body_mut().read_to_string().unwrap().contains("recagent"));
    let mut r = d.http.get(d.url("/assets/app.js")).call().unwrap();
    assert!(r
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("EventSource"));
}

#[test]
fn the_config_never_carries_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::demo_config()
        .with_overrides(&[
            ("agent_num".into(), "5".into()),
            ("api_keys".into(), "[sk-secret-123]".into()),
            (
                "api_bases".into(),
                "[http://user:pw@example.invalid/v1]".into(),
            ),
        ])
        .unwrap();
    let server = start(DemoOptions {
        cfg,
        paths: crate::common::paths(dir.path()),
        overwrite: true,
        host: "127.0.0.1".into(),
        port: 0,
        token: None,
        roleplay_timeout: Duration::from_secs(1),
        roleplay_replay: Vec::new(),
    })
    .unwrap();
    let mut r = ureq::get(&format!("http://{}/api/config", server.addr))
        .call()
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert!(!text.contains("sk-secret-123"), "{text}");
    assert!(!text.contains("pw@"), "{text}");
}

#[test]
fn a_step_then_a_double_start_runs_one_loop_to_the_end() {
    let d = demo(4);
    let (s, r) = d.control("step");
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"]["round"], 1);
    assert!(r["state"]["interactions"].as_u64().unwrap() > 0);
    let (s, a) = d.control("start");
    assert_eq!(s, 200);
    let (s2, b) = d.control("start");
    assert_eq!(s2, 200);
    assert_eq!(a["changed"], true);
    // The second Start while the first runs (or right after it ended) starts no loop.
    assert_eq!(b["state"]["loops"], 1, "{b}");
    let st = d.wait_for("the end", |s| {
        s["finished"] == true && s["running"] == false
    });
    assert_eq!(st["round"], 4);
    assert_eq!(st["loops"], 1);
    assert_eq!(
        d.server
            .shared
            .rounds_run
            .load(std::sync::atomic::Ordering::SeqCst),
        4,
        "one loop ran each round once"
    );
    // Past the end: a Step and a Start are refused with the reason.
    let (s, e) = d.control("step");
    assert_eq!(s, 409);
    assert!(e["error"].as_str().unwrap().contains("Reset"), "{e}");
    assert_eq!(d.control("start").0, 409);
    let (_, stats) = d.get("/api/stats");
    assert_eq!(stats["rounds"].as_array().unwrap().len(), 4);
    // Reset rebuilds the world; twice is the same as once.
    assert_eq!(d.control("reset").0, 200);
    let (s, r) = d.control("reset");
    assert_eq!(s, 200);
    assert_eq!(r["state"]["round"], 0);
    assert_eq!(r["state"]["interactions"], 0);
    let (_, stats) = d.get("/api/stats");
    assert_eq!(stats["rounds"], json!([]));
    // Pause while paused changes nothing but answers.
    assert_eq!(d.control("pause").0, 200);
}

#[test]
fn bad_requests_get_json_errors() {
    let d = demo(3);
    // A wrong method is a JSON error too (first: a refused body may close the connection).
    let (s, e) = d.get("/api/control");
    assert_eq!(s, 405);
    assert!(e["error"].as_str().unwrap().contains("method"), "{e}");
    let (s, e) = d.send("POST", "/api/control", "{not json", None);
    assert_eq!(s, 400);
    assert!(e["error"].is_string());
    let (s, _) = d.post("/api/control", json!({"action": "fly"}));
    assert_eq!(s, 422);
    // An oversized body is read before its 413 is sent, so the client always gets the answer
    // (answering mid-upload let the reset lose it now and then: repeated to make that show).
    let big = format!("{{\"text\": \"{}\"}}", "a".repeat(100_000));
    for _ in 0..20 {
        let (s, e) = d.send("POST", "/api/agents/1/message", &big, None);
        assert_eq!(s, 413);
        assert!(e["error"].as_str().unwrap().contains("larger"), "{e}");
    }
    let (s, _) = d.post("/api/agents/999999/message", json!({"text": "hi"}));
    assert_eq!(s, 404);
    let (s, _) = d.post("/api/agents/999999/interview", json!({"question": "hi?"}));
    assert_eq!(s, 404);
    let (s, e) = d.post("/api/agents/1/message", json!({"text": ""}));
    assert_eq!(s, 422, "{e}");
    let (s, e) = d.send("PATCH", "/api/agents/1/profile", r#"{"age": 500}"#, None);
    assert_eq!(s, 422);
    assert!(e["error"].as_str().unwrap().contains("age"), "{e}");
    let (s, _) = d.send("PATCH", "/api/agents/1/profile", r#"{"height": 3}"#, None);
    assert_eq!(s, 422);
    let (s, _) = d.send(
        "PATCH",
        "/api/agents/999999/profile",
        r#"{"age": 30}"#,
        None,
    );
    assert_eq!(s, 404);
    let (s, e) = d.post("/api/settings", json!({"key": "agent_num", "value": 5}));
    assert_eq!(s, 409);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("cannot change mid-run"),
        "{e}"
    );
    let (s, _) = d.post(
        "/api/settings",
        json!({"key": "page_size", "value": "lots"}),
    );
    assert_eq!(s, 422);
    let (s, _) = d.post("/api/roleplay", json!({"agent": 999999}));
    assert_eq!(s, 404);
    let (s, _) = d.post("/api/roleplay/answer", json!({"id": 7, "answer": "[NEXT]"}));
    assert_eq!(s, 409);
}

#[test]
fn interventions_apply_and_are_logged() {
    let d = demo(3);
    let (s, r) = d.post(
        "/api/agents/1/interview",
        json!({"question": "What do you like to watch?"}),
    );
    assert_eq!(s, 200, "{r}");
    assert!(r["answer"].as_str().unwrap().len() > 10, "{r}");
    let (s, _) = d.post("/api/agents/1/message", json!({"text": "Try a western."}));
    assert_eq!(s, 200);
    let (s, c) = d.send(
        "PATCH",
        "/api/agents/1/profile",
        r#"{"age": 33, "interest": "westerns"}"#,
        None,
    );
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["age"], 33);
    assert_eq!(c["interest"], "westerns");
    let (s, r) = d.post("/api/settings", json!({"key": "page_size", "value": 3}));
    assert_eq!(s, 200, "{r}");
    // The configuration shown follows the live settings.
    assert_eq!(d.get("/api/config").1["page_size"], 3);
    assert_eq!(d.control("step").0, 200);
    let dir = d._dir.path();
    let log = std::fs::read_to_string(dir.join("interventions.jsonl")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["intervention"]["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        ["\"interview\"", "\"message\"", "\"profile\"", "\"setting\""]
    );
    let messages = std::fs::read_to_string(dir.join("messages.jsonl")).unwrap();
    assert!(messages.contains("\"INTERVIEW\""));
    assert!(messages.contains("receives a message: Try a western."));
    let (_, cfg) = d.get("/api/agents/1");
    assert!(
        cfg["memories"].to_string().contains("Try a western"),
        "{cfg}"
    );
}

#[test]
fn a_token_guards_changes_on_other_addresses() {
    let d = demo_with(3, "0.0.0.0", None, 30);
    let token = d.server.token.clone().expect("a token is generated");
    assert_eq!(token.len(), 32);
    assert!(d.server.url().contains(&token));
    // Reads need none; changes do.
    assert_eq!(d.get("/api/state").0, 200);
    let body = json!({"action": "step"}).to_string();
    assert_eq!(d.send("POST", "/api/control", &body, None).0, 401);
    assert_eq!(d.send("POST", "/api/control", &body, Some("wrong")).0, 401);
    assert_eq!(d.send("POST", "/api/control", &body, Some(&token)).0, 200);
    // On a loopback address without a token, none is needed.
    let local = demo(3);
    assert!(local.server.token.is_none());
    assert_eq!(local.control("step").0, 200);
}

#[test]
fn the_stream_says_hello_then_sends_each_round() {
    let d = demo(3);
    let mut sock = std::net::TcpStream::connect(d.server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        sock,
        "GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    let mut stepped = false;
    let end = Instant::now() + Duration::from_secs(60);
    while !got.contains("event: round") {
        assert!(Instant::now() < end, "no round event: {got}");
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        if got.contains("event: hello") && !stepped {
            stepped = true;
            assert_eq!(d.control("step").0, 200);
        }
    }
    assert!(got.contains("text/event-stream"));
    let data = got
        .split("event: round")
        .nth(1)
        .and_then(|r| r.lines().find(|l| l.starts_with("data: ")))
        .unwrap();
    // Only the first chunk may be here: check the start of the delta.
    assert!(data.starts_with("data: {\"state\":{\"round\":1"), "{data}");
    drop(sock);
    // A client that went away costs nothing: the next round still runs.
    assert_eq!(d.control("step").0, 200);
    assert_eq!(d.get("/api/state").1["round"], 2);
}

#[test]
fn role_play_takes_the_persons_answers_through_the_typed_decisions() {
    let d = demo_with(3, "127.0.0.1", None, 30);
    let (s, r) = d.post("/api/roleplay", json!({"agent": 1}));
    assert_eq!(s, 200, "{r}");
    assert_eq!(d.get("/api/state").1["roleplay_agent"], 1);
    let (_, p) = d.get("/api/roleplay/pending");
    assert_eq!(p["agent"], 1);
    assert!(p["pending"].is_null());
    // The round waits for the person: step on another thread.
    let url = d.url("/api/control");
    let stepper = step_in_background(url);
    let pending = |d: &Demo| -> Value {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, p) = d.get("/api/roleplay/pending");
            if !p["pending"].is_null() {
                return p["pending"].clone();
            }
            assert!(Instant::now() < end, "no request came");
            std::thread::sleep(Duration::from_millis(30));
        }
    };
    let top = pending(&d);
    assert_eq!(top["kind"], "top");
    assert_eq!(top["agent"], 1);
    assert!(top["prompt"].as_str().unwrap().contains("[RECOMMENDER]"));
    let id = top["id"].as_u64().unwrap();
    // An answer that does not parse is refused; the request still waits.
    let (s, e) = d.post("/api/roleplay/answer", json!({"id": id, "answer": "dance"}));
    assert_eq!(s, 422, "{e}");
    let (s, _) = d.post(
        "/api/roleplay/answer",
        json!({"id": id, "answer": "[RECOMMENDER]:: enters"}),
    );
    assert_eq!(s, 200);
    // Then the first page: watch its first item.
    let page = pending(&d);
    assert_eq!(page["kind"], "page");
    let choice = page["choices"][0].clone();
    assert_eq!(choice["answer"], "[BUY]:: 1", "{page}");
    let title = choice["label"]
        .as_str()
        .unwrap()
        .trim_start_matches("Watch 1: ")
        .to_string();
    let (s, _) = d.post(
        "/api/roleplay/answer",
        json!({"id": page["id"], "answer": "[BUY]:: 1"}),
    );
    assert_eq!(s, 200);
    // The rating.
    let feel = pending(&d);
    assert_eq!(feel["kind"], "feel");
    let (s, _) = d.post(
        "/api/roleplay/answer",
        json!({"id": feel["id"], "answer": "RATING: 2; FEELING: Not my thing."}),
    );
    assert_eq!(s, 200);
    // Nothing else of this round waits long: release the agent so the round ends.
    let (s, _) = d.post("/api/roleplay", json!({"agent": null}));
    assert_eq!(s, 200);
    assert_eq!(stepper.join().unwrap(), 200);
    let dir = d._dir.path();
    let messages = std::fs::read_to_string(dir.join("messages.jsonl")).unwrap();
    assert!(
        messages.contains(&format!("watches <{title}>")),
        "the person's choice is in the messages: {title}"
    );
    let (_, card) = d.get("/api/agents/1");
    assert_eq!(card["watched"][0]["title"], title);
    assert_eq!(card["watched"][0]["rating"], 2);
    let log = std::fs::read_to_string(dir.join("roleplay.jsonl")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["top", "page", "feel"]);
}

/// A demo server over `dir` with `sets` added to the test configuration, replaying `played`.
fn demo_in(
    dir: &std::path::Path,
    sets: &[(&str, String)],
    played: Vec<recagent::demo::roleplay::Played>,
) -> DemoServer {
    let mut all: Vec<(String, String)> = vec![
        ("agent_num".into(), "12".into()),
        ("round".into(), "3".into()),
        ("active_prob".into(), "1".into()),
    ];
    all.extend(sets.iter().map(|(k, v)| ((*k).to_string(), v.clone())));
    start(DemoOptions {
        cfg: crate::common::demo_config().with_overrides(&all).unwrap(),
        paths: crate::common::paths(dir),
        overwrite: true,
        host: "127.0.0.1".into(),
        port: 0,
        token: None,
        roleplay_timeout: Duration::from_secs(30),
        roleplay_replay: played,
    })
    .unwrap()
}

#[test]
fn a_demo_session_replays_from_its_seed_and_logs_byte_for_byte() {
    // The session: a step, interventions, a round in which a person plays agent 1, a last step.
    let a = tempfile::tempdir().unwrap();
    let d = Demo {
        server: demo_in(a.path(), &[], Vec::new()),
        http: client(),
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(d.control("step").0, 200);
    let (s, r) = d.post(
        "/api/agents/2/interview",
        json!({"question": "Any favourites?"}),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        d.post(
            "/api/agents/3/message",
            json!({"text": "A new western is out."})
        )
        .0,
        200
    );
    assert_eq!(
        d.post("/api/settings", json!({"key": "page_size", "value": 4}))
            .0,
        200
    );
    assert_eq!(d.post("/api/roleplay", json!({"agent": 1})).0, 200);
    let url = d.url("/api/control");
    let stepper = step_in_background(url);
    // Answer what agent 1 is asked (the top choice, then its pages and ratings) until the
    // round no longer waits: the recommender, the first item of each page, 5 stars.
    let end = Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    while !stepper.is_finished() {
        assert!(Instant::now() < end, "the round never ended");
        let (_, p) = d.get("/api/roleplay/pending");
        let p = &p["pending"];
        if p.is_null() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let answer = match p["kind"].as_str().unwrap() {
            "top" => "[RECOMMENDER]:: enters",
            "page" if answered < 4 => "[BUY]:: 1",
            "page" => "[LEAVE]:: leaves",
            "feel" => "RATING: 5; FEELING: Wonderful.",
            _ => {
                // Chats and posts: let the agent's own model decide.
                d.post("/api/roleplay", json!({"agent": null}));
                continue;
            }
        };
        let (s, e) = d.post(
            "/api/roleplay/answer",
            json!({"id": p["id"], "answer": answer}),
        );
        assert_eq!(s, 200, "{e}");
        answered += 1;
    }
    assert_eq!(stepper.join().unwrap(), 200);
    assert!(answered >= 3, "{answered}");
    d.post("/api/roleplay", json!({"agent": null}));
    assert_eq!(d.control("step").0, 200);
    let files = [
        "messages.jsonl",
        "interaction.csv",
        "metrics.csv",
        "interventions.jsonl",
    ];
    let read = |dir: &std::path::Path| -> Vec<String> {
        files
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
            .collect()
    };
    let live = read(a.path());
    assert!(live[0].contains("\"INTERVIEW\"") && live[0].contains("\"MESSAGE\""));
    // Three whole rounds: the metrics header and a row each.
    assert_eq!(live[2].lines().count(), 4, "{}", live[2]);
    let played = recagent::demo::roleplay::read_log(&a.path().join("roleplay.jsonl")).unwrap();
    assert_eq!(played.len(), answered);
    drop(d);

    // The replay: the same configuration and seed, the two logs, three plain steps.
    let b = tempfile::tempdir().unwrap();
    let log = a.path().join("interventions.jsonl").display().to_string();
    let d = Demo {
        server: demo_in(b.path(), &[("interventions.replay", log)], played),
        http: client(),
        _dir: tempfile::tempdir().unwrap(),
    };
    for _ in 0..3 {
        assert_eq!(d.control("step").0, 200);
    }
    let again = read(b.path());
    for (f, (x, y)) in files.iter().zip(live.iter().zip(&again)) {
        assert!(x == y, "{f} differs in the replay:\n{x}\n---\n{y}");
    }
}

//! The LLM bridge against a real HTTP server (the in-process axum mock): ordering, isolation of
//! slow calls, retries, Retry-After, typed failures, fallbacks, record/replay, an end-to-end run,
//! and secrets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recagent::behaviour::{
    AgentView, BackendError, Behaviour, BehaviourBackend, BehaviourStats, Context, DecisionBatch,
    Request, RequestKey,
};
use recagent::catalog::Catalog;
use recagent::clock::{Interval, SimClock};
use recagent::components::{Histories, Memory, Profile, Relationships, Taste};
use recagent::config::{BackendKind, SimConfig};
use recagent::decision::top::{Top, TopAction, ACTIVITY};
use recagent::decision::DecisionKinds;
use recagent::ids::UserId;
use recagent::io::data::ItemRecord;
use recagent::llm::http::{ClientOptions, HttpClient, LlmError, PromptMessage, Protocol};
use recagent::llm::LlmBackend;
use serde_json::Value;

use crate::common::{demo_config, paths, run};
use crate::llm_mock::{first_prompt, sensible_answer, Mock, Step};

const SECRET: &str = "sk-test-SECRET-7f3a9c";

fn opts(max_retries: u32, backoff_base_ms: u64, timeout: f64) -> ClientOptions {
    ClientOptions {
        protocol: Protocol::Chat,
        temperature: 0.0,
        max_tokens: 64,
        seed: Some(1),
        stop: Vec::new(),
        request_timeout: Duration::from_secs_f64(timeout),
        connect_timeout: Duration::from_secs(2),
        max_retries,
        backoff_base: Duration::from_millis(backoff_base_ms),
        backoff_max: Duration::from_secs(20),
        max_in_flight_per_endpoint: 64,
    }
}

fn key(user: u32) -> RequestKey {
    RequestKey {
        round: 1,
        phase: ACTIVITY,
        user: UserId(user),
        step: 0,
    }
}

/// Both transports: hyper's client directly (plain-http endpoints) and reqwest (https and
/// proxied endpoints), forced here against the plain-http mock.
const TRANSPORTS: [bool; 2] = [false, true];

/// Runs one call on a fresh runtime, through reqwest when `via_reqwest`.
fn call_via(
    mock: &Mock,
    o: ClientOptions,
    via_reqwest: bool,
) -> (Result<String, LlmError>, Duration) {
    call_base(&mock.base, o, via_reqwest)
}

fn call_base(
    base: &str,
    o: ClientOptions,
    via_reqwest: bool,
) -> (Result<String, LlmError>, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let c = {
        let _g = rt.enter();
        HttpClient::with_transport(
            &[base.to_string()],
            &[SECRET.into()],
            &[],
            "m",
            o,
            via_reqwest,
        )
        .unwrap()
    };
    let t = Instant::now();
    let r = rt.block_on(c.complete(&key(0), 0, &[PromptMessage::user("hi")]));
    (r.map(|c| c.text), t.elapsed())
}

#[test]
fn retry_after_is_honoured_over_a_long_backoff() {
    for via_reqwest in TRANSPORTS {
        // Two 429s with Retry-After: 0.2 s, then an answer. The backoff base is 10 s, so finishing
        // in well under 10 s shows the header's delay was used; taking >= 0.4 s shows it was waited.
        let mock = Mock::start(|_, n| {
            if n < 2 {
                Step::Status(429, Some("0.2".into()))
            } else {
                Step::Answer("ok".into())
            }
        });
        let (r, took) = call_via(&mock, opts(3, 10_000, 5.0), via_reqwest);
        assert_eq!(r.unwrap(), "ok");
        assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}

#[test]
fn server_errors_are_retried_then_reported_typed() {
    for via_reqwest in TRANSPORTS {
        let mock = Mock::start(|_, n| {
            if n == 0 {
                Step::Status(500, None)
            } else {
                Step::Answer("fine".into())
            }
        });
        assert_eq!(
            call_via(&mock, opts(2, 1, 5.0), via_reqwest).0.unwrap(),
            "fine"
        );
        assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 2);

        // Always 503: max_retries = 1 gives exactly 2 tries and a typed error.
        let mock = Mock::start(|_, _| Step::Status(503, None));
        let err = call_via(&mock, opts(1, 1, 5.0), via_reqwest).0.unwrap_err();
        assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
        match err {
            LlmError::RetriesExhausted { tries, last } => {
                assert_eq!(tries, 2);
                assert!(matches!(*last, LlmError::Status { status: 503, .. }));
            }
            e => panic!("unexpected {e:?}"),
        }
        // 400 is not retried.
        let mock = Mock::start(|_, _| Step::Status(400, None));
        let err = call_via(&mock, opts(3, 1, 5.0), via_reqwest).0.unwrap_err();
        assert!(
            matches!(err, LlmError::Status { status: 400, .. }),
            "{err:?}"
        );
        assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

#[test]
fn broken_responses_give_typed_errors_and_transport_failures_are_retried() {
    for via_reqwest in TRANSPORTS {
        let mock = Mock::start(|_, _| Step::InvalidJson);
        assert!(matches!(
            call_via(&mock, opts(3, 1, 5.0), via_reqwest).0,
            Err(LlmError::InvalidBody(_))
        ));
        let mock = Mock::start(|_, _| Step::EmptyChoices);
        assert_eq!(
            call_via(&mock, opts(3, 1, 5.0), via_reqwest).0,
            Err(LlmError::EmptyChoices)
        );
        // Dropped connection and truncated body: retried, then answered.
        let mock = Mock::start(|_, n| match n {
            0 => Step::Drop,
            1 => Step::Truncated("partial".into()),
            _ => Step::Answer("whole".into()),
        });
        assert_eq!(
            call_via(&mock, opts(3, 1, 5.0), via_reqwest).0.unwrap(),
            "whole"
        );
        assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
        // A server slower than the timeout: a typed timeout after max_retries + 1 tries.
        let mock = Mock::start(|_, _| {
            Step::Delay(
                Duration::from_secs(5),
                Box::new(Step::Answer("late".into())),
            )
        });
        let (r, took) = call_via(&mock, opts(0, 1, 0.3), via_reqwest);
        assert!(matches!(r, Err(LlmError::Timeout(_))), "{r:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
}

/// A runtime for calls and client construction on the test thread.
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether a proxy variable is set (endpoints then may go through reqwest and its proxy).
fn proxy_env() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty()))
}

#[test]
fn the_transport_is_chosen_per_endpoint() {
    let rt = current_thread_runtime();
    let _g = rt.enter();
    let bases = [
        "http://127.0.0.1:9/v1".to_string(),
        "http://user:pw@127.0.0.1:9/v1".into(),
        "https://api.example.com/v1".into(),
        "not a url".into(),
    ];
    let transports = |force| {
        HttpClient::with_transport(&bases, &[], &[], "m", opts(0, 1, 1.0), force)
            .unwrap()
            .endpoints()
            .iter()
            .map(|e| e.transport())
            .collect::<Vec<_>>()
    };
    let plain = if proxy_env() { "reqwest" } else { "direct" };
    assert_eq!(transports(false), [plain, "reqwest", "reqwest", "none"]);
    assert_eq!(transports(true), ["reqwest", "reqwest", "reqwest", "none"]);
}

#[test]
fn both_transports_send_the_key_and_name_a_refused_connection() {
    // A socket bound but not listening: connections to it are refused, and no other test can
    // take its port while it is held.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    for via_reqwest in TRANSPORTS {
        let mock = Mock::start(|body, _| Step::Answer(format!("model {}", body["model"])));
        assert_eq!(
            call_via(&mock, opts(0, 1, 5.0), via_reqwest).0.unwrap(),
            "model \"m\""
        );
        let seen = mock.seen.lock().unwrap();
        assert_eq!(
            seen[0].1.as_deref(),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(seen[0].0["messages"][0]["content"], "hi");

        // Refused: two tries, then the OS's reason.
        let base = format!("http://127.0.0.1:{port}/v1");
        let err = call_base(&base, opts(1, 1, 5.0), via_reqwest)
            .0
            .unwrap_err();
        assert_eq!(err.tries(), 2, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("transport error"), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }
    // Credentials in the URL (reqwest, which sends them as Basic auth) stay out of the error,
    // though it names its causes.
    let base = format!("http://user:{SECRET}@127.0.0.1:{port}/v1");
    let msg = call_base(&base, opts(0, 1, 5.0), false)
        .0
        .unwrap_err()
        .to_string();
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(!msg.contains(SECRET), "{msg}");
    drop(closed);
}

#[test]
fn a_huge_retry_after_is_capped_not_a_panic() {
    for via_reqwest in TRANSPORTS {
        // 1e20 s overflows a Duration; it is capped at backoff_max (0.2 s here).
        let mock = Mock::start(|_, n| match n {
            0 => Step::Status(429, Some("1e20".into())),
            _ => Step::Answer("ok".into()),
        });
        let mut o = opts(2, 1, 5.0);
        o.backoff_max = Duration::from_millis(200);
        let (r, took) = call_via(&mock, o, via_reqwest);
        assert_eq!(r.unwrap(), "ok");
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

#[test]
fn a_response_over_the_size_cap_is_refused_not_read() {
    for via_reqwest in TRANSPORTS {
        let big = "x".repeat(recagent::llm::http::MAX_RESPONSE_BYTES + 1);
        let mock = Mock::start(move |_, _| Step::Answer(big.clone()));
        let r = call_via(&mock, opts(2, 1, 10.0), via_reqwest).0;
        match r {
            Err(LlmError::InvalidBody(m)) => assert!(m.contains("larger than 8 MiB"), "{m}"),
            r => panic!("unexpected {:?}", r.map(|t| t.len())),
        }
        // Not retried: the same server would send the same body.
        assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

#[test]
fn a_retry_goes_to_another_endpoint_than_the_one_that_failed() {
    // Endpoint 0 refuses at once, so it is always the least loaded; with one retry, every call
    // must still be answered by endpoint 1.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = format!(
        "http://127.0.0.1:{}/v1",
        closed.local_addr().unwrap().port()
    );
    let mock = Mock::start(|_, _| Step::Answer("ok".into()));
    let rt = current_thread_runtime();
    let c = {
        let _g = rt.enter();
        HttpClient::new(&[dead, mock.base.clone()], &[], &[], "m", opts(1, 1, 5.0)).unwrap()
    };
    for u in 0..10 {
        let r = rt
            .block_on(c.complete(&key(u), 0, &[PromptMessage::user("hi")]))
            .unwrap();
        assert_eq!((r.text.as_str(), r.endpoint, r.tries), ("ok", 1, 2));
    }
    assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 10);
}

#[test]
fn a_key_a_header_cannot_carry_is_a_setup_error_and_url_credentials_win() {
    let rt = current_thread_runtime();
    let _g = rt.enter();
    let bases = ["http://127.0.0.1:9/v1".to_string()];
    let err = HttpClient::new(&bases, &["sk-abc\r".into()], &[], "m", opts(0, 1, 1.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("API key 1"), "{err}");
    assert!(!err.contains("sk-abc"), "{err}");
    drop(_g);

    // Credentials in the URL go as Basic auth, and the key's Bearer header is not added.
    let mock = Mock::start(|_, _| Step::Answer("ok".into()));
    let base = mock.base.replace("http://", "http://alice:pw@");
    assert_eq!(call_base(&base, opts(0, 1, 5.0), false).0.unwrap(), "ok");
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen[0].1.as_deref(), Some("Basic YWxpY2U6cHc="));
}

#[test]
fn a_redirect_from_a_plain_http_endpoint_says_what_to_configure() {
    if proxy_env() {
        return; // the endpoint would go through reqwest, which follows redirects
    }
    let mock = Mock::start(|_, _| Step::Status(307, None));
    match call_via(&mock, opts(2, 1, 5.0), false).0 {
        Err(LlmError::Status { status: 307, body }) => {
            assert!(body.contains("set api_bases"), "{body}")
        }
        r => panic!("unexpected {r:?}"),
    }
    // Not retried: the answer would not change.
    assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

// ---- backend-level tests with hand-built agents ----

/// Agents `Agent00..` with empty histories, five items and a clock (also used by
/// `llm_structured`).
pub(crate) struct Agents {
    profiles: Vec<Profile>,
    taste: Taste,
    hist: Histories,
    rel: Relationships,
    mem: Memory,
    pub(crate) catalog: Catalog,
    pub(crate) clock: SimClock,
}

pub(crate) fn agents(n: u32) -> Agents {
    let profile = |i: u32| Profile {
        name: Arc::from(format!("Agent{i:02}").as_str()),
        gender: Arc::from("female"),
        age: 30,
        traits: Arc::from("curious"),
        status: Arc::from("engineer"),
        interest: Arc::from("sci-fi"),
        features: Default::default(),
        observations: Arc::from(""),
    };
    let items = (0..5)
        .map(|i| ItemRecord {
            id: i,
            title: format!("Film {i}"),
            genres: vec!["Drama".into()],
            description: "a film".into(),
        })
        .collect();
    Agents {
        profiles: (0..n).map(profile).collect(),
        taste: Taste::default(),
        hist: Histories::default(),
        rel: Relationships::default(),
        mem: Memory::default(),
        catalog: Catalog::new(items).unwrap(),
        clock: SimClock::new(
            chrono::NaiveDateTime::parse_from_str("2023-06-01 08:00:00", "%Y-%m-%d %H:%M:%S")
                .unwrap(),
            Interval::Seconds(3600),
        ),
    }
}

/// `be`'s answers to `reqs`, in order (`Err` for a failed or unanswered request).
fn answer_all(
    be: &dyn BehaviourBackend,
    ctx: &Context<'_>,
    reqs: &[Request<'_, Top>],
) -> Vec<Result<TopAction, BackendError>> {
    let batch = DecisionBatch::new(reqs);
    be.answer_batch(ctx, &batch);
    batch
        .into_answers()
        .map(|a| a.unwrap_or_else(|| Err(BackendError("unanswered".into()))))
        .collect()
}

pub(crate) fn top_requests(a: &Agents) -> Vec<Request<'_, Top>> {
    a.profiles
        .iter()
        .enumerate()
        .map(|(i, p)| Request {
            key: key(i as u32),
            agent: AgentView {
                id: UserId(i as u32),
                profile: p,
                taste: &a.taste,
                histories: &a.hist,
                contacts: &a.rel,
                memory: &a.mem,
            },
            ask: (),
        })
        .collect()
}

fn llm_config(base: &str) -> SimConfig {
    let mut c = SimConfig {
        backend: BackendKind::Llm,
        api_bases: vec![base.to_string()],
        api_keys: vec![SECRET.into()],
        ..SimConfig::default()
    };
    c.llm_options.backoff_base_ms = 1;
    c.llm_options.max_in_flight_per_endpoint = 64;
    c
}

fn agent_number(body: &Value) -> u32 {
    let p = first_prompt(body);
    p.split("You are Agent")
        .nth(1)
        .and_then(|r| r.get(..2))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

#[test]
fn answers_come_back_in_request_order_whatever_the_completion_order() {
    // Agent i answers after (20 - i) * 15 ms, so completions arrive in reverse order; agent i
    // chooses by i % 3. The i-th answer must be agent i's.
    let mock = Mock::start(|b, _| {
        let i = agent_number(b);
        let text = ["[RECOMMENDER]::", "[SOCIAL]::", "[NOTHING]::"][(i % 3) as usize];
        Step::Delay(
            Duration::from_millis(u64::from(20 - i) * 15),
            Box::new(Step::Answer(text.into())),
        )
    });
    // Both runtimes: worker threads, and the current-thread one driven by the phase.
    for workers in [2, 0] {
        let dir = tempfile::tempdir().unwrap();
        let a = agents(20);
        let mut cfg = llm_config(&mock.base);
        cfg.llm_options.worker_threads = workers;
        let be = LlmBackend::http(
            &cfg,
            Arc::default(),
            Some(&dir.path().join("t.jsonl")),
            &DecisionKinds::builtin(),
        )
        .unwrap();
        let ctx = Context {
            catalog: &a.catalog,
            clock: &a.clock,
            seed: 1,
        };
        let reqs = top_requests(&a);
        let out = answer_all(&be, &ctx, &reqs);
        let want = [
            TopAction::Recommender,
            TopAction::Social,
            TopAction::Nothing,
        ];
        for (i, r) in out.into_iter().enumerate() {
            assert_eq!(r.unwrap(), want[i % 3], "agent {i}, {workers} workers");
        }
        // The transcript is in request order too, one line per request.
        let t = std::fs::read_to_string(dir.path().join("t.jsonl")).unwrap();
        let users: Vec<u64> = t
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["key"]["user"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(users, (0..20).collect::<Vec<u64>>());
        assert_eq!(be.stats().snapshot().calls, 20);
    }
}

#[test]
fn a_slow_call_does_not_hold_up_the_others() {
    // Agent 3's server call takes 30 s; the client timeout is 1.5 s and no retries. The other
    // 9 answers must arrive and be right, agent 3 must fail (and fall back), and the batch must
    // end long before the 30 s call would have.
    let mock = Mock::start(|b, _| {
        if agent_number(b) == 3 {
            Step::Delay(
                Duration::from_secs(30),
                Box::new(Step::Answer("[SOCIAL]::".into())),
            )
        } else {
            Step::Delay(
                Duration::from_millis(50),
                Box::new(Step::Answer("[SOCIAL]::".into())),
            )
        }
    });
    let a = agents(10);
    let mut cfg = llm_config(&mock.base);
    cfg.llm_options.request_timeout_secs = 1.5;
    cfg.max_retries = 0;
    let be = LlmBackend::http(&cfg, Arc::default(), None, &DecisionKinds::builtin()).unwrap();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let reqs = top_requests(&a);
    let t = Instant::now();
    let mut stats = BehaviourStats::default();
    let out = Behaviour(Box::new(be)).ask(&ctx, &reqs, &mut stats);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
    for (i, ans) in out.iter().enumerate() {
        let want = if i == 3 {
            TopAction::Nothing
        } else {
            TopAction::Social
        };
        assert_eq!(*ans, want, "agent {i}");
    }
    assert_eq!(stats.fallbacks_of("top"), 1);
    assert_eq!(stats.requests_of("top"), 10);
}

/// Three `top` requests per agent as chains over `be` (`chains` on or off): the final states
/// (each agent's answers), the request and fallback counts, the agents in the order the mock
/// received their requests, and the transcript without latencies.
fn run_chains(
    mock: &Mock,
    chains: bool,
    dir: &Path,
) -> (Vec<Vec<TopAction>>, u64, u64, Vec<u32>, String) {
    let a = agents(4);
    let mut cfg = llm_config(&mock.base);
    cfg.llm_options.chains = chains;
    let path = dir.join(format!("t-{chains}.jsonl"));
    let be =
        LlmBackend::http(&cfg, Arc::default(), Some(&path), &DecisionKinds::builtin()).unwrap();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let before = mock.seen.lock().unwrap().len();
    let mut stats = BehaviourStats::default();
    let states: Vec<(usize, Vec<TopAction>)> = (0..4).map(|i| (i, Vec::new())).collect();
    let out = Behaviour(Box::new(be)).ask_chains::<Top, _, _, _>(
        &ctx,
        &mut stats,
        states,
        &mut (),
        |(i, done)| {
            (done.len() < 3).then(|| Request {
                key: RequestKey {
                    step: done.len() as u16,
                    ..key(*i as u32)
                },
                agent: AgentView {
                    id: UserId(*i as u32),
                    profile: &a.profiles[*i],
                    taste: &a.taste,
                    histories: &a.hist,
                    contacts: &a.rel,
                    memory: &a.mem,
                },
                ask: (),
            })
        },
        |_, wave| vec![(); wave.len()],
        |_, (_, done), action, ()| done.push(action),
    );
    let order: Vec<u32> = mock.seen.lock().unwrap()[before..]
        .iter()
        .map(|(b, _)| agent_number(b))
        .collect();
    let transcript = crate::golden::transcript_without_latency(&path);
    (
        out.into_iter().map(|(_, d)| d).collect(),
        stats.requests_of("top"),
        stats.fallbacks_of("top"),
        order,
        transcript,
    )
}

#[test]
fn chains_send_an_agents_next_request_when_its_answer_is_in_and_answer_as_batches_do() {
    // Agent 0's first call takes 600 ms, every other call 5 ms. Agent i's k-th answer (k from
    // 0) is `[NOTHING]::` when i + k is even, `[SOCIAL]::` otherwise, so each agent's three
    // answers are told apart. Hits are counted per agent to find its k.
    let hits = Arc::new(std::sync::Mutex::new([0usize; 4]));
    let h = hits.clone();
    let mock = Mock::start(move |b, _| {
        let i = agent_number(b) as usize;
        let k = {
            let mut h = h.lock().unwrap();
            h[i] += 1;
            h[i] - 1
        };
        let text = if (i + k).is_multiple_of(2) {
            "[NOTHING]::"
        } else {
            "[SOCIAL]::"
        };
        let ms = if (i, k) == (0, 0) { 600 } else { 5 };
        Step::Delay(
            Duration::from_millis(ms),
            Box::new(Step::Answer(text.into())),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let (chained, n, fell, order, t_chained) = run_chains(&mock, true, dir.path());
    *hits.lock().unwrap() = [0; 4];
    let (batched, n2, fell2, order2, t_batched) = run_chains(&mock, false, dir.path());
    let (s, x) = (TopAction::Social, TopAction::Nothing);
    let want = vec![vec![x, s, x], vec![s, x, s], vec![x, s, x], vec![s, x, s]];
    assert_eq!(chained, want);
    assert_eq!(batched, want);
    assert_eq!((n, fell, n2, fell2), (12, 0, 12, 0));
    // Step by step, each step's four calls are sent together (in any order: they race to the
    // server) and the next step waits for agent 0's slow first call.
    let sorted = |x: &[u32]| {
        let mut x = x.to_vec();
        x.sort_unstable();
        x
    };
    for step in order2.chunks(4) {
        assert_eq!(sorted(step), [0, 1, 2, 3], "{order2:?}");
    }
    // Chained, the other agents' three calls are all made while it is out; agent 0's second
    // and third come last.
    assert_eq!(sorted(&order[..4]), [0, 1, 2, 3], "{order:?}");
    assert_eq!(sorted(&order[4..10]), [1, 1, 2, 2, 3, 3], "{order:?}");
    assert_eq!(&order[10..], [0, 0], "{order:?}");
    // The transcript is the same: by step, then key, whatever order the answers came in.
    assert_eq!(t_chained.lines().count(), 12);
    assert_eq!(t_chained, t_batched);
}

#[test]
fn unparseable_answers_get_one_corrective_retry_then_a_counted_fallback() {
    // Even agents answer garbage first and a tag after the correction; odd agents always garble.
    let mock = Mock::start(|b, _| {
        let corrected = b["messages"].as_array().is_some_and(|m| m.len() == 3);
        if agent_number(b).is_multiple_of(2) && corrected {
            Step::Answer("[RECOMMENDER]:: fine".into())
        } else {
            Step::Answer("\u{7}I am a language model \u{0} and cannot choose.".into())
        }
    });
    let a = agents(6);
    let cfg = llm_config(&mock.base);
    let be = LlmBackend::http(&cfg, Arc::default(), None, &DecisionKinds::builtin()).unwrap();
    let usage = be.stats();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let reqs = top_requests(&a);
    let mut stats = BehaviourStats::default();
    let out = Behaviour(Box::new(be)).ask(&ctx, &reqs, &mut stats);
    for (i, ans) in out.iter().enumerate() {
        let want = if i % 2 == 0 {
            TopAction::Recommender
        } else {
            TopAction::Nothing
        };
        assert_eq!(*ans, want, "agent {i}");
    }
    assert_eq!(stats.fallbacks_of("top"), 3);
    let u = usage.snapshot();
    assert_eq!(u.calls, 12);
    assert_eq!(u.corrective_retries, 6);
    assert_eq!(u.parse_failures, 9);
    assert_eq!(u.unparsed_requests, 3);
    // The corrective message told the model what was wrong.
    let seen = mock.seen.lock().unwrap();
    let corr = seen
        .iter()
        .find_map(|(b, _)| b["messages"].as_array().filter(|m| m.len() == 3).cloned())
        .unwrap();
    assert!(corr[2]["content"]
        .as_str()
        .unwrap()
        .contains("[RECOMMENDER]"));
}

#[test]
fn long_answers_and_control_characters_parse() {
    // 10 KB of repeated tokens after the tag, with control characters inside.
    let long = format!("[SOCIAL]\u{1}:: {}", "la ".repeat(3400));
    let mock = Mock::start(move |_, _| Step::Answer(long.clone()));
    let a = agents(2);
    let be = LlmBackend::http(
        &llm_config(&mock.base),
        Arc::default(),
        None,
        &DecisionKinds::builtin(),
    )
    .unwrap();
    let ctx = Context {
        catalog: &a.catalog,
        clock: &a.clock,
        seed: 1,
    };
    let out = answer_all(&be, &ctx, &top_requests(&a));
    assert!(out
        .iter()
        .all(|r| *r.as_ref().unwrap() == TopAction::Social));
}

// ---- whole runs through the mock ----

fn e2e_config(base: &str, agents: u32, rounds: u32) -> SimConfig {
    let mut c = demo_config();
    c.backend = BackendKind::Llm;
    c.api_bases = vec![base.to_string()];
    c.api_keys = vec![SECRET.into()];
    c.agent_num = Some(agents);
    c.round = rounds;
    c.llm_options.backoff_base_ms = 1;
    c
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn record_then_replay_is_byte_identical_and_a_changed_prompt_is_named() {
    // 3 rounds x 20 agents through the mock (one in ten requests first gets a 500 and is retried).
    let mock = Mock::start(|b, n| {
        if n % 10 == 7 {
            Step::Status(500, None)
        } else {
            Step::Answer(sensible_answer(b))
        }
    });
    let (rec, rep, bad) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cfg = e2e_config(&mock.base, 20, 3);
    let r1 = run(cfg.clone(), rec.path());
    let u1 = r1.manifest["llm_usage"].clone();
    assert_eq!(r1.stats["rounds"], 3);
    assert!(
        r1.stats["watches"] > 0 && r1.stats["ratings"] > 0,
        "{:?}",
        r1.stats
    );
    assert!(r1.stats["entered_social"] > 0, "{:?}", r1.stats);
    assert!(u1["total"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(u1["http_retries"].as_u64().unwrap() > 0);
    assert_eq!(u1["per_round"].as_object().unwrap().len(), 3);
    let transcript = rec.path().join("transcript.jsonl");
    assert!(transcript.exists());

    let mut replay = cfg.clone();
    replay.backend = BackendKind::Replay;
    replay.api_bases = vec!["http://127.0.0.1:9/v1".into()]; // never contacted
    replay.transcript_path = Some(transcript.clone());
    let hits_before = mock.hits.load(std::sync::atomic::Ordering::SeqCst);
    let r2 = run(replay.clone(), rep.path());
    assert_eq!(
        mock.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits_before
    );
    assert_eq!(r1.messages, r2.messages);
    assert_eq!(r1.interactions, r2.interactions);
    assert_eq!(u1, r2.manifest["llm_usage"]);
    assert_eq!(r2.manifest["backend"], "replay");

    // A changed top-level template: the first differing key is round 1, activity, user 0.
    let pdir = bad.path().join("prompts");
    std::fs::create_dir_all(&pdir).unwrap();
    for f in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prompts")).unwrap()
    {
        let f = f.unwrap().path();
        std::fs::copy(&f, pdir.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        pdir.join("top.txt"),
        "{context}\nChoose: [RECOMMENDER], [SOCIAL] or [NOTHING].\n",
    )
    .unwrap();
    let mut changed = replay;
    changed.llm_options.prompt_dir = Some(pdir);
    let r3 = run(changed, &bad.path().join("out"));
    let first = r3.manifest["llm_usage"]["first_replay_mismatch"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first.contains("round: 1")
            && first.contains("phase: Activity")
            && first.contains("user: UserId(0)"),
        "{first}"
    );
    assert!(first.contains("prompt hash mismatch"), "{first}");
}

/// Runs all of `cfg.round` rounds with outputs in `dir`, saving a checkpoint after round `at`
/// to `dir/round-<at>.ckpt`, whose path is returned.
fn run_with_checkpoint(cfg: SimConfig, dir: &Path, at: u32) -> PathBuf {
    let rounds = cfg.round;
    let mut sim = recagent::sim::Sim::new(cfg, paths(dir)).unwrap();
    let ckpt = dir.join(format!("round-{at}.ckpt"));
    for r in 1..=rounds {
        sim.step().unwrap();
        if r == at {
            recagent::checkpoint::save(&mut sim, &ckpt, None).unwrap();
        }
    }
    ckpt
}

/// Writes `dir/run.yaml`: the bundled demo data (by absolute paths) and `rest`.
fn demo_data_config(dir: &Path, rest: &str) -> PathBuf {
    let r = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    let path = dir.join("run.yaml");
    std::fs::write(
        &path,
        format!(
            "item_path: {r}/data/item.csv\nuser_path: {r}/data/users.csv\nrelationship_path: {r}/data/relationship.csv\n{rest}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn no_api_key_in_any_output_file_of_a_cli_run() {
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = demo_data_config(
        dir.path(),
        &format!(
            "round: 2\nagent_num: 8\nbackend: llm\napi_bases: [{}]\napi_keys: [{SECRET}]\nllm_options:\n  backoff_base_ms: 1\n",
            mock.base
        ),
    );
    let out = dir.path().join("out");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args(["run", "-c"])
        .arg(&cfg_path)
        .arg("--output-dir")
        .arg(&out)
        .env("RECAGENT_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("tokens"), "{stdout}");
    assert!(!stdout.contains(SECRET));
    let files = all_files(&out);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "manifest.json",
        "messages.jsonl",
        "interaction.csv",
        "run.log",
        "transcript.jsonl",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.is_empty(), "{}", f.display());
        assert!(!text.contains(SECRET), "API key found in {}", f.display());
        assert!(
            !text.contains("SECRET"),
            "API key part found in {}",
            f.display()
        );
    }
    // The key was really sent, as a bearer token.
    let seen = mock.seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen
        .iter()
        .all(|(_, a)| a.as_deref() == Some(&format!("Bearer {SECRET}")[..])));
    let calls = seen.len();
    drop(seen);
    // `recagent replay` reproduces the run offline, byte for byte, into `replay/` beside the
    // transcript, without a single call.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args(["replay", "-q", "--transcript"])
        .arg(out.join("transcript.jsonl"))
        .arg("-c")
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for f in ["messages.jsonl", "interaction.csv"] {
        let a = std::fs::read_to_string(out.join(f)).unwrap();
        let b = std::fs::read_to_string(out.join("replay").join(f)).unwrap();
        assert!(a == b, "replayed {f} differs");
    }
    assert_eq!(mock.seen.lock().unwrap().len(), calls);
    let _ = paths(dir.path());
}

#[test]
fn url_credentials_and_resume_keys_stay_out_of_every_output_file() {
    const PW: &str = "PW-secret-91";
    const KEY: &str = "sk-RESUME-secret-7";
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let cred_base = mock.base.replace("http://", &format!("http://alice:{PW}@"));
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = demo_data_config(
        dir.path(),
        &format!(
            "round: 1\nagent_num: 4\nbackend: llm\napi_bases: [{cred_base}]\ncheckpoint_every: 1\n"
        ),
    );
    let out = dir.path().join("out");
    let recagent = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_recagent"))
            .args(args)
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!text.contains(PW) && !text.contains(KEY), "{text}");
        (o.status.success(), text)
    };
    let (cfg_s, out_s) = (cfg_path.to_str().unwrap(), out.to_str().unwrap());
    let (ok, text) = recagent(&["check-config", "-c", cfg_s]);
    assert!(ok && text.contains("<redacted>@127.0.0.1"), "{text}");
    let (ok, text) = recagent(&["run", "-c", cfg_s, "--output-dir", out_s]);
    assert!(ok, "{text}");
    let ckpt = out.join("checkpoints").join("round-000001.ckpt");
    let ckpt_s = ckpt.to_str().unwrap();
    // The checkpoint has no credentials: resuming without them says how to give them.
    let (ok, text) = recagent(&["resume", ckpt_s, "--rounds", "2"]);
    assert!(!ok && text.contains("--set 'api_bases="), "{text}");
    let bases = format!("api_bases=[{cred_base}]");
    let keys = format!("api_keys=[{KEY}]");
    let (ok, text) = recagent(&[
        "resume", ckpt_s, "--rounds", "2", "--set", &bases, "--set", &keys,
    ]);
    assert!(ok, "{text}");
    // The URL's credentials were sent as Basic auth (the key is not added beside them).
    assert!(mock
        .seen
        .lock()
        .unwrap()
        .iter()
        .all(|(_, a)| a.as_deref() == Some("Basic YWxpY2U6UFctc2VjcmV0LTkx")));
    let mut files = all_files(&out);
    files.extend(all_files(&out.join("checkpoints")));
    assert!(
        files.iter().any(|f| f.ends_with("round-000002.ckpt")),
        "{files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for secret in [PW, KEY] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                f.display()
            );
        }
    }
}

#[test]
fn cost_estimate_renders_round_one_and_scales_by_rounds() {
    let mut cfg = e2e_config("http://127.0.0.1:9/v1", 10, 4);
    cfg.llm_options.price_prompt_per_mtok = 2.0;
    cfg.llm_options.price_completion_per_mtok = 8.0;
    let e = recagent::llm::estimate::estimate(&cfg).unwrap();
    // Every active agent makes at least the top-level request; prompts are hundreds of tokens.
    assert!(e.requests_round_one >= 5, "{e:?}");
    assert!(
        e.round_one.prompt_tokens > 100 * e.requests_round_one,
        "{e:?}"
    );
    assert_eq!(e.run.prompt_tokens, 4 * e.round_one.prompt_tokens);
    assert_eq!(e.run.completion_tokens, 4 * e.round_one.completion_tokens);
    let want = (e.run.prompt_tokens as f64 * 2.0 + e.run.completion_tokens as f64 * 8.0) / 1e6;
    assert!((e.cost - want).abs() < 1e-12);
}

#[test]
fn llm_config_keys_are_validated_with_their_names() {
    let parse = |t: &str| SimConfig::from_yaml(t, "t.yaml", PathBuf::from("/")).map(|_| ());
    let error = |t: &str| parse(t).unwrap_err().to_string();
    let err = error("backend: llm\n");
    assert!(err.contains("`api_bases`"), "{err}");
    let err = error("backend: replay\n");
    assert!(err.contains("`transcript_path`"), "{err}");
    for base in ["notaurl", "ftp://h/v1", "http://"] {
        let err = error(&format!("backend: llm\napi_bases: [\"{base}\"]\n"));
        assert!(
            err.contains("`api_bases`") && err.contains("not a base URL"),
            "{base}: {err}"
        );
    }
    let err = error("llm_options:\n  worker_threads: 65\n");
    assert!(err.contains("0..=64"), "{err}");
    let err = error("llm_options:\n  parse_retries: 9\n");
    assert!(
        err.contains("`llm_options.parse_retries`") && err.contains("0..=5"),
        "{err}"
    );
    let err = error("llm_options:\n  backoff_base_ms: 10\n  backoff_max_ms: 5\n");
    assert!(err.contains("`llm_options.backoff_max_ms`"), "{err}");
    // An unknown key of the section is reported with every other unknown key when the
    // simulation is built.
    let typo = SimConfig::from_yaml(
        "llm_options:\n  protcol: chat\n",
        "t.yaml",
        PathBuf::from("/"),
    );
    let err = recagent::sim::SimBuilder::new(typo.unwrap())
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown field `llm_options.protcol`; did you mean `llm_options.protocol`?"),
        "{err}"
    );
    assert!(parse(
        "backend: llm\napi_bases: [http://127.0.0.1:1/v1]\nllm_options:\n  protocol: completions\n"
    )
    .is_ok());
}

#[test]
fn a_resumed_llm_run_takes_received_answers_from_the_transcript() {
    // A run that reached round 4 and is resumed from its round-2 checkpoint: the answers of rounds
    // 3 and 4 are in its transcript, so the resumed run asks the server nothing and its outputs
    // equal an uninterrupted run's.
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let (full, part) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = e2e_config(&mock.base, 12, 4);
    run(cfg.clone(), full.path());
    let ckpt = run_with_checkpoint(cfg, part.path(), 2);
    let hits = mock.hits.load(std::sync::atomic::Ordering::SeqCst);
    let transcript = part.path().join("transcript.jsonl");
    // A crash in the middle of writing a line leaves it cut short: resume ignores it.
    let before = std::fs::read(&transcript).unwrap();
    let mut torn = before.clone();
    torn.extend_from_slice(b"{\"key\":{\"round\":5,\"pha");
    std::fs::write(&transcript, &torn).unwrap();
    // A resume that fails while starting (here: a cache path under a regular file) leaves the
    // transcript, and the answers after the checkpoint in it, as they were.
    let blocker = part.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let bad = [
        ("llm_options.response_cache".to_string(), "true".to_string()),
        (
            "llm_options.response_cache_path".to_string(),
            blocker.join("cache.jsonl").display().to_string(),
        ),
    ];
    assert!(recagent::checkpoint::resume(&ckpt, &bad, None).is_err());
    assert_eq!(
        std::fs::read(&transcript).unwrap(),
        torn,
        "a failed resume changed nothing"
    );
    let (mut resumed, _) = recagent::checkpoint::resume(&ckpt, &[], None).unwrap();
    while resumed.round() < 4 {
        resumed.step().unwrap();
    }
    // Usage and cost cover the whole run, not only the part after the resume.
    let usage = serde_json::to_value(resumed.llm_usage().unwrap()).unwrap();
    drop(resumed);
    let full_manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(full.path().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(usage, full_manifest["llm_usage"]);
    assert_eq!(
        mock.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits,
        "no call was asked again"
    );
    for f in ["messages.jsonl", "interaction.csv"] {
        let a = std::fs::read_to_string(full.path().join(f)).unwrap();
        let b = std::fs::read_to_string(part.path().join(f)).unwrap();
        assert!(a == b, "{f} differs");
    }
    // The transcript holds each call once: the kept prefix plus the re-recorded rounds 3-4.
    let t = std::fs::read_to_string(part.path().join("transcript.jsonl")).unwrap();
    let t_full = std::fs::read_to_string(full.path().join("transcript.jsonl")).unwrap();
    assert_eq!(t.lines().count(), t_full.lines().count());
}

#[test]
fn the_response_cache_answers_a_repeated_run_without_the_server_and_replays() {
    // Temperature 0: a second run with the same cache file sends nothing and gives the same
    // outputs; its transcript marks the hits and replays byte for byte. At temperature 0.7 the
    // cache is off, so a rerun asks the server again.
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let hits = || mock.hits.load(std::sync::atomic::Ordering::SeqCst);
    let (a, b, c, d) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cache = a.path().join("shared-cache.jsonl");
    let mut cfg = e2e_config(&mock.base, 10, 2);
    cfg.temperature = 0.0;
    cfg.llm_options.response_cache = true;
    cfg.llm_options.response_cache_path = Some(cache.clone());
    let r1 = run(cfg.clone(), a.path());
    let sent = hits();
    let u1 = &r1.manifest["llm_usage"];
    let calls1 = u1["calls"].as_u64().unwrap();
    assert!(sent > 0 && calls1 > 0);
    // Every call of run 1 was either sent or a hit on an answer of an earlier batch.
    assert_eq!(calls1, sent as u64 + u1["cache_hits"].as_u64().unwrap());
    let cached_lines = std::fs::read_to_string(&cache).unwrap().lines().count();
    assert_eq!(cached_lines, sent, "one cache line per answer received");

    let r2 = run(cfg.clone(), b.path());
    assert_eq!(hits(), sent, "the second run sent nothing");
    assert_eq!(r1.messages, r2.messages);
    assert_eq!(r1.interactions, r2.interactions);
    let u2 = &r2.manifest["llm_usage"];
    assert_eq!(u2["cache_hits"], u2["calls"]);
    assert_eq!(u2["total"]["prompt_tokens"], 0, "hits cost nothing");
    let t2 = b.path().join("transcript.jsonl");
    let text = std::fs::read_to_string(&t2).unwrap();
    assert!(text.lines().all(|l| l.contains("\"cached\":true")));

    let mut replay = cfg.clone();
    replay.backend = BackendKind::Replay;
    replay.transcript_path = Some(t2);
    let r3 = run(replay, c.path());
    assert_eq!(r2.messages, r3.messages);
    assert_eq!(r2.manifest["llm_usage"], r3.manifest["llm_usage"]);

    let mut warm = cfg;
    warm.temperature = 0.7;
    let _ = run(warm, d.path());
    assert!(hits() > sent, "at temperature 0.7 the cache is not used");
}

#[test]
fn a_run_that_fails_to_start_leaves_the_previous_transcript_alone() {
    // The previous run's transcript is only replaced once the new run starts asking; a setup
    // error after the backend was built (an unusable cache path) must not empty it.
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = e2e_config(&mock.base, 4, 1);
    run(cfg.clone(), dir.path());
    let transcript = dir.path().join("transcript.jsonl");
    let before = std::fs::read(&transcript).unwrap();
    assert!(!before.is_empty());
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let mut bad = cfg;
    bad.temperature = 0.0;
    bad.llm_options.response_cache = true;
    bad.llm_options.response_cache_path = Some(blocker.join("cache.jsonl"));
    // Told to overwrite the earlier run, so the start gets as far as the backend.
    let err = recagent::sim::SimBuilder::new(bad)
        .outputs(paths(dir.path()))
        .overwrite(true)
        .build()
        .err()
        .expect("the cache path is unusable");
    assert!(err.to_string().contains("response cache"), "{err}");
    assert_eq!(std::fs::read(&transcript).unwrap(), before);
}

#[test]
fn a_branch_of_an_llm_run_starts_its_own_transcript_with_the_parents_calls() {
    // The branch's transcript holds the parent's calls up to the checkpoint, its branch point,
    // then its own; the parent's transcript is left as it was.
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let (parent, branch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = e2e_config(&mock.base, 6, 3);
    let ckpt = run_with_checkpoint(cfg, parent.path(), 1);
    let pt = parent.path().join("transcript.jsonl");
    let parent_text = std::fs::read_to_string(&pt).unwrap();
    let round_of = |l: &str| serde_json::from_str::<Value>(l).unwrap()["key"]["round"].as_u64();
    let prefix: Vec<&str> = parent_text
        .lines()
        .filter(|l| round_of(l) == Some(1))
        .collect();
    assert!(!prefix.is_empty());
    let (mut b, _) = recagent::checkpoint::resume(&ckpt, &[], Some(branch.path())).unwrap();
    while b.round() < 3 {
        b.step().unwrap();
    }
    drop(b);
    assert_eq!(std::fs::read_to_string(&pt).unwrap(), parent_text);
    let branch_text = std::fs::read_to_string(branch.path().join("transcript.jsonl")).unwrap();
    let lines: Vec<&str> = branch_text.lines().collect();
    assert_eq!(lines[..prefix.len()], prefix[..]);
    // Then the branch point (after round 1, no settings changed), then the branch's calls.
    assert_eq!(lines[prefix.len()], r#"{"branch":{"round":1,"set":[]}}"#);
    let branch_text: String = branch_text
        .lines()
        .filter(|l| !l.starts_with(r#"{"branch""#))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines: Vec<&str> = branch_text.lines().collect();
    assert!(lines[prefix.len()..].iter().all(|l| round_of(l) > Some(1)));
    // Same settings, same answers: the branch re-records rounds 2 and 3 as the parent did
    // (up to the wall-clock latency).
    let calls = |t: &str| -> Vec<Value> {
        t.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v["latency_ms"] = Value::Null;
                v
            })
            .collect()
    };
    assert!(
        calls(&branch_text) == calls(&parent_text),
        "the branch's calls differ"
    );
}

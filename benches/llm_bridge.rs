//! LLM bridge throughput: requests/s against a mock server that answers after 50 ms, at 64, 256
//! and 1,024 requests in flight, against the limit `in_flight / latency`; and the bridge's CPU
//! time per request (render + send + receive + parse + transcript).
//!
//! The mock runs in a child process (this binary with `--mock-server`, answering a fixed,
//! pre-serialised body without parsing requests), so the CPU time read from
//! `/proc/self/task/*/schedstat` is the bridge's alone; the mock's is read from its own
//! `/proc/<pid>/task/*/schedstat`. On a machine where both share few cores, the achievable rate
//! is also bounded by `cores / (bridge + mock CPU per request)`, printed as "CPU limit". Run: `cargo bench --bench llm_bridge`.
//! Each setting is also run with a bare hyper client (no bridge) against the same mock, as the
//! reference for what this machine and mock allow.
//! Environment: `BENCH_LATENCY_MS` (default 50), `BENCH_WAVES` (batches per setting, default 4),
//! `BENCH_WORKERS` (the bridge's tokio worker threads, default the config's),
//! `BENCH_IN_FLIGHT` (comma-separated settings, default `64,256,1024`), `BENCH_KEEP` (set: keep
//! the transcripts and print where).

#[path = "../tests/it/llm_mock.rs"]
mod llm_mock;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recagent::behaviour::{AgentView, BehaviourBackend, Context, DecisionBatch, Request};
use recagent::catalog::Catalog;
use recagent::clock::{Interval, SimClock};
use recagent::components::{Histories, Memory, Profile, Relationships, Taste};
use recagent::config::{BackendKind, SimConfig};
use recagent::decision::top::Top;
use recagent::decision::DecisionKinds;
use recagent::ids::UserId;
use recagent::io::data::ItemRecord;
use recagent::llm::LlmBackend;

/// CPU time of this process's live threads in seconds, in nanoseconds resolution: the sum of
/// the first field of `/proc/self/task/*/schedstat` (`/proc/self/stat` counts 10 ms ticks, too
/// coarse for a batch of a few hundred requests). Threads are long-lived here (the runtime's
/// workers and the main thread), so none exits during a measurement.
fn cpu_secs() -> f64 {
    cpu_secs_of("self")
}

/// As [`cpu_secs`] for process `pid` (`"self"` or a number).
fn cpu_secs_of(pid: &str) -> f64 {
    let mut ns = 0u64;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// The reference: a bare hyper client (the bridge's direct transport without the bridge)
/// sending `n` copies of one pre-serialised request body, `in_flight` at a time, on a
/// current-thread runtime like the bridge's. Returns the median `(req/s, CPU us/req)` over
/// `waves` batches: what any client achieves against this mock on this machine, so the bridge's
/// own cost is the difference.
fn bare_client(
    base: &str,
    in_flight: usize,
    n: usize,
    body: bytes::Bytes,
    waves: usize,
) -> (f64, f64) {
    use http_body_util::{BodyExt, Full};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri: hyper::Uri = format!("{base}/chat/completions").parse().unwrap();
    let (mut rates, mut cpus) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let mut conn = hyper_util::client::legacy::connect::HttpConnector::new();
        conn.set_nodelay(true);
        let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(conn);
        let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
        for wave in 0..=waves {
            let count = if wave == 0 { in_flight } else { n };
            let (c0, t0) = (cpu_secs(), Instant::now());
            let tasks: Vec<_> = (0..count)
                .map(|_| {
                    let (client, uri, body, sem) =
                        (client.clone(), uri.clone(), body.clone(), sem.clone());
                    tokio::spawn(async move {
                        let _permit = sem.acquire().await.unwrap();
                        let req = hyper::Request::post(uri)
                            .header(hyper::header::CONTENT_TYPE, "application/json")
                            .header(hyper::header::AUTHORIZATION, "Bearer bench-key")
                            .body(Full::new(body))
                            .unwrap();
                        let resp = client.request(req).await.unwrap();
                        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                        serde_json::from_slice::<serde_json::Value>(&bytes).is_ok()
                    })
                })
                .collect();
            for t in tasks {
                assert!(t.await.unwrap(), "bare client: the mock answered JSON");
            }
            if wave > 0 {
                rates.push(n as f64 / t0.elapsed().as_secs_f64());
                cpus.push((cpu_secs() - c0) * 1e6 / n as f64);
            }
        }
    });
    rates.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], cpus[cpus.len() / 2])
}

fn mock_server() {
    let ms: u64 = std::env::var("BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let m = llm_mock::Mock::start_fixed(
        Duration::from_millis(ms),
        "[RECOMMENDER]:: enters the Recommender System",
    );
    println!("{}", m.base);
    std::thread::sleep(Duration::from_secs(3600));
}

fn main() {
    if std::env::args().any(|a| a == "--mock-server") {
        mock_server();
        return;
    }
    let latency_ms: f64 = std::env::var("BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50.0);
    let waves: usize = std::env::var("BENCH_WAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--mock-server")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut base = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut base)
        .unwrap();
    let base = base.trim().to_string();
    let server_pid = child.id().to_string();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    let n_agents = 4096usize;
    let profiles: Vec<Profile> = (0..n_agents)
        .map(|i| Profile {
            name: Arc::from(format!("Agent{i}").as_str()),
            gender: Arc::from("female"),
            age: 30,
            traits: Arc::from("curious, patient"),
            status: Arc::from("engineer"),
            interest: Arc::from("sci-fi, drama"),
            features: Default::default(),
            observations: Arc::from(""),
        })
        .collect();
    let (taste, hist, rel, mem) = (
        Taste::default(),
        Histories::default(),
        Relationships::default(),
        Memory::default(),
    );
    let catalog = Catalog::new(vec![ItemRecord {
        id: 0,
        title: "Film".into(),
        genres: vec!["Drama".into()],
        description: "a film".into(),
    }])
    .unwrap();
    let clock = SimClock::new(
        chrono::NaiveDateTime::parse_from_str("2023-06-01 08:00:00", "%Y-%m-%d %H:%M:%S").unwrap(),
        Interval::Seconds(3600),
    );
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: 1,
    };
    let dir = std::env::temp_dir().join(format!("recagent-bench-{}", std::process::id()));
    println!("LLM bridge vs mock server ({latency_ms} ms per answer), {waves} batches per setting");
    println!(
        "{:>9} {:>7} {:>10} {:>10} {:>7} {:>11} {:>12} {:>10} | {:>10} {:>11}",
        "in-flight",
        "batch",
        "req/s",
        "limit",
        "ratio",
        "CPU us/req",
        "mock us/req",
        "CPU limit",
        "bare ratio",
        "bare us/req"
    );
    let mut renders = Vec::new();
    let settings: Vec<usize> = std::env::var("BENCH_IN_FLIGHT")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![64, 256, 1024]);
    for in_flight in settings {
        let mut cfg = SimConfig {
            backend: BackendKind::Llm,
            api_bases: vec![base.clone()],
            api_keys: vec!["bench-key".into()],
            ..SimConfig::default()
        };
        cfg.llm_options.max_in_flight_per_endpoint = in_flight as u32;
        if let Some(w) = std::env::var("BENCH_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.llm_options.worker_threads = w;
        }
        cfg.llm_options.request_timeout_secs = 60.0;
        let be = LlmBackend::http(
            &cfg,
            Arc::default(),
            Some(&dir.join("t.jsonl")),
            &DecisionKinds::builtin(),
        )
        .unwrap();
        let batch_n = (in_flight * 8).min(n_agents);
        let reqs: Vec<Request<'_, Top>> = (0..batch_n)
            .map(|i| {
                Request::new(
                    1,
                    0,
                    AgentView {
                        id: UserId(i as u32),
                        profile: &profiles[i],
                        taste: &taste,
                        histories: &hist,
                        contacts: &rel,
                        memory: &mem,
                    },
                    (),
                )
            })
            .collect();
        // Warm-up (connections opened).
        be.answer_batch(
            &ctx,
            &DecisionBatch::new(&reqs[..in_flight.min(reqs.len())]),
        );
        let mut rates = Vec::new();
        let mut cpus = Vec::new();
        let mut server_cpus = Vec::new();
        for _ in 0..waves {
            let (c0, s0, t0) = (cpu_secs(), cpu_secs_of(&server_pid), Instant::now());
            let batch = DecisionBatch::new(&reqs);
            be.answer_batch(&ctx, &batch);
            let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
            let out = batch.into_answers();
            server_cpus.push((cpu_secs_of(&server_pid) - s0) * 1e6 / reqs.len() as f64);
            let ok = out.filter(|r| matches!(r, Some(Ok(_)))).count();
            assert_eq!(ok, reqs.len(), "all requests answered");
            rates.push(reqs.len() as f64 / wall);

            cpus.push(cpu * 1e6 / reqs.len() as f64);
        }
        // The share of the CPU spent rendering prompts (no network).
        let c0 = cpu_secs();
        let mut chars = 0usize;
        for _ in 0..10 {
            for r in &reqs {
                chars += be.prompts().render(&ctx, r).0.text.len();
            }
        }
        let render_us = (cpu_secs() - c0) * 1e6 / (10 * reqs.len()) as f64;
        assert!(chars > 0);
        renders.push(render_us);
        rates.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        server_cpus.sort_by(f64::total_cmp);
        let (rate, cpu, mock) = (
            rates[rates.len() / 2],
            cpus[cpus.len() / 2],
            server_cpus[server_cpus.len() / 2],
        );
        let limit = in_flight as f64 / (latency_ms / 1000.0);
        let body = {
            let text = be.prompts().render(&ctx, &reqs[0]).0.text;
            serde_json::to_vec(&serde_json::json!({
                "model": cfg.llm, "messages": [{"role": "user", "content": text}],
                "temperature": cfg.temperature, "max_tokens": cfg.max_token, "seed": cfg.seed,
            }))
            .unwrap()
        };
        let (bare_rate, bare_cpu) = bare_client(&base, in_flight, batch_n, body.into(), waves);
        // Client and mock share this machine's cores: they cannot together serve more than
        // cores / (CPU per request of both) requests per second, whatever is in flight.
        let cpu_limit = cores * 1e6 / (cpu + mock);
        println!(
            "{in_flight:>9} {batch_n:>7} {rate:>10.0} {limit:>10.0} {:>6.1}% {cpu:>11.1} {mock:>12.1} {cpu_limit:>10.0} | {:>9.1}% {bare_cpu:>11.1}",
            100.0 * rate / limit,
            100.0 * bare_rate / limit
        );
    }
    println!(
        "CPU limit = {cores} cores / (bridge + mock CPU per request): the most both processes can serve on this machine."
    );
    println!(
        "bare = a hyper client alone (one pre-serialised body, no prompts, parsing or transcript) against the same mock: this machine's ceiling."
    );
    println!(
        "prompt rendering alone: {:.1} us CPU per request (included in the CPU column)",
        renders.iter().sum::<f64>() / renders.len() as f64
    );
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("transcripts kept in {}", dir.display());
    }
    let _ = child.kill();
    let _ = child.wait();
}

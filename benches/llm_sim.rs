//! End-to-end LLM runs against mock servers with a latency distribution (issue 16, item 6):
//! the whole simulation (every phase, prompts, parsing, transcript) with the `llm` backend,
//! RecAgent's 1,000 users (`../shared/data/recagent`), every agent active, against 1, 2 or 4
//! mock servers, each in a child process (this binary with `--mock-server`), so this process's
//! CPU time is the simulation's and the bridge's alone.
//!
//! The mock answers every prompt sensibly (`sensible_answer` of the test mock: the choice
//! depends on the agent's name) after a latency drawn from the request itself (a hash of its
//! body seeds the draw), so a run is the same run every time:
//! - `fixed:50`: 50 ms, kept to within the kernel's timer slack;
//! - `lognormal:1000:1:30000`: lognormal with median 1,000 ms and sigma 1, capped at 30,000 ms.
//!
//! For each setting it prints, per run (rounds together): calls, wall time of the rounds,
//! calls/s against the in-flight limit (`endpoints x in_flight / mean latency`, the mean taken
//! over the calls actually made), this process's CPU per call, and per round: the wall time,
//! the longest single agent's chain of calls (the sum of its calls' latencies in the round,
//! from the transcript), and the phase bound (the sum over phases of the longest agent's calls
//! within the phase: what a round cannot beat while phases wait for each other).
//!
//! ```text
//! cargo bench --bench llm_sim                         # the default settings below
//! LLM_LATENCY=fixed:50 LLM_ENDPOINTS=1,2,4 LLM_CHAINS=true cargo bench --bench llm_sim
//! ```
//! Variables: `LLM_AGENTS` (1000, at most the 1,000 users), `LLM_ROUNDS` (3), `LLM_IN_FLIGHT`
//! (128 per endpoint), `LLM_WORKERS` (the bridge's `worker_threads`, default 0), `LLM_LATENCY`
//! (`fixed:MS` or `lognormal:MEDIAN_MS:SIGMA:CAP_MS`), `LLM_ENDPOINTS` (comma list),
//! `LLM_CHAINS` (comma list of true/false). Without any of them
//! the default matrix runs: fixed 50 ms with chains on and off on 1 endpoint, then on 2 and 4;
//! lognormal (4,096 in flight, so the limit does not bind; 2 rounds) with chains on and off.

#[path = "../tests/it/llm_mock.rs"]
mod llm_mock;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use recagent::config::SimConfig;
use recagent::io::output::OutputPaths;
use recagent::llm::http::PromptMessage;
use recagent::llm::transcript::prompt_hash;
use recagent::sim::Sim;

/// A latency distribution, milliseconds.
#[derive(Clone, Copy, Debug)]
enum Latency {
    Fixed(f64),
    LogNormal { median: f64, sigma: f64, cap: f64 },
}

impl Latency {
    fn parse(s: &str) -> Latency {
        let p: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> f64 {
            p.get(i).and_then(|x| x.parse().ok()).unwrap_or_else(|| {
                panic!("LLM_LATENCY {s:?}: fixed:MS or lognormal:MEDIAN:SIGMA:CAP")
            })
        };
        match p[0] {
            "fixed" => Latency::Fixed(num(1)),
            "lognormal" => Latency::LogNormal {
                median: num(1),
                sigma: num(2),
                cap: num(3),
            },
            _ => panic!("LLM_LATENCY {s:?}: fixed:MS or lognormal:MEDIAN:SIGMA:CAP"),
        }
    }
    fn spec(&self) -> String {
        match self {
            Latency::Fixed(ms) => format!("fixed:{ms}"),
            Latency::LogNormal { median, sigma, cap } => {
                format!("lognormal:{median}:{sigma}:{cap}")
            }
        }
    }
    /// The latency of the request whose body hashes to `h`.
    fn draw(&self, h: u64) -> Duration {
        let ms = match *self {
            Latency::Fixed(ms) => ms,
            Latency::LogNormal { median, sigma, cap } => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(h);
                let d = LogNormal::new(median.ln(), sigma).expect("sigma > 0");
                d.sample(&mut rng).min(cap)
            }
        };
        Duration::from_micros((ms * 1000.0) as u64)
    }
}

/// The draw's seed: the first 64 bits of the conversation's hash (the transcript's
/// `prompt_hash`), so the bench finds each call's server latency again from the transcript.
fn seed_of(prompt_hash: &str) -> u64 {
    u64::from_str_radix(prompt_hash.get(..16).unwrap_or("0"), 16).unwrap_or(0)
}

fn mock_server(spec: &str) {
    let lat = Latency::parse(spec);
    let m = llm_mock::Mock::start_bench(move |b, _| {
        let msgs: Vec<PromptMessage> =
            serde_json::from_value(b["messages"].clone()).unwrap_or_default();
        llm_mock::Step::Delay(
            lat.draw(seed_of(&prompt_hash(&msgs))),
            Box::new(llm_mock::Step::Answer(llm_mock::sensible_answer(b))),
        )
    });
    println!("{}", m.base);
    std::thread::sleep(Duration::from_secs(24 * 3600));
}

fn cpu_secs() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Starts `n` mock servers (child processes) and returns them with their base URLs.
fn start_mocks(n: usize, lat: &Latency) -> (Vec<Child>, Vec<String>) {
    let mut children = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..n {
        let mut child = Command::new(std::env::current_exe().expect("bench binary"))
            .arg("--mock-server")
            .arg(lat.spec())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mock server starts");
        let mut base = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut base)
            .expect("mock prints its address");
        bases.push(base.trim().to_string());
        children.push(child);
    }
    (children, bases)
}

struct Setting {
    latency: Latency,
    endpoints: usize,
    in_flight: usize,
    chains: bool,
    rounds: u32,
}

/// One call of the transcript.
struct CallRow {
    round: u64,
    phase: String,
    user: u64,
    /// The stage of the agent's round the call belongs to: calls of one stage are asked
    /// together (one batch), stages one after another. A browsing session's page decisions
    /// are one stage per step; the remember phase's kinds (`step >> 10`) are a stage each.
    stage: u64,
    /// The request within its stage, as `(step, attempt)`: attempts of a request follow
    /// each other.
    step: u64,
    /// The server's latency for this call (the mock's draw, found again from the prompt hash).
    server_ms: f64,
}

fn transcript_calls(path: &Path, lat: &Latency) -> Vec<CallRow> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let phase = v["key"]["phase"].as_str().unwrap_or("").to_string();
            let step = v["key"]["step"].as_u64().unwrap_or(0);
            let stage = match phase.as_str() {
                "Watch" | "Chat" => step,
                "Remember" => step >> 10,
                _ => 0,
            };
            let cached = v["cached"].as_bool().unwrap_or(false);
            let ms = lat
                .draw(seed_of(v["prompt_hash"].as_str().unwrap_or("")))
                .as_secs_f64()
                * 1e3;
            CallRow {
                round: v["key"]["round"].as_u64().unwrap_or(0),
                user: v["key"]["user"].as_u64().unwrap_or(0),
                stage,
                step,
                server_ms: if cached { 0.0 } else { ms },
                phase,
            }
        })
        .collect()
}

/// Per round: the longest single agent's chain of calls (its stages one after another, the
/// calls of a stage at once, a request's attempts one after another), the bound of
/// step-by-step batches (every stage waits for every agent's), and the bound of chained
/// sessions (the same, with each agent's page decisions one chain), in seconds.
fn bounds(calls: &[CallRow], round: u64) -> (f64, f64, f64) {
    // (phase, stage, user) -> per request (step) the sum over its attempts.
    let mut req: BTreeMap<(&str, u64, u64, u64), f64> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.round == round) {
        *req.entry((&c.phase, c.stage, c.user, c.step)).or_default() += c.server_ms;
    }
    let mut stage_user: BTreeMap<(&str, u64, u64), f64> = BTreeMap::new();
    for ((p, st, u, _), ms) in req {
        let m = stage_user.entry((p, st, u)).or_default();
        *m = m.max(ms);
    }
    let mut agent: BTreeMap<u64, f64> = BTreeMap::new();
    let mut stage_max: BTreeMap<(&str, u64), f64> = BTreeMap::new();
    let mut watch_user: BTreeMap<u64, f64> = BTreeMap::new();
    for ((p, st, u), ms) in &stage_user {
        *agent.entry(*u).or_default() += ms;
        let m = stage_max.entry((p, *st)).or_default();
        *m = m.max(*ms);
        if *p == "Watch" {
            *watch_user.entry(*u).or_default() += ms;
        }
    }
    let longest = agent.values().copied().fold(0.0, f64::max);
    let batched: f64 = stage_max.values().sum();
    let chained = stage_max
        .iter()
        .filter(|((p, _), _)| *p != "Watch")
        .map(|(_, ms)| ms)
        .sum::<f64>()
        + watch_user.values().copied().fold(0.0, f64::max);
    (longest / 1e3, batched / 1e3, chained / 1e3)
}

fn run(s: &Setting, agents: usize, data: &Path) {
    let (mut children, bases) = start_mocks(s.endpoints, &s.latency);
    let dir = tempfile::tempdir().expect("temp dir");
    let transcript = dir.path().join("transcript.jsonl");
    let yaml = format!(
        "item_path: {items}\nuser_path: {users}\nrelationship_path: {rel}\nagent_num: {agents}\n\
         round: {rounds}\nactive_prob: 1.0\nactive_agent_threshold: 0\nbackend: llm\n\
         api_bases: [{bases}]\napi_keys: [bench-key]\ntranscript_path: {t}\n\
         llm_options:\n  max_in_flight_per_endpoint: {inf}\n  chains: {chains}\n  \
         request_timeout_secs: 120\n  backoff_base_ms: 10\n  worker_threads: {workers}\n",
        items = data.join("item.csv").display(),
        users = data.join("user_1000.csv").display(),
        rel = data.join("relationship_1000.csv").display(),
        rounds = s.rounds,
        bases = bases.join(", "),
        t = transcript.display(),
        inf = s.in_flight,
        chains = s.chains,
        workers = std::env::var("LLM_WORKERS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0),
    );
    let cfg = SimConfig::from_yaml(&yaml, "bench", dir.path().to_path_buf()).expect("config");
    let out = OutputPaths {
        messages: dir.path().join("messages.jsonl"),
        interactions: dir.path().join("interaction.csv"),
        manifest: dir.path().join("manifest.json"),
        log: dir.path().join("run.log"),
    };
    let mut sim = Sim::new(cfg, out).expect("sim builds");
    let mut walls = Vec::new();
    let c0 = cpu_secs();
    for _ in 0..s.rounds {
        let t = Instant::now();
        sim.step().expect("round runs");
        walls.push(t.elapsed().as_secs_f64());
    }
    let cpu = cpu_secs() - c0;
    drop(sim);
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let calls = transcript_calls(&transcript, &s.latency);
    let n = calls.len() as f64;
    let wall: f64 = walls.iter().sum();
    let sent: Vec<&CallRow> = calls.iter().filter(|c| c.server_ms > 0.0).collect();
    let mean_ms = sent.iter().map(|c| c.server_ms).sum::<f64>() / (sent.len() as f64).max(1.0);
    let limit = (s.endpoints * s.in_flight) as f64 / (mean_ms / 1000.0);
    let rate = n / wall;
    println!(
        "{:<24} {} endpoint(s) x {:>4} in flight, chains {:<5} | {:>6} calls in {:>7.1} s: {:>6.0} calls/s of a limit of {:>6.0} (mean server latency {:>6.1} ms) = {:>5.1}% | CPU {:>5.1} us/call",
        s.latency.spec(),
        s.endpoints,
        s.in_flight,
        s.chains,
        n,
        wall,
        rate,
        limit,
        mean_ms,
        100.0 * rate / limit,
        cpu * 1e6 / n.max(1.0),
    );
    for (r, w) in walls.iter().enumerate() {
        let (longest, batched, chained) = bounds(&calls, r as u64 + 1);
        println!(
            "    round {}: {w:>6.1} s wall, {:>5} calls | longest agent chain {longest:>5.1} s (wall / it {:>4.2}) | bound of step-by-step batches {batched:>5.1} s, of chained sessions {chained:>5.1} s (wall / it {:>4.2})",
            r + 1,
            calls.iter().filter(|c| c.round == r as u64 + 1).count(),
            w / longest.max(1e-9),
            w / chained.max(1e-9),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--mock-server") {
        mock_server(args.get(i + 1).map_or("fixed:50", String::as_str));
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../shared/data/recagent");
    if !data.join("user_1000.csv").exists() {
        eprintln!("llm_sim needs ../shared/data/recagent (RecAgent's 1,000 users); skipped");
        return;
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let agents: usize = var("LLM_AGENTS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let list = |k: &str| -> Option<Vec<String>> {
        var(k).map(|v| v.split(',').map(|x| x.trim().to_string()).collect())
    };
    let custom = [
        "LLM_LATENCY",
        "LLM_ENDPOINTS",
        "LLM_CHAINS",
        "LLM_IN_FLIGHT",
        "LLM_ROUNDS",
    ]
    .iter()
    .any(|k| var(k).is_some());
    let settings: Vec<Setting> = if custom {
        let latency = Latency::parse(&var("LLM_LATENCY").unwrap_or_else(|| "fixed:50".into()));
        let in_flight = var("LLM_IN_FLIGHT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(128);
        let rounds = var("LLM_ROUNDS").and_then(|v| v.parse().ok()).unwrap_or(3);
        let mut out = Vec::new();
        for e in list("LLM_ENDPOINTS").unwrap_or_else(|| vec!["1".into()]) {
            for c in list("LLM_CHAINS").unwrap_or_else(|| vec!["true".into()]) {
                out.push(Setting {
                    latency,
                    endpoints: e.parse().expect("LLM_ENDPOINTS: numbers"),
                    in_flight,
                    chains: c == "true",
                    rounds,
                });
            }
        }
        out
    } else {
        let fixed = Latency::Fixed(50.0);
        let logn = Latency::LogNormal {
            median: 1000.0,
            sigma: 1.0,
            cap: 30_000.0,
        };
        let s = |latency, endpoints, in_flight, chains, rounds| Setting {
            latency,
            endpoints,
            in_flight,
            chains,
            rounds,
        };
        vec![
            s(fixed, 1, 128, true, 3),
            s(fixed, 1, 128, false, 3),
            s(fixed, 2, 128, true, 3),
            s(fixed, 4, 128, true, 3),
            s(logn, 1, 4096, true, 2),
            s(logn, 1, 4096, false, 2),
        ]
    };
    println!("LLM end to end: {agents} agents (RecAgent's users), every agent active, mock servers in child processes");
    for s in &settings {
        run(s, agents, &data);
    }
}

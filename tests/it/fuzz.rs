//! No panic on any input (issue 17, item 4): every parser and loader that reads outside input is
//! fed two families of generated inputs with proptest, and must give a value or an error, never
//! panic, and never take long (a hang or a quadratic blow-up fails the case):
//!
//! - *arbitrary*: random bytes, or random text over the format's structural characters;
//! - *mutated*: a real valid input (a data file's first lines, a model answer, a transcript, a
//!   checkpoint) with bytes flipped, inserted or deleted, interesting tokens inserted, the text
//!   cut, lines duplicated or swapped and fields swapped.
//!
//! The short version runs in `cargo test` ([`SHORT_CASES`] per family and target). The long one is
//! `fuzz_long` (ignored): `RECAGENT_FUZZ_CASES` cases per target (default 1,000,000, half per
//! family), `RECAGENT_FUZZ_TARGET` to run one target; it prints cases, time and failures and, per
//! target, the time of a 16× larger input against the seed's (linear growth gives about 16).
//! Run it in release: `cargo test --release --test it fuzz_long -- --ignored --nocapture`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use recagent::catalog::Catalog;
use recagent::config::SimConfig;
use recagent::decision::{self, Decision};
use recagent::ids::UserId;
use recagent::io::data::{self, Source};

use crate::common::root;

/// Cases per family and target in `cargo test`.
const SHORT_CASES: u32 = 200;
/// Largest generated input in bytes (mutations of a seed may grow it by a few tokens).
const MAX_LEN: usize = 2048;
/// A case that takes longer fails. Generous (debug builds, a loaded 2-core machine): it catches
/// hangs and blow-ups, it is not a speed target.
const CASE_LIMIT: Duration = Duration::from_secs(5);

/// One input-reading entry point under test.
struct Target {
    name: &'static str,
    /// Valid inputs the mutations start from.
    seeds: Vec<Vec<u8>>,
    /// Characters the arbitrary-text family draws from.
    alphabet: &'static [&'static str],
    /// Reads the input; `Ok` / `Err` are both fine, a panic is not.
    run: Box<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>,
}

/// One edit of an input. Positions are taken modulo the input's length (lines modulo its line
/// count), so every edit applies to every input and shrinks well.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Token(usize, usize),
    Delete(usize, usize),
    Cut(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    SwapFields(usize, usize, usize),
}

/// Tokens that tend to break parsers: separators, quotes, brackets, big and odd numbers,
/// multi-byte and full-width characters, a byte-order mark, CRLF.
const TOKENS: &[&str] = &[
    "\"",
    ",",
    "\n",
    "\r\n",
    "::",
    ":",
    ";",
    "|",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    "\\",
    "-1",
    "0",
    "4294967296",
    "99999999999999999999",
    "1e309",
    "NaN",
    "-0.0",
    "é",
    "：",
    "【",
    "】",
    "𝔘",
    "\u{feff}",
    "\u{0}",
    "\t",
    "```",
    "[BUY]::",
    "RATING:",
    "null",
    "true",
    "\"\"",
    "'",
    "#",
    "- ",
    "1. ",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Token(p, t)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Cut),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..8, 0usize..8).prop_map(|(l, a, b)| Mutation::SwapFields(l, a, b)),
    ]
}

fn split_lines(v: &[u8]) -> Vec<Vec<u8>> {
    v.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// `seed` with `ops` applied in order (never longer than `MAX_LEN` plus a token).
fn mutate(seed: &[u8], ops: &[Mutation]) -> Vec<u8> {
    let mut v = seed.to_vec();
    let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
    for op in ops {
        match *op {
            Mutation::Flip(p, b) if !v.is_empty() => {
                let i = p % v.len();
                v[i] ^= 1 << b;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(p, b) => v.insert(at(p, v.len()), b),
            Mutation::Token(p, t) => {
                let i = at(p, v.len());
                v.splice(i..i, TOKENS[t].bytes());
            }
            Mutation::Delete(p, n) => {
                let i = at(p, v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Cut(p) => v.truncate(at(p, v.len())),
            Mutation::DuplicateLine(l) => {
                let mut lines = split_lines(&v);
                if !lines.is_empty() {
                    let i = l % lines.len();
                    let line = lines[i].clone();
                    lines.insert(i, line);
                    v = lines.concat();
                }
            }
            Mutation::SwapLines(a, b) => {
                let mut lines = split_lines(&v);
                if !lines.is_empty() {
                    let n = lines.len();
                    lines.swap(a % n, b % n);
                    v = lines.concat();
                }
            }
            Mutation::SwapFields(l, a, b) => {
                let mut lines = split_lines(&v);
                if !lines.is_empty() {
                    let i = l % lines.len();
                    let sep = if lines[i].windows(2).any(|w| w == b"::") {
                        b':'
                    } else {
                        b','
                    };
                    let mut fields: Vec<Vec<u8>> =
                        lines[i].split(|&c| c == sep).map(<[u8]>::to_vec).collect();
                    let n = fields.len();
                    fields.swap(a % n, b % n);
                    lines[i] = fields.join(&sep);
                    v = lines.concat();
                }
            }
        }
        v.truncate(MAX_LEN + 32);
    }
    v
}

/// The arbitrary family: random bytes, or random text over `alphabet` and [`TOKENS`].
fn arbitrary(alphabet: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    let pieces: Vec<&'static str> = alphabet.iter().chain(TOKENS).copied().collect();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..MAX_LEN),
        proptest::collection::vec(proptest::sample::select(pieces), 0..MAX_LEN / 4)
            .prop_map(|p| p.concat().into_bytes()),
    ]
    .boxed()
}

/// The mutated family: a seed and up to 8 edits.
fn mutated(seeds: &[Vec<u8>]) -> BoxedStrategy<Vec<u8>> {
    let seeds = Arc::new(seeds.to_vec());
    (0..seeds.len(), proptest::collection::vec(mutation(), 1..8))
        .prop_map(move |(s, ops)| mutate(&seeds[s], &ops))
        .boxed()
}

/// The input of the case in progress and when it started, for the watchdog.
type Current = Arc<Mutex<Option<(Instant, Vec<u8>)>>>;

/// Aborts the test binary, printing the input, when one case runs for 6× [`CASE_LIMIT`] (a
/// hang: the case would never return to be failed). Stops when dropped.
struct Watchdog {
    current: Current,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    fn new(target: &'static str) -> Self {
        let current: Current = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (current.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let guard = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((t, input)) = &*guard {
                    if t.elapsed() > CASE_LIMIT * 6 {
                        eprintln!(
                            "fuzz target {target}: a case hangs ({:?} so far) on input {:?}",
                            t.elapsed(),
                            String::from_utf8_lossy(input)
                        );
                        std::process::abort();
                    }
                }
            }
        });
        Self { current, stop }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What one run of a target over a family found.
struct Outcome {
    cases: u32,
    ok: u64,
    err: u64,
    elapsed: Duration,
    /// The minimal failing input and why, if a case failed.
    failure: Option<String>,
}

fn run_family(t: &Target, family: &str, cases: u32) -> Outcome {
    let strategy = match family {
        "arbitrary" => arbitrary(t.alphabet),
        _ => mutated(&t.seeds),
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    });
    let dog = Watchdog::new(t.name);
    let counts = Mutex::new((0u64, 0u64));
    let started = Instant::now();
    let result = runner.run(&strategy, |input| {
        *dog.current.lock().unwrap() = Some((Instant::now(), input.clone()));
        let t0 = Instant::now();
        let r = (t.run)(&input);
        let took = t0.elapsed();
        *dog.current.lock().unwrap() = None;
        let mut c = counts.lock().unwrap();
        if r.is_ok() {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
        if took > CASE_LIMIT {
            return Err(TestCaseError::fail(format!("took {took:?}")));
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    let (ok, err) = *counts.lock().unwrap();
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(why, input)) => Some(format!(
            "{why}; minimal input {:?}",
            String::from_utf8_lossy(&input)
        )),
        Err(e) => Some(e.to_string()),
    };
    Outcome {
        cases,
        ok,
        err,
        elapsed,
        failure,
    }
}

fn check(t: &Target) {
    for family in ["arbitrary", "mutated"] {
        let o = run_family(t, family, SHORT_CASES);
        assert!(
            o.failure.is_none(),
            "fuzz target {} ({family}): {}",
            t.name,
            o.failure.unwrap_or_default()
        );
        assert_eq!(o.ok + o.err, u64::from(o.cases), "{}: cases run", t.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Targets

/// The first `n` lines of a repository file.
fn head(rel: &str, n: usize) -> Vec<u8> {
    let text = std::fs::read(root().join(rel)).unwrap();
    split_lines(&text)
        .into_iter()
        .take(n)
        .collect::<Vec<_>>()
        .concat()
}

fn err_string<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// `Ok` when one of the readers accepted the input, else the first error. Every error must have
/// a message (a clear error, not an empty one).
fn any_ok(results: Vec<Result<(), String>>) -> Result<(), String> {
    let mut first_err = None;
    let mut ok = false;
    for r in results {
        match r {
            Ok(()) => ok = true,
            Err(e) => {
                assert!(!e.trim().is_empty(), "an error with an empty message");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) if !ok => Err(e),
        _ => Ok(()),
    }
}

fn demo_catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| {
        let items =
            data::load_items(Source::Path(&root().join("data/item.csv"))).expect("demo items");
        Catalog::new(items).expect("demo catalogue")
    })
}

const ANSWER_ALPHABET: &[&str] = &[
    "[",
    "]",
    ":",
    "::",
    " ",
    "\n",
    "BUY",
    "NEXT",
    "SEARCH",
    "LEAVE",
    "WATCH",
    "NUM",
    "CHAT",
    "POST",
    "TIME",
    "RATING",
    "FEELING",
    "RECOMMENDER",
    "SOCIAL",
    "NOTHING",
    "1",
    "5",
    "10",
    ".",
    "/5",
    " out of 5",
    "{",
    "}",
    "\"action\"",
    "\"rating\"",
    "Babe",
    "<",
    ">",
    "\"",
    "Bob",
    "Eve Li",
    "*",
    "-",
    "```json",
];

/// Every decision kind's parser, through [`Decision::parse`], on the answer as the bridge
/// gives it ([`decision::parse::clean`]ed, not empty) and on the raw text.
fn answer_target() -> Target {
    let seeds = [
        "[BUY]:: 2",
        "NUM: 1; WATCH: The Long Quiet; REASON: calm",
        "{\"action\": \"search\", \"query\": \"Run, Mira, Run!\"}",
        "[NEXT]:: nothing here",
        "RATING: 4; FEELING: I liked the quiet ending.",
        "I'd give it 3 out of 5 stars.\nIt was fine.",
        "[CHAT]:: Eve Li\n[TIME]:: 0.5",
        "[POST]:: Just watched <The Long Quiet>, wonderful!",
        "[RECOMMENDER]:: I want a film",
        "[Amara Okafor]: Hi! Seen <The Long Quiet>?\n[Eve Li]: \"Yes, twice.\"",
        "1. What does Amara like?\n2. Who is Bob?",
        "Amara likes dramas [1, 3]\nShe avoids horror [2]",
        "7",
        "```json\n{\"rating\": \"4.6\", \"feeling\": \"good\"}\n```",
    ];
    Target {
        name: "llm_answer",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        alphabet: ANSWER_ALPHABET,
        run: Box::new(|bytes| {
            let raw = String::from_utf8_lossy(bytes);
            let cleaned = decision::parse::clean(&raw);
            let cat = demo_catalog();
            let page = decision::page::PageSpec {
                titles: vec![
                    "The Long Quiet".into(),
                    "Run, Mira, Run!".into(),
                    "2001: A Space Odyssey (1968)".into(),
                ],
                can_search: true,
            };
            let chat = decision::chat::ChatSpec {
                me: (UserId(0), "Amara Okafor".into()),
                partner: (UserId(9), "Eve Li".into()),
                max_turns: 8,
            };
            let social = vec![(UserId(3), "Bob".to_string()), (UserId(9), "Eve Li".into())];
            let mut out = Vec::new();
            for text in [cleaned.as_str(), raw.as_ref()] {
                out.extend([
                    err_string(decision::top::Top::parse(&(), text, cat)),
                    err_string(decision::page::Page::parse(&page, text, cat)),
                    err_string(decision::feel::Feel::parse(&(), text, cat)),
                    err_string(decision::social::Social::parse(&social, text, cat)),
                    err_string(decision::chat::Chat::parse(&chat, text, cat)),
                    err_string(decision::post::Post::parse(&(), text, cat)),
                    err_string(decision::compress::Compress::parse(&(), text, cat)),
                    err_string(decision::importance::Importance::parse(&(), text, cat)),
                    err_string(decision::insight::Insight::parse(&(), text, cat)),
                    err_string(decision::reflect_topic::ReflectTopic::parse(&(), text, cat)),
                    err_string(decision::reflect_insights::ReflectInsights::parse(
                        &(),
                        text,
                        cat,
                    )),
                ]);
            }
            any_ok(out)
        }),
    }
}

const CSV_ALPHABET: &[&str] = &[
    ",",
    "\"",
    "\n",
    "\r\n",
    "|",
    ";",
    "0",
    "1",
    "7",
    "12",
    "0.5",
    "1.5",
    "-",
    " ",
    "a",
    "Drama",
    "Watcher",
    "id",
    "title",
    "genre",
    "description",
    "name",
    "user_1",
    "user_2",
    "friend",
];

fn items_target() -> Target {
    Target {
        name: "items_csv",
        seeds: vec![head("data/item.csv", 12)],
        alphabet: CSV_ALPHABET,
        run: Box::new(|b| err_string(data::load_items(Source::Bytes("item.csv", b)))),
    }
}

const LEGACY_USERS: &str = "id,name,age,traits,status,observations\n\
    0,Tommy,23,\"happy, curious\",student,\"Tommy likes sci-fi, \"\"mostly\"\"\"\n\
    1,Eve,30,calm,nurse,Eve watches dramas\n";

fn users_target() -> Target {
    Target {
        name: "users_csv",
        seeds: vec![head("data/users.csv", 12), LEGACY_USERS.as_bytes().to_vec()],
        alphabet: CSV_ALPHABET,
        run: Box::new(|b| err_string(data::load_users(Source::Bytes("users.csv", b)))),
    }
}

fn relationships_target() -> Target {
    let users = data::load_users(Source::Path(&root().join("data/users.csv"))).unwrap();
    let legacy = data::load_users(Source::Text("user.csv", LEGACY_USERS)).unwrap();
    Target {
        name: "relationships_csv",
        seeds: vec![
            head("data/relationship.csv", 16),
            b"user_1,user_2,relationship\nTommy,Eve,1\nEve,Tommy,1\n".to_vec(),
        ],
        alphabet: CSV_ALPHABET,
        run: Box::new(move |b| {
            any_ok(vec![
                err_string(data::load_relationships(
                    Source::Bytes("relationship.csv", b),
                    &users,
                )),
                err_string(data::load_relationships(
                    Source::Bytes("relationship.csv", b),
                    &legacy,
                )),
            ])
        }),
    }
}

const DAT_ALPHABET: &[&str] = &[
    "::",
    ":",
    "\n",
    "|",
    "1",
    "2",
    "5",
    "6",
    "10",
    "978300760",
    "F",
    "M",
    "48067",
    "Toy Story (1995)",
    "Comedy",
    "\u{e9}",
    "\u{ff}",
];

/// MovieLens `.dat` files (UTF-8 or Latin-1): movies, users and ratings, each input read as all
/// three.
fn movielens_target() -> Target {
    Target {
        name: "movielens_dat",
        seeds: vec![
            b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n"
                .to_vec(),
            b"1::F::1::10::48067\n2::M::56::16::70072\n".to_vec(),
            b"1::1193::5::978300760\n1::661::3::978302109\n2::1357::4::978298709\n".to_vec(),
            b"7::Mis\xe9rables, Les (1995)::Drama\n".to_vec(),
        ],
        alphabet: DAT_ALPHABET,
        run: Box::new(|b| {
            any_ok(vec![
                err_string(data::load_items(Source::Bytes("movies.dat", b))),
                err_string(data::load_users(Source::Bytes("users.dat", b))),
                err_string(data::load_ml_ratings(Source::Bytes("ratings.dat", b))),
            ])
        }),
    }
}

/// Agent4Rec's implicit splits (`train.txt`, `valid.txt`, `test.txt`: `user item item ...`) and
/// the warm-start interaction file (implicit or `ratings.dat` lines).
fn interactions_target() -> Target {
    Target {
        name: "interactions",
        seeds: vec![
            b"0 12 7 3301\n1 5\n\n2 8 9\n".to_vec(),
            b"1::1193::5::978300760\n1::661::3::978302109\n".to_vec(),
        ],
        alphabet: &[
            " ",
            "\t",
            "\n",
            "::",
            "0",
            "1",
            "5",
            "42",
            "4294967295",
            "-3",
            "x",
        ],
        run: Box::new(|b| {
            let text = String::from_utf8_lossy(b);
            any_ok(vec![
                err_string(recagent::recommender::eval::parse_implicit(
                    &text,
                    "train.txt",
                )),
                err_string(recagent::recommender::parse_initial(&text, "ratings.dat")),
            ])
        }),
    }
}

const YAML_ALPHABET: &[&str] = &[
    ":",
    ": ",
    "\n",
    "  ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "#",
    "'",
    "\"",
    "seed",
    "round",
    "rec_model",
    "memory",
    "offline",
    "llm_options",
    "enhance_gate",
    "0.7",
    "5",
    "-1",
    "true",
    "~",
    "&a",
    "*a",
    "!!str",
    "|",
    ">",
    "\t",
    "agent_num",
    "interval",
    "5h",
    "page_size",
];

/// The configuration loader, and the plugins' settings check on what it accepted.
fn config_target() -> Target {
    Target {
        name: "config_yaml",
        seeds: vec![
            recagent::config::EMBEDDED_CONFIG.as_bytes().to_vec(),
            b"seed: 7\nround: 2\nagent_num: 3\nrec_model: MF\ninterval: 2h\nmemory:\n  enhance_gate: 0.75\noffline:\n  temperature: 1.5\npage_size: 4\n".to_vec(),
        ],
        alphabet: YAML_ALPHABET,
        run: Box::new(|b| {
            let text = String::from_utf8_lossy(b);
            let cfg = SimConfig::from_yaml(&text, "fuzz.yaml", PathBuf::from("/base"))
                .map_err(|e| e.to_string())?;
            err_string(recagent::sim::SimBuilder::new(cfg).check())
        }),
    }
}

/// `--set KEY=VALUE` overrides (one per line, split at the first `=` as the command line does)
/// applied to the embedded configuration, then the plugins' settings check.
fn overrides_target() -> Target {
    let base = SimConfig::embedded().unwrap();
    Target {
        name: "set_overrides",
        seeds: vec![
            b"seed=9\nround=3\noffline.temperature=2\nmemory.enhance_gate=0.75\n".to_vec(),
            b"rec_model=LightGCN\nllm_options.request_timeout_secs=5\nchat_max_turns=3\napi_keys=[a, b]\n"
                .to_vec(),
        ],
        alphabet: &[
            "=", ".", "\n", "seed", "round", "memory", "offline", "llm_options", "page_size", "1",
            "0.5", "[", "]", "{", "}", ":", " ", "-", "null", "x",
        ],
        run: Box::new(move |b| {
            let text = String::from_utf8_lossy(b);
            let mut sets = Vec::new();
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(format!("--set {line:?}: expected KEY=VALUE"));
                };
                sets.push((k.trim().to_string(), v.trim().to_string()));
            }
            let cfg = base.with_overrides(&sets).map_err(|e| e.to_string())?;
            err_string(recagent::sim::SimBuilder::new(cfg).check())
        }),
    }
}

/// The replay backend's transcript reader.
fn transcript_target() -> Target {
    use recagent::decision::{DecisionKinds, RequestKey};
    use recagent::llm::transcript::{self, Entry};
    let entry = |round, user, answer: Option<&str>| Entry {
        key: RequestKey {
            round,
            phase: decision::top::ACTIVITY,
            user: UserId(user),
            step: 0,
        },
        attempt: 0,
        prompt_hash: "ab".repeat(32),
        model: "m".into(),
        protocol: "chat".into(),
        temperature: 0.0,
        max_tokens: 64,
        endpoint: answer.map(|_| 0),
        answer: answer.map(str::to_string),
        error: answer.is_none().then(|| "timeout".to_string()),
        endpoint_base: answer
            .is_none()
            .then(|| "http://127.0.0.1:8080/v1".to_string()),
        structured_output: None,
        usage: Default::default(),
        latency_ms: 12,
        tries: 1,
        cached: false,
    };
    let mut seed = String::new();
    for e in [
        entry(1, 0, Some("[RECOMMENDER]::")),
        entry(1, 1, None),
        entry(2, 0, Some("[SOCIAL]:: \"hi\"\n")),
    ] {
        seed.push_str(&serde_json::to_string(&e).unwrap());
        seed.push('\n');
    }
    let kinds = DecisionKinds::builtin();
    Target {
        name: "transcript",
        seeds: vec![seed.into_bytes()],
        alphabet: &[
            "{",
            "}",
            "\"",
            ":",
            ",",
            "\n",
            "\"key\"",
            "\"round\"",
            "\"phase\"",
            "\"Activity\"",
            "1",
            "null",
            "[",
            "]",
        ],
        run: Box::new(move |b| {
            err_string(transcript::load_bytes(
                Path::new("transcript.jsonl"),
                b,
                &kinds,
            ))
        }),
    }
}

/// A real checkpoint: 3 demo agents, one round, no item index (fast to build).
fn checkpoint_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::demo_config()
        .with_overrides(&[
            ("agent_num".into(), "3".into()),
            ("memory.item_index".into(), "false".into()),
        ])
        .unwrap();
    let mut sim = recagent::sim::Sim::new(cfg, crate::common::paths(dir.path())).unwrap();
    sim.step().unwrap();
    let p = dir.path().join("round-1.ckpt");
    recagent::checkpoint::save(&mut sim, &p, None).unwrap();
    std::fs::read(p).unwrap()
}

/// The checkpoint reader: the header line, then the compressed state.
fn checkpoint_target() -> Target {
    let seed = checkpoint_seed();
    let nl = seed.iter().position(|&b| b == b'\n').unwrap();
    Target {
        name: "checkpoint",
        // The whole file, and its header line alone (the mutations then hit the header).
        seeds: vec![seed[..=nl].to_vec(), seed],
        alphabet: &[
            "{",
            "}",
            "\"",
            ":",
            ",",
            "\n",
            "\"format\"",
            "\"recagent-checkpoint\"",
            "3",
        ],
        run: Box::new(|b| {
            any_ok(vec![
                err_string(recagent::checkpoint::read_header(b, "round-1.ckpt")),
                err_string(recagent::checkpoint::from_bytes(b, "round-1.ckpt")),
            ])
        }),
    }
}

/// The External recommender's reply parser and the slate built from a parsed reply.
fn external_target() -> Target {
    Target {
        name: "external_reply",
        seeds: vec![
            br#"{"items": [4, 1, 9], "scores": [0.9, 0.5, 0.1]}"#.to_vec(),
            br#"{"items": [3, 3, 12, 2, 0, 5, 7, 8]}"#.to_vec(),
        ],
        alphabet: &[
            "{",
            "}",
            "[",
            "]",
            "\"items\"",
            "\"scores\"",
            ":",
            ",",
            "1",
            "3",
            "0.5",
            "1e40",
            "-1",
            " ",
        ],
        run: Box::new(|b| {
            // The entries of the reply, to bound what may be dropped.
            let given = serde_json::from_slice::<recagent::recommender::SlateReply>(b)
                .map(|r| r.items.len())
                .unwrap_or(0);
            for k in [0, 1, 5, 100] {
                let (slate, dropped) =
                    recagent::recommender::parse_slate_reply(b, k, 10, &|i| i % 2 == 1)
                        .map_err(|e| e.to_string())?;
                assert!(slate.items.len() <= k && slate.items.len() == slate.scores.len());
                assert!(slate.items.iter().all(|&i| i < 10 && i % 2 == 0));
                assert!(dropped as usize <= given);
            }
            Ok(())
        }),
    }
}

fn all_targets() -> Vec<Target> {
    vec![
        answer_target(),
        items_target(),
        users_target(),
        relationships_target(),
        movielens_target(),
        interactions_target(),
        config_target(),
        overrides_target(),
        transcript_target(),
        checkpoint_target(),
        external_target(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The short version (cargo test)

#[test]
fn fuzz_llm_answers() {
    check(&answer_target());
}

#[test]
fn fuzz_csv_loaders() {
    for t in [
        items_target(),
        users_target(),
        relationships_target(),
        movielens_target(),
        interactions_target(),
    ] {
        check(&t);
    }
}

#[test]
fn fuzz_config_and_overrides() {
    check(&config_target());
    check(&overrides_target());
}

#[test]
fn fuzz_transcript() {
    check(&transcript_target());
}

#[test]
fn fuzz_checkpoint_header() {
    check(&checkpoint_target());
}

#[test]
fn fuzz_external_reply() {
    check(&external_target());
}

/// The seeds are valid inputs (each accepted by one of its target's readers): mutations of
/// something the target refuses would mostly test its first error path.
#[test]
fn fuzz_seeds_are_accepted() {
    for t in all_targets() {
        for (i, s) in t.seeds.iter().enumerate() {
            let r = (t.run)(s);
            assert!(r.is_ok(), "{} seed {i}: {r:?}", t.name);
        }
    }
}

/// Inputs random generation rarely reaches, for every target: deep nesting (a recursive parser
/// could overflow the stack: an abort, not even a panic), a YAML alias bomb (9 levels of 9
/// aliases: 9^9 ≈ 387 million nodes if expanded), a 128 KiB line, a huge number, every seed 64
/// times over. Each gives a value or an error within [`CASE_LIMIT`].
#[test]
fn fuzz_hard_inputs() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ('a'..'i').zip('b'..='i') {
        bomb.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
    }
    let mut hard: Vec<Vec<u8>> = vec![
        "[".repeat(20_000).into_bytes(),
        "{".repeat(20_000).into_bytes(),
        "{\"a\":".repeat(20_000).into_bytes(),
        "- ".repeat(20_000).into_bytes(),
        "a:\n ".repeat(5_000).into_bytes(),
        bomb.into_bytes(),
        vec![b'x'; 1 << 17],
        format!("9{}", "9".repeat(100_000)).into_bytes(),
        "\"".repeat(50_000).into_bytes(),
        "::".repeat(50_000).into_bytes(),
    ];
    for t in all_targets() {
        hard.extend(t.seeds.iter().map(|s| s.repeat(64)));
    }
    for t in all_targets() {
        for (i, input) in hard.iter().enumerate() {
            let t0 = Instant::now();
            let _ = (t.run)(input);
            let took = t0.elapsed();
            assert!(
                took < CASE_LIMIT,
                "{}: hard input {i} took {took:?}",
                t.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The long version

/// `RECAGENT_FUZZ_CASES` cases per target (half per family), printed with the time taken; and per
/// target the time of one input 16× the size of its largest seed against the seed's own.
#[test]
#[ignore = "long: run once in release (see the module docs)"]
fn fuzz_long() {
    let cases: u32 = std::env::var("RECAGENT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::var("RECAGENT_FUZZ_TARGET").ok();
    let mut failures = Vec::new();
    for t in all_targets() {
        if only.as_deref().is_some_and(|o| o != t.name) {
            continue;
        }
        let mut line = format!("{:<18}", t.name);
        for family in ["arbitrary", "mutated"] {
            let o = run_family(&t, family, cases / 2);
            line.push_str(&format!(
                "  {family}: {} cases ({} ok, {} err) in {:.1} s",
                o.cases,
                o.ok,
                o.err,
                o.elapsed.as_secs_f64()
            ));
            if let Some(f) = o.failure {
                failures.push(format!("{} ({family}): {f}", t.name));
            }
        }
        let seed = t.seeds.iter().max_by_key(|s| s.len()).unwrap();
        let time = |input: &[u8]| {
            let t0 = Instant::now();
            for _ in 0..5 {
                let _ = (t.run)(input);
            }
            t0.elapsed().as_secs_f64() / 5.0
        };
        let big = seed.repeat(16);
        let (small, large) = (time(seed), time(&big));
        line.push_str(&format!(
            "  x16 input: {:.2}x time ({:.3} ms -> {:.3} ms)",
            large / small.max(1e-9),
            small * 1e3,
            large * 1e3
        ));
        println!("{line}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

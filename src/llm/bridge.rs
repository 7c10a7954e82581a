//! [`LlmBackend`]: the behaviour backend that asks an LLM (or replays a transcript).
//!
//! One `answer_batch` call = one phase step of the simulation, run as waves (the first calls,
//! then the corrective retries of answers that did not parse):
//! 1. each request is rendered into a prompt on the calling thread (prompts borrow the world) and
//!    spawned as a task on the backend's own tokio runtime as soon as it is rendered (in chunks of
//!    32), bounded per endpoint by a semaphore, on the least-loaded endpoint;
//!    calls answered by a resumed run's transcript or the response cache are not sent;
//! 2. results come back over a channel in completion order and are parsed right away on the
//!    calling thread, while other calls are still in flight; each fills its request's slot. The
//!    phase waits for its answers (`block_on`), the calls never wait for each other, so one slow
//!    call delays nothing but its own agent;
//! 3. the wave's transcript lines are written in request (key) order, never completion order,
//!    and answers are returned in request order; answers that still do not parse after the
//!    corrective retries are `Err` (fallback in `Behaviour::ask`).
//!
//! The runtime is built here, never inside another runtime, and dropped with the backend from
//! plain synchronous code (the world's resources).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::behaviour::BehaviourBackend;
use crate::config::SimConfig;
use crate::config::StructuredOutput;
use crate::decision::schema::Constraint;
use crate::decision::{
    BackendError, Batch, Chains, Context, DecisionKinds, ParseError, Prompts, Rendered, RequestKey,
};
use crate::ids::UserId;
use crate::llm::cache::ResponseCache;
use crate::llm::http::Usage;
use crate::llm::http::{
    redacted_endpoint, CallFailure, ClientOptions, Completion, HttpClient, PromptMessage,
};
use crate::llm::transcript::{self, request_hash, Entry, TranscriptWriter};
use crate::llm::{LlmOptions, LlmSetupError, LlmStats, LlmUsage};

/// One call to make. The conversation is shared with the task that sends it (no copy).
struct Call {
    /// The request's index among the run's requests ([`Calls`]).
    slot: usize,
    key: RequestKey,
    attempt: u32,
    messages: Arc<[PromptMessage]>,
    /// The answer's shape, when `structured_output` is on and the kind gives one.
    constraint: Option<Arc<Constraint>>,
    hash: String,
}

/// A call that failed: why, and after how many HTTP tries.
#[derive(Clone, Debug)]
struct Failure {
    message: String,
    tries: u32,
    /// Wall-clock time the call took before it failed, milliseconds (retries included).
    latency_ms: u64,
    /// The endpoint of the last try (index, and base URL redacted), when one was tried.
    endpoint: Option<(usize, String)>,
}

/// How a call was answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A server (or, in replay, the transcript).
    Live,
    /// The transcript of the interrupted run this one resumes.
    Recorded,
    /// The response cache.
    Cache,
}

/// Where answers come from.
enum Source {
    /// Live servers.
    Http {
        rt: tokio::runtime::Runtime,
        client: Arc<HttpClient>,
    },
    /// A recorded transcript, by `(key, attempt)`.
    Replay {
        entries: BTreeMap<(RequestKey, u32), Entry>,
    },
}

/// The `llm` / `replay` behaviour backend.
///
/// # Panics
/// `answer_batch` of the `llm` variant blocks on its own runtime, so it must not be called from
/// inside an async context (tokio panics there); the simulation calls it from plain systems.
pub struct LlmBackend {
    name: &'static str,
    source: Source,
    prompts: Prompts,
    options: LlmOptions,
    model: String,
    temperature: f64,
    max_tokens: u32,
    transcript: Option<Mutex<TranscriptWriter>>,
    stats: LlmStats,
    /// Answers an interrupted run already received, by `(key, attempt)` (resume only).
    recorded: BTreeMap<(RequestKey, u32), Entry>,
    /// Answers of identical earlier requests (`llm_options.response_cache`).
    cache: Option<ResponseCache>,
}

impl LlmBackend {
    fn common(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        kinds: &DecisionKinds,
    ) -> Result<Prompts, LlmSetupError> {
        let o = &cfg.llm_options;
        let dir = cfg.prompt_dir();
        Ok(Prompts::load(
            dir.as_deref(),
            names,
            o.prompt_token_budget as usize,
            kinds.iter().map(|k| (k.kind, k.template)),
        )?)
    }

    /// A backend calling the servers of `cfg` (`api_bases x api_keys`; keys from the
    /// `OPENAI_API_KEY` environment variable when `api_keys` is empty), recording every call to
    /// `transcript` when given. `names` maps agent ids to names (prompts and chat parsing);
    /// `kinds` are the decision kinds whose templates are loaded.
    ///
    /// # Errors
    /// [`LlmSetupError`] for missing templates, a runtime or client that cannot be built, or a
    /// transcript file that cannot be created.
    pub fn http(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        transcript: Option<&Path>,
        kinds: &DecisionKinds,
    ) -> Result<Self, LlmSetupError> {
        let prompts = Self::common(cfg, names, kinds)?;
        let o = &cfg.llm_options;
        let mut keys: Vec<String> = cfg
            .api_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .cloned()
            .collect();
        if keys.is_empty() {
            if let Ok(k) = std::env::var("OPENAI_API_KEY") {
                if !k.trim().is_empty() {
                    keys.push(k);
                }
            }
        }
        let opts = ClientOptions {
            protocol: o.protocol,
            temperature: cfg.temperature,
            max_tokens: cfg.max_token,
            seed: o.send_seed.then_some(cfg.seed),
            stop: o.stop.clone(),
            request_timeout: Duration::from_secs_f64(o.request_timeout_secs),
            connect_timeout: Duration::from_secs_f64(o.connect_timeout_secs),
            max_retries: cfg.max_retries,
            backoff_base: Duration::from_millis(o.backoff_base_ms),
            backoff_max: Duration::from_millis(o.backoff_max_ms),
            max_in_flight_per_endpoint: o.max_in_flight_per_endpoint as usize,
        };
        let rt = if o.worker_threads == 0 {
            // Calls run on the simulation thread while the phase waits (`block_on`): no
            // cross-thread wake-ups, one core.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(o.worker_threads as usize)
                .thread_name("recagent-llm")
                .enable_all()
                .build()
        }
        .map_err(|e| LlmSetupError::Setup(format!("cannot start the tokio runtime: {e}")))?;
        let client = {
            // reqwest needs a runtime context to build its connector.
            let _g = rt.enter();
            HttpClient::new(&cfg.api_bases, &keys, &o.models, &cfg.llm, opts)
                .map_err(|e| LlmSetupError::Setup(e.to_string()))?
        };
        for (i, e) in client.endpoints().iter().enumerate() {
            // Which transport (and so whether a proxy variable applies) shows in the log.
            tracing::info!(
                endpoint = i,
                base = %crate::config::redact_url(&e.base),
                model = %e.model,
                transport = e.transport(),
                "LLM endpoint"
            );
        }
        let transcript = match transcript {
            Some(p) => Some(Mutex::new(TranscriptWriter::create(p).map_err(|e| {
                LlmSetupError::Setup(format!("{}: cannot create transcript: {e}", p.display()))
            })?)),
            None => None,
        };
        Ok(Self {
            name: "llm",
            source: Source::Http {
                rt,
                client: Arc::new(client),
            },
            prompts,
            options: o.clone(),
            model: cfg.llm.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_token,
            transcript,
            stats: LlmStats::default(),
            recorded: BTreeMap::new(),
            cache: None,
        })
    }

    /// As [`LlmBackend::http`] for a resumed run: calls found in `split.later` (same key,
    /// attempt and prompt hash, with an answer) are answered from it instead of the servers; the
    /// transcript at `path` keeps its first `split.keep` bytes and is appended to (it is cut only
    /// when the resumed run makes its first batch, so a resume that fails to start loses nothing).
    ///
    /// # Errors
    /// As [`LlmBackend::http`].
    pub fn http_resuming(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        path: &Path,
        split: transcript::ResumeSplit,
        kinds: &DecisionKinds,
    ) -> Result<Self, LlmSetupError> {
        let mut b = Self::http(cfg, names, None, kinds)?;
        b.transcript = Some(Mutex::new(
            TranscriptWriter::resume(path, split.keep).map_err(|e| {
                LlmSetupError::Setup(format!("{}: cannot open transcript: {e}", path.display()))
            })?,
        ));
        b.recorded = split.later;
        Ok(b)
    }

    /// A backend answering from the transcript at `path` by key: every request's prompt is
    /// rendered and its hash compared with the recorded one; a mismatch or a missing entry fails
    /// that request (fallback) and is counted, and the first one is named in
    /// [`LlmUsage::first_replay_mismatch`].
    ///
    /// # Errors
    /// [`LlmSetupError`] for missing templates or an unreadable transcript.
    pub fn replay(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        path: &Path,
        kinds: &DecisionKinds,
    ) -> Result<Self, LlmSetupError> {
        let prompts = Self::common(cfg, names, kinds)?;
        let entries = transcript::load(path, kinds)?;
        Ok(Self {
            name: "replay",
            source: Source::Replay { entries },
            prompts,
            options: cfg.llm_options.clone(),
            model: cfg.llm.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_token,
            transcript: None,
            stats: LlmStats::default(),
            recorded: BTreeMap::new(),
            cache: None,
        })
    }

    /// Turns on the response cache at `path` when the configuration allows it: `temperature` 0
    /// (otherwise answers are samples, and reusing one would change the run's statistics) and
    /// one model on every endpoint (the endpoint is chosen by load, so the model must not
    /// depend on it). Returns whether it is on; the reason is logged when it is not.
    ///
    /// # Errors
    /// [`LlmSetupError::Setup`] when the cache file cannot be opened or created.
    pub fn enable_cache(&mut self, cfg: &SimConfig, path: &Path) -> Result<bool, LlmSetupError> {
        let Source::Http { client, .. } = &self.source else {
            return Ok(false);
        };
        if cfg.temperature != 0.0 {
            tracing::warn!(
                "llm_options.response_cache is ignored: temperature is {} (only answers at temperature 0 are reused)",
                cfg.temperature
            );
            return Ok(false);
        }
        let models: std::collections::BTreeSet<&str> = client
            .endpoints()
            .iter()
            .map(|e| e.model.as_str())
            .collect();
        if models.len() > 1 {
            tracing::warn!(
                "llm_options.response_cache is ignored: the endpoints serve different models ({})",
                models.into_iter().collect::<Vec<_>>().join(", ")
            );
            return Ok(false);
        }
        let model = models.into_iter().next().unwrap_or(self.model.as_str());
        let o = client.options();
        let cache = ResponseCache::open(
            path,
            model,
            self.protocol_name(),
            o.max_tokens,
            &o.stop,
            o.seed,
        )
        .map_err(|e| {
            LlmSetupError::Setup(format!(
                "{}: cannot open the response cache: {e}",
                path.display()
            ))
        })?;
        tracing::info!("response cache {}: {} answers", path.display(), cache.len());
        self.cache = Some(cache);
        Ok(true)
    }

    /// Loads the words templates of `kinds` ([`DecisionKinds::words_templates`]) beside the
    /// decision templates, from `llm_options.prompt_dir` when set (the hybrid backend).
    ///
    /// # Errors
    /// [`LlmSetupError::Prompt`] naming a missing template file.
    pub fn load_words_prompts(
        &mut self,
        cfg: &SimConfig,
        kinds: &DecisionKinds,
    ) -> Result<(), LlmSetupError> {
        let dir = cfg.prompt_dir();
        self.prompts
            .add_templates(dir.as_deref(), kinds.words_templates())?;
        Ok(())
    }

    /// The shared counters (insert into the world to read them from `Sim`).
    pub fn stats(&self) -> LlmStats {
        self.stats.clone()
    }

    /// The prompts (for dry renders).
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    fn protocol_name(&self) -> &'static str {
        match self.options.protocol {
            crate::llm::Protocol::Chat => "chat",
            crate::llm::Protocol::Completions => "completions",
        }
    }

    /// Runs calls until `next()` has no more and none is in flight. `next()` builds the next
    /// call (rendering and hashing a prompt); calls are sent as soon as built, in chunks of
    /// [`PIPELINE_CHUNK`], so the first answers are on their way while later prompts are still
    /// being rendered. Each result goes to `on_result(call, result, via)` as it arrives
    /// (completion order), on the calling thread, while other calls are still in flight; it may
    /// queue more calls for `next()` (a corrective retry, a chain's next request), which are
    /// sent at once. Callers must not let the order of these calls reach any output (the
    /// bridge fills per-request slots and sorts). Returns the replay mismatches
    /// `(count, first)`.
    fn run_calls(
        &self,
        next: &mut dyn FnMut() -> Option<Call>,
        on_result: &mut dyn FnMut(&Call, Result<Completion, Failure>, Via),
    ) -> (u64, Option<String>) {
        match &self.source {
            Source::Http { rt, client } => {
                use futures::stream::{FuturesUnordered, StreamExt};
                // Every call made, by a running number `k` (the tasks report it back).
                let mut calls: Vec<Call> = Vec::new();
                // With the cache on, a conversation repeated in the run is sent once; its
                // copies take the answer as cache hits: those waiting for their leader's
                // answer (`followers[leader]`), and those made after it came (`settled`).
                let mut leaders: std::collections::HashMap<String, usize> = Default::default();
                let mut followers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                let mut settled: BTreeMap<usize, Result<Completion, Failure>> = BTreeMap::new();
                rt.block_on(async {
                    let mut tasks = FuturesUnordered::new();
                    loop {
                        let mut made = 0;
                        while made < PIPELINE_CHUNK {
                            let Some(c) = next() else { break };
                            made += 1;
                            // Calls the interrupted run already made are answered from its
                            // transcript.
                            let known = match self.recorded.get(&(c.key, c.attempt)) {
                                Some(e) if e.prompt_hash == c.hash && e.answer.is_some() => {
                                    Some((completion_of(e), Via::Recorded))
                                }
                                _ => self
                                    .cache
                                    .as_ref()
                                    .and_then(|k| k.get(&c.hash))
                                    .map(|hit| (hit, Via::Cache)),
                            };
                            let leader = match (&known, &self.cache) {
                                (None, Some(_)) => leaders.get(&c.hash).copied(),
                                _ => None,
                            };
                            let k = calls.len();
                            calls.push(c);
                            let c = &calls[k];
                            if let Some((done, via)) = known {
                                on_result(c, Ok(done), via);
                            } else if let Some(l) = leader {
                                match settled.get(&l) {
                                    Some(Ok(done)) => on_result(c, Ok(done.clone()), Via::Cache),
                                    Some(Err(f)) => on_result(c, Err(f.clone()), Via::Live),
                                    None => followers.entry(l).or_default().push(k),
                                }
                            } else {
                                if self.cache.is_some() {
                                    leaders.insert(c.hash.clone(), k);
                                }
                                let cl = client.clone();
                                let (key, attempt, msgs, constraint) =
                                    (c.key, c.attempt, c.messages.clone(), c.constraint.clone());
                                let task = rt.spawn(async move {
                                    let t = std::time::Instant::now();
                                    let r = cl
                                        .complete_with(&key, attempt, &msgs, constraint.as_deref())
                                        .await;
                                    r.map_err(|f: CallFailure| Failure {
                                        tries: f.error.tries(),
                                        message: f.error.to_string(),
                                        latency_ms: t.elapsed().as_millis() as u64,
                                        endpoint: f.endpoint.and_then(|e| {
                                            let base = &cl.endpoints().get(e)?.base;
                                            Some((e, redacted_endpoint(base)))
                                        }),
                                    })
                                });
                                tasks.push(async move { (k, task.await) });
                            }
                        }
                        if made > 0 {
                            // Takes the answers already in, then lets the calls just spawned
                            // start (on a current-thread runtime they run only while this
                            // future yields).
                            while let Some(Some((k, r))) =
                                futures::FutureExt::now_or_never(tasks.next())
                            {
                                let r = joined(r);
                                deliver(&calls, &followers, on_result, k, &r);
                                if self.cache.is_some() {
                                    settled.insert(k, r);
                                }
                            }
                            tokio::task::yield_now().await;
                            continue;
                        }
                        // Nothing left to make: wait for an answer (which may queue more).
                        match tasks.next().await {
                            Some((k, r)) => {
                                let r = joined(r);
                                deliver(&calls, &followers, on_result, k, &r);
                                if self.cache.is_some() {
                                    settled.insert(k, r);
                                }
                            }
                            None => break,
                        }
                    }
                });
                (0, None)
            }
            Source::Replay { entries } => {
                let (mut mismatches, mut first) = (0u64, None);
                while let Some(c) = next() {
                    let mut miss = |why: String| {
                        mismatches += 1;
                        let msg = format!("replay: key {:?} attempt {}: {why}", c.key, c.attempt);
                        if first.is_none() {
                            first = Some(msg.clone());
                        }
                        Err(Failure {
                            message: msg,
                            tries: 0,
                            latency_ms: 0,
                            endpoint: None,
                        })
                    };
                    let r = match entries.get(&(c.key, c.attempt)) {
                        None => miss("no transcript entry".into()),
                        Some(e) if e.prompt_hash != c.hash => miss(format!(
                            "prompt hash mismatch (recorded {}, rendered {})",
                            &e.prompt_hash[..12.min(e.prompt_hash.len())],
                            &c.hash[..12]
                        )),
                        Some(e) => match &e.answer {
                            Some(_) => Ok(completion_of(e)),
                            None => Err(Failure {
                                message: e.error.clone().unwrap_or_default(),
                                tries: e.tries,
                                latency_ms: e.latency_ms,
                                endpoint: e.endpoint.zip(e.endpoint_base.clone()),
                            }),
                        },
                    };
                    let via = match entries.get(&(c.key, c.attempt)) {
                        Some(e) if e.cached => Via::Cache,
                        _ => Via::Live,
                    };
                    on_result(&c, r, via);
                }
                (mismatches, first)
            }
        }
    }
}

/// A task's result; a task that panicked is a failed call (counted, recorded, fallback), and
/// the run goes on.
fn joined(
    r: Result<Result<Completion, Failure>, tokio::task::JoinError>,
) -> Result<Completion, Failure> {
    r.unwrap_or_else(|e| {
        tracing::error!("an LLM call ended without a result: {e}");
        Err(Failure {
            message: "the call ended without a result (its task panicked)".into(),
            tries: 1,
            latency_ms: 0,
            endpoint: None,
        })
    })
}

/// Calls built and spawned before the run looks at the answers that already came back.
const PIPELINE_CHUNK: usize = 32;

/// Hands a live result to its call and to the calls that share its conversation.
fn deliver(
    calls: &[Call],
    followers: &BTreeMap<usize, Vec<usize>>,
    on_result: &mut dyn FnMut(&Call, Result<Completion, Failure>, Via),
    k: usize,
    r: &Result<Completion, Failure>,
) {
    for &f in followers.get(&k).into_iter().flatten() {
        let via = if r.is_ok() { Via::Cache } else { Via::Live };
        on_result(&calls[f], r.clone(), via);
    }
    on_result(&calls[k], r.clone(), Via::Live);
}

/// The completion a transcript entry records.
fn completion_of(e: &Entry) -> Completion {
    Completion {
        text: e.answer.clone().unwrap_or_default(),
        usage: e.usage,
        latency_ms: e.latency_ms,
        endpoint: e.endpoint.unwrap_or(0),
        tries: e.tries,
    }
}

impl BehaviourBackend for LlmBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch) {
        self.answer_calls(ctx, &Decisions(batch));
    }

    fn runs_chains(&self) -> bool {
        self.options.chains
    }

    fn answer_chains(&self, ctx: &Context<'_>, chains: &dyn Chains) {
        self.answer_calls(ctx, &ChainCalls(chains));
    }
}

/// The calls of one `answer_batch`: every request's decision ([`Decisions`]), or the words of
/// some requests whose decisions are made ([`Words`]). Indices are the calls', `0..len()`.
trait Calls {
    /// The first requests: `0..starts()` (more may follow, [`Calls::settle`]).
    fn starts(&self) -> usize;
    fn key(&self, j: usize) -> RequestKey;
    /// The name usage is counted under (the kind, or its words template).
    fn kind(&self) -> &'static str;
    fn render(&self, j: usize, prompts: &Prompts, ctx: &Context<'_>) -> Rendered;
    fn constraint(&self, j: usize, mode: StructuredOutput) -> Option<Constraint>;
    fn accept(&self, j: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError>;
    fn fail(&self, j: usize, why: BackendError);
    /// Request `j` has its final answer or failure: the index of the request that follows it
    /// (a chain's next), if any.
    fn settle(&self, j: usize) -> Option<usize> {
        let _ = j;
        None
    }
    /// The step of request `j` in its chain (transcript order).
    fn generation(&self, j: usize) -> u32 {
        let _ = j;
        0
    }
}

/// Chains of requests ([`Chains`]): each request is a batch of one.
struct ChainCalls<'a>(&'a dyn Chains);

impl ChainCalls<'_> {
    fn on<R>(&self, j: usize, f: impl FnOnce(&dyn Batch) -> R) -> Option<R> {
        self.0.batch(j).map(|b| f(&*b))
    }
}

impl Calls for ChainCalls<'_> {
    fn starts(&self) -> usize {
        self.0.starts()
    }
    fn key(&self, j: usize) -> RequestKey {
        // Every request the run makes is one the chains built (and not yet settled).
        self.on(j, |b| b.key(0)).unwrap_or(RequestKey {
            round: 0,
            phase: crate::decision::Phase::new("", 0),
            user: UserId(0),
            step: 0,
        })
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn render(&self, j: usize, prompts: &Prompts, ctx: &Context<'_>) -> Rendered {
        self.on(j, |b| b.render(0, prompts, ctx))
            .unwrap_or(Rendered {
                text: String::new(),
                dropped_memories: 0,
                over_budget: false,
            })
    }
    fn constraint(&self, j: usize, mode: StructuredOutput) -> Option<Constraint> {
        self.on(j, |b| b.constraint(0, mode)).flatten()
    }
    fn accept(&self, j: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError> {
        self.on(j, |b| b.accept(0, raw, ctx))
            .unwrap_or_else(|| Err(ParseError("the request was settled already".into())))
    }
    fn fail(&self, j: usize, why: BackendError) {
        self.on(j, |b| b.fail(0, why));
    }
    fn settle(&self, j: usize) -> Option<usize> {
        self.0.settle(j)
    }
    fn generation(&self, j: usize) -> u32 {
        self.0.generation(j)
    }
}

/// Every request of a batch, for its decision.
struct Decisions<'a>(&'a dyn Batch);

impl Calls for Decisions<'_> {
    fn starts(&self) -> usize {
        self.0.len()
    }
    fn key(&self, j: usize) -> RequestKey {
        self.0.key(j)
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn render(&self, j: usize, prompts: &Prompts, ctx: &Context<'_>) -> Rendered {
        self.0.render(j, prompts, ctx)
    }
    fn constraint(&self, j: usize, mode: StructuredOutput) -> Option<Constraint> {
        self.0.constraint(j, mode)
    }
    fn accept(&self, j: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError> {
        self.0.accept(j, raw, ctx)
    }
    fn fail(&self, j: usize, why: BackendError) {
        self.0.fail(j, why);
    }
}

/// The words of the requests `picks` of an answered batch (hybrid backend).
struct Words<'a> {
    batch: &'a dyn Batch,
    picks: &'a [usize],
    name: &'static str,
}

impl Calls for Words<'_> {
    fn starts(&self) -> usize {
        self.picks.len()
    }
    fn key(&self, j: usize) -> RequestKey {
        self.batch.key(self.picks[j])
    }
    fn kind(&self) -> &'static str {
        self.name
    }
    fn render(&self, j: usize, prompts: &Prompts, ctx: &Context<'_>) -> Rendered {
        // `answer_words` only picks answered requests of kinds with words.
        self.batch
            .render_words(self.picks[j], prompts, ctx)
            .unwrap_or(Rendered {
                text: String::new(),
                dropped_memories: 0,
                over_budget: false,
            })
    }
    fn constraint(&self, j: usize, mode: StructuredOutput) -> Option<Constraint> {
        self.batch.words_constraint(self.picks[j], mode)
    }
    fn accept(&self, j: usize, raw: &str, ctx: &Context<'_>) -> Result<(), ParseError> {
        self.batch.accept_words(self.picks[j], raw, ctx)
    }
    fn fail(&self, j: usize, why: BackendError) {
        self.batch.fail_words(self.picks[j], why);
    }
}

impl LlmBackend {
    /// Asks for the words ([`crate::decision::Decision::WORDS`]) of the requests `picks` of
    /// `batch`, whose decisions are already made (answered, e.g. by the offline model): each
    /// one's words prompt is rendered from its answer and sent, as decisions are (waves,
    /// corrective retries, transcript under the request's key, replay, response cache); a
    /// request whose words fail keeps the words of its answer ([`Batch::fail_words`]).
    /// Nothing happens for a kind without words; unanswered picks are skipped.
    pub fn answer_words(&self, ctx: &Context<'_>, batch: &dyn Batch, picks: &[usize]) {
        let Some(name) = batch.words_name() else {
            return;
        };
        let picks: Vec<usize> = picks
            .iter()
            .copied()
            .filter(|&i| i < batch.len() && batch.is_answered(i))
            .collect();
        if picks.is_empty() {
            return;
        }
        self.answer_calls(
            ctx,
            &Words {
                batch,
                picks: &picks,
                name,
            },
        );
    }

    fn answer_calls(&self, ctx: &Context<'_>, batch: &dyn Calls) {
        let usage = RefCell::new(LlmUsage::default());
        if let Some(t) = &self.transcript {
            // Setup is over once agents ask: the transcript of a previous run (or the part of an
            // interrupted one after its checkpoint) is dropped now, not when the backend was
            // built, so a run that fails to start leaves it alone.
            if let Ok(mut w) = t.lock() {
                if let Err(e) = w.start() {
                    tracing::error!("{}: cannot write the transcript: {e}", w.path().display());
                }
            }
        }
        // Each request's conversation, filled when its prompt is first rendered (inside
        // `run_calls`, so sending starts before the last prompt is rendered), shared with the
        // tasks that send it; a corrective retry builds a longer one. Each request's answer
        // shape is found then too (it needs what the render kept) and sent with every attempt.
        // Both grow with the requests (chains build theirs as they go).
        let convs: RefCell<Vec<Option<Arc<[PromptMessage]>>>> = RefCell::new(Vec::new());
        let constraints: RefCell<Vec<Option<Arc<Constraint>>>> = RefCell::new(Vec::new());
        let mode = self.options.structured_output;
        // Calls to make: (request, attempt), first requests in key order, then as results
        // come in (retries and chains' next requests).
        let queue: RefCell<std::collections::VecDeque<(usize, u32)>> =
            RefCell::new((0..batch.starts()).map(|i| (i, 0)).collect());
        let over_budget = std::cell::Cell::new(0u64);
        let mut next = || {
            let (i, attempt) = queue.borrow_mut().pop_front()?;
            let mut convs = convs.borrow_mut();
            let mut constraints = constraints.borrow_mut();
            if convs.len() <= i {
                convs.resize(i + 1, None);
                constraints.resize(i + 1, None);
            }
            let conv = convs[i].get_or_insert_with(|| {
                let mut p = batch.render(i, &self.prompts, ctx);
                over_budget.set(over_budget.get() + u64::from(p.over_budget));
                constraints[i] = batch.constraint(i, mode).map(Arc::new);
                if let Some(c) = &constraints[i] {
                    // The template asks for its tags; a constrained model writes JSON, so the
                    // prompt says which.
                    p.text.push('\n');
                    p.text.push_str(&c.instruction());
                }
                Arc::from([PromptMessage::user(p.text)])
            });
            let constraint = constraints[i].clone();
            Some(Call {
                slot: i,
                key: batch.key(i),
                attempt,
                hash: request_hash(conv, constraint.as_deref()),
                messages: conv.clone(),
                constraint,
            })
        };
        // Every call's transcript entry (and fresh answer, for the cache), with the order
        // they are written in: step-by-step batches' order (a chain's step, then attempt,
        // then key), never completion order.
        let mut entries: Vec<((u32, u32, RequestKey), Entry)> = Vec::new();
        let mut fresh: Vec<((u32, u32, RequestKey), String, String, Usage)> = Vec::new();
        let mut handle = |call: &Call, res: Result<Completion, Failure>, via: Via| {
            let (i, attempt) = (call.slot, call.attempt);
            let key = call.key;
            let mut usage = usage.borrow_mut();
            usage.calls += 1;
            let order = (batch.generation(i), attempt, key);
            let mut entry = Entry {
                key,
                attempt,
                prompt_hash: call.hash.clone(),
                model: self.model.clone(),
                protocol: self.protocol_name().into(),
                temperature: self.temperature,
                max_tokens: self.max_tokens,
                endpoint: None,
                endpoint_base: None,
                structured_output: call.constraint.as_ref().map(|c| c.mode.name().to_string()),
                answer: None,
                error: None,
                usage: Default::default(),
                latency_ms: 0,
                tries: 0,
                cached: via == Via::Cache,
            };
            let mut done = true;
            match res {
                Err(f) => {
                    usage.failed_calls += 1;
                    usage.http_retries += u64::from(f.tries.saturating_sub(1));
                    batch.fail(i, BackendError(format!("LLM call failed: {}", f.message)));
                    entry.error = Some(f.message);
                    entry.tries = f.tries;
                    entry.latency_ms = f.latency_ms;
                    if let Some((e, base)) = f.endpoint {
                        entry.endpoint = Some(e);
                        entry.endpoint_base = Some(base);
                    }
                }
                Ok(c) => {
                    if via == Via::Cache {
                        // Paid for by an earlier call: no tokens, no latency here.
                        usage.cache_hits += 1;
                    } else {
                        usage
                            .per_kind
                            .entry(batch.kind().to_string())
                            .or_default()
                            .add(c.usage);
                        usage.per_round.entry(key.round).or_default().add(c.usage);
                        usage.total.add(c.usage);
                        usage.http_retries += u64::from(c.tries.saturating_sub(1));
                        usage.latency_ms_sum += c.latency_ms;
                        entry.endpoint = Some(c.endpoint);
                        entry.usage = c.usage;
                        entry.latency_ms = c.latency_ms;
                        entry.tries = c.tries;
                        if via == Via::Live && self.cache.is_some() {
                            fresh.push((order, call.hash.clone(), c.text.clone(), c.usage));
                        }
                    }
                    if let Err(why) = batch.accept(i, &c.text, ctx) {
                        usage.parse_failures += 1;
                        if attempt < self.options.parse_retries {
                            usage.corrective_retries += 1;
                            let mut longer = call.messages.to_vec();
                            longer.push(PromptMessage::assistant(c.text.clone()));
                            longer.push(PromptMessage::user(self.prompts.correction(&why.0)));
                            convs.borrow_mut()[i] = Some(Arc::from(longer));
                            queue.borrow_mut().push_back((i, attempt + 1));
                            done = false;
                        } else {
                            usage.unparsed_requests += 1;
                            let raw: String = c.text.chars().take(500).collect();
                            batch.fail(
                                i,
                                BackendError(format!(
                                    "unparseable answer after {attempt} corrective retries: {why}; raw: {raw:?}"
                                )),
                            );
                        }
                    }
                    entry.answer = Some(c.text);
                }
            }
            entries.push((order, entry));
            drop(usage);
            if done {
                if let Some(n) = batch.settle(i) {
                    queue.borrow_mut().push_back((n, 0));
                }
            }
        };
        let (mismatches, first_mismatch) = self.run_calls(&mut next, &mut handle);
        let mut usage = usage.into_inner();
        usage.replay_mismatches += mismatches;
        if usage.first_replay_mismatch.is_none() {
            usage.first_replay_mismatch = first_mismatch;
        }
        entries.sort_by_key(|(o, _)| *o);
        let entries: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
        if let Some(t) = &self.transcript {
            if let Ok(mut w) = t.lock() {
                if let Err(e) = w.append(&entries) {
                    tracing::error!("cannot append to the transcript: {e}");
                }
            }
        }
        if let Some(cache) = &self.cache {
            fresh.sort_by_key(|f| f.0);
            cache.insert(
                fresh
                    .iter()
                    .map(|(_, h, t, u)| (h.as_str(), t.clone(), *u))
                    .collect(),
            );
        }
        usage.over_budget = over_budget.get();
        if let Ok(mut s) = self.stats.0.lock() {
            merge(&mut s, usage);
        }
    }
}

fn merge(s: &mut LlmUsage, u: LlmUsage) {
    for (r, x) in u.per_round {
        s.per_round.entry(r).or_default().add(x);
    }
    for (k, x) in u.per_kind {
        s.per_kind.entry(k).or_default().add(x);
    }
    s.total.add(u.total);
    s.calls += u.calls;
    s.failed_calls += u.failed_calls;
    s.http_retries += u.http_retries;
    s.parse_failures += u.parse_failures;
    s.corrective_retries += u.corrective_retries;
    s.cache_hits += u.cache_hits;
    s.unparsed_requests += u.unparsed_requests;
    s.over_budget += u.over_budget;
    s.replay_mismatches += u.replay_mismatches;
    if s.first_replay_mismatch.is_none() {
        s.first_replay_mismatch = u.first_replay_mismatch;
    }
    s.latency_ms_sum += u.latency_ms_sum;
}

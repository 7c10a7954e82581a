//! [`LlmBackend`]: the behaviour backend that asks an LLM (or replays a transcript).
//!
//! One `answer_batch` call = one phase step of the simulation:
//! 1. every request is rendered into a prompt (on the calling thread; prompts borrow the world);
//! 2. all prompts are sent at once: each call is a task spawned on the backend's own tokio runtime,
//!    bounded per endpoint by a semaphore, on the least-loaded endpoint; the calling thread waits
//!    for the batch (`block_on`) — the phase waits for its answers, the calls never wait for each
//!    other, so one slow call delays nothing but its own agent;
//! 3. results are collected in request order (not completion order), written to the transcript,
//!    counted, and parsed; answers that do not parse get a corrective retry (all of a batch's
//!    retries are sent concurrently as a second wave), then `Err` (fallback in `Behaviour::ask`).
//!
//! The runtime is built here, never inside another runtime, and dropped with the backend from
//! plain synchronous code (the world's resources).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::behaviour::{
    fits, Answer, BackendError, BehaviourBackend, Context, Request, RequestKey,
};
use crate::config::SimConfig;
use crate::ids::UserId;
use crate::llm::http::{ClientOptions, Completion, HttpClient, LlmError, PromptMessage};
use crate::llm::parse::parse;
use crate::llm::prompts::Prompts;
use crate::llm::transcript::{self, prompt_hash, Entry, TranscriptWriter};
use crate::llm::{LlmOptions, LlmSetupError, LlmStats, LlmUsage};

/// One call to make.
struct Call {
    key: RequestKey,
    attempt: u32,
    messages: Vec<PromptMessage>,
    hash: String,
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
}

impl LlmBackend {
    fn common(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
    ) -> Result<Prompts, LlmSetupError> {
        let o = &cfg.llm_options;
        let dir = o
            .prompt_dir
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| cfg.resolve(p));
        Ok(Prompts::load(
            dir.as_deref(),
            names,
            o.prompt_token_budget as usize,
        )?)
    }

    /// A backend calling the servers of `cfg` (`api_bases x api_keys`; keys from the
    /// `OPENAI_API_KEY` environment variable when `api_keys` is empty), recording every call to
    /// `transcript` when given. `names` maps agent ids to names (prompts and chat parsing).
    ///
    /// # Errors
    /// [`LlmSetupError`] for missing templates, a runtime or client that cannot be built, or a
    /// transcript file that cannot be created.
    pub fn http(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        transcript: Option<&Path>,
    ) -> Result<Self, LlmSetupError> {
        let prompts = Self::common(cfg, names)?;
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.worker_threads as usize)
            .thread_name("recagent-llm")
            .enable_all()
            .build()
            .map_err(|e| LlmSetupError::Setup(format!("cannot start the tokio runtime: {e}")))?;
        let client = {
            // reqwest needs a runtime context to build its connector.
            let _g = rt.enter();
            HttpClient::new(&cfg.api_bases, &keys, &o.models, &cfg.llm, opts)
                .map_err(|e| LlmSetupError::Setup(e.to_string()))?
        };
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
        })
    }

    /// As [`LlmBackend::http`] for a resumed run: calls found in `recorded` (same key, attempt
    /// and prompt hash, with an answer) are answered from it instead of the servers; the
    /// transcript at `path` is appended to.
    ///
    /// # Errors
    /// As [`LlmBackend::http`].
    pub fn http_resuming(
        cfg: &SimConfig,
        names: Arc<BTreeMap<UserId, Arc<str>>>,
        path: &Path,
        recorded: BTreeMap<(RequestKey, u32), Entry>,
    ) -> Result<Self, LlmSetupError> {
        let mut b = Self::http(cfg, names, None)?;
        b.transcript = Some(Mutex::new(TranscriptWriter::append_to(path).map_err(
            |e| LlmSetupError::Setup(format!("{}: cannot open transcript: {e}", path.display())),
        )?));
        b.recorded = recorded;
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
    ) -> Result<Self, LlmSetupError> {
        let prompts = Self::common(cfg, names)?;
        let entries = transcript::load(path)?;
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
        })
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

    /// Runs a wave of calls, results in call order.
    fn complete_all(
        &self,
        calls: &[Call],
        usage: &mut LlmUsage,
    ) -> Vec<Result<Completion, String>> {
        match &self.source {
            Source::Http { rt, client } => {
                // Calls the interrupted run already made are answered from its transcript.
                let mut done: Vec<Option<Result<Completion, String>>> = calls
                    .iter()
                    .map(|c| match self.recorded.get(&(c.key, c.attempt)) {
                        Some(e) if e.prompt_hash == c.hash && e.answer.is_some() => {
                            Some(Ok(Completion {
                                text: e.answer.clone().unwrap_or_default(),
                                usage: e.usage,
                                latency_ms: e.latency_ms,
                                endpoint: e.endpoint.unwrap_or(0),
                                tries: e.tries,
                            }))
                        }
                        _ => None,
                    })
                    .collect();
                let jobs: Vec<_> = calls
                    .iter()
                    .zip(&done)
                    .filter(|(_, d)| d.is_none())
                    .map(|(c, _)| (c.key, c.attempt, c.messages.clone()))
                    .collect();
                let client = client.clone();
                let live = rt.block_on(async move {
                    let handles: Vec<_> = jobs
                        .into_iter()
                        .map(|(key, attempt, msgs)| {
                            let cl = client.clone();
                            tokio::spawn(async move { cl.complete(&key, attempt, &msgs).await })
                        })
                        .collect();
                    let mut out = Vec::with_capacity(handles.len());
                    for h in handles {
                        out.push(match h.await {
                            Ok(r) => r.map_err(|e: LlmError| e.to_string()),
                            Err(e) => Err(format!("LLM task failed: {e}")),
                        });
                    }
                    out
                });
                let mut live = live.into_iter();
                done.iter_mut()
                    .map(|d| {
                        d.take()
                            .or_else(|| live.next())
                            .unwrap_or_else(|| Err("missing result".into()))
                    })
                    .collect()
            }
            Source::Replay { entries } => calls
                .iter()
                .map(|c| {
                    let miss = |why: String, usage: &mut LlmUsage| {
                        usage.replay_mismatches += 1;
                        let msg = format!("replay: key {:?} attempt {}: {why}", c.key, c.attempt);
                        if usage.first_replay_mismatch.is_none() {
                            usage.first_replay_mismatch = Some(msg.clone());
                        }
                        Err(msg)
                    };
                    match entries.get(&(c.key, c.attempt)) {
                        None => miss("no transcript entry".into(), usage),
                        Some(e) if e.prompt_hash != c.hash => miss(
                            format!(
                                "prompt hash mismatch (recorded {}, rendered {})",
                                &e.prompt_hash[..12.min(e.prompt_hash.len())],
                                &c.hash[..12]
                            ),
                            usage,
                        ),
                        Some(e) => match &e.answer {
                            Some(t) => Ok(Completion {
                                text: t.clone(),
                                usage: e.usage,
                                latency_ms: e.latency_ms,
                                endpoint: e.endpoint.unwrap_or(0),
                                tries: e.tries,
                            }),
                            None => Err(e.error.clone().unwrap_or_default()),
                        },
                    }
                })
                .collect(),
        }
    }
}

impl BehaviourBackend for LlmBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn answer_batch(
        &self,
        ctx: &Context<'_>,
        batch: &[Request<'_>],
    ) -> Vec<Result<Answer, BackendError>> {
        let mut usage = LlmUsage::default();
        let rendered: Vec<_> = batch.iter().map(|r| self.prompts.render(ctx, r)).collect();
        usage.over_budget = rendered.iter().filter(|r| r.over_budget).count() as u64;
        let mut convs: Vec<Vec<PromptMessage>> = rendered
            .iter()
            .map(|r| vec![PromptMessage::user(r.text.clone())])
            .collect();
        let mut out: Vec<Option<Result<Answer, BackendError>>> = vec![None; batch.len()];
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let calls: Vec<Call> = pending
                .iter()
                .map(|&i| Call {
                    key: batch[i].key,
                    attempt,
                    hash: prompt_hash(&convs[i]),
                    messages: convs[i].clone(),
                })
                .collect();
            let results = self.complete_all(&calls, &mut usage);
            let mut entries = Vec::with_capacity(calls.len());
            let mut next = Vec::new();
            for ((&i, call), res) in pending.iter().zip(&calls).zip(results) {
                usage.calls += 1;
                let key = batch[i].key;
                let mut entry = Entry {
                    key,
                    attempt,
                    prompt_hash: call.hash.clone(),
                    model: self.model.clone(),
                    protocol: self.protocol_name().into(),
                    temperature: self.temperature,
                    max_tokens: self.max_tokens,
                    endpoint: None,
                    answer: None,
                    error: None,
                    usage: Default::default(),
                    latency_ms: 0,
                    tries: 0,
                };
                match res {
                    Err(e) => {
                        usage.failed_calls += 1;
                        entry.error = Some(e.clone());
                        out[i] = Some(Err(BackendError(format!("LLM call failed: {e}"))));
                    }
                    Ok(c) => {
                        let p = key.phase as usize;
                        usage.per_phase[p].add(c.usage);
                        usage.per_round.entry(key.round).or_default().add(c.usage);
                        usage.total.add(c.usage);
                        usage.http_retries += u64::from(c.tries.saturating_sub(1));
                        usage.latency_ms_sum += c.latency_ms;
                        entry.endpoint = Some(c.endpoint);
                        entry.usage = c.usage;
                        entry.latency_ms = c.latency_ms;
                        entry.tries = c.tries;
                        let parsed = parse(&rendered[i].spec, &c.text, ctx.catalog).and_then(|a| {
                            if fits(&batch[i], &a) {
                                Ok(a)
                            } else {
                                Err(crate::llm::parse::ParseError(
                                    "the answer does not fit the options offered".into(),
                                ))
                            }
                        });
                        match parsed {
                            Ok(a) => out[i] = Some(Ok(a)),
                            Err(why) => {
                                usage.parse_failures += 1;
                                if attempt < self.options.parse_retries {
                                    usage.corrective_retries += 1;
                                    convs[i].push(PromptMessage::assistant(c.text.clone()));
                                    convs[i]
                                        .push(PromptMessage::user(self.prompts.correction(&why.0)));
                                    next.push(i);
                                } else {
                                    usage.unparsed_requests += 1;
                                    let raw: String = c.text.chars().take(500).collect();
                                    out[i] = Some(Err(BackendError(format!(
                                        "unparseable answer after {attempt} corrective retries: {why}; raw: {raw:?}"
                                    ))));
                                }
                            }
                        }
                        entry.answer = Some(c.text);
                    }
                }
                entries.push(entry);
            }
            if let Some(t) = &self.transcript {
                if let Ok(mut w) = t.lock() {
                    if let Err(e) = w.append(&entries) {
                        tracing::error!("cannot append to the transcript: {e}");
                    }
                }
            }
            pending = next;
            attempt += 1;
        }
        if let Ok(mut s) = self.stats.0.lock() {
            merge(&mut s, usage);
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(BackendError("no answer".into()))))
            .collect()
    }
}

fn merge(s: &mut LlmUsage, u: LlmUsage) {
    for (r, x) in u.per_round {
        s.per_round.entry(r).or_default().add(x);
    }
    for (a, b) in s.per_phase.iter_mut().zip(u.per_phase) {
        a.add(b);
    }
    s.total.add(u.total);
    s.calls += u.calls;
    s.failed_calls += u.failed_calls;
    s.http_retries += u.http_retries;
    s.parse_failures += u.parse_failures;
    s.corrective_retries += u.corrective_retries;
    s.unparsed_requests += u.unparsed_requests;
    s.over_budget += u.over_budget;
    s.replay_mismatches += u.replay_mismatches;
    if s.first_replay_mismatch.is_none() {
        s.first_replay_mismatch = u.first_replay_mismatch;
    }
    s.latency_ms_sum += u.latency_ms_sum;
}

//! Role play (the original's `play_role`): a person takes over one agent.
//!
//! [`RolePlayBackend`] is a behaviour-backend decorator. For a batch of a kind a person can
//! answer ([`ROLE_KINDS`]), each request of the played agent is rendered with the kind's own
//! prompt (which lists the options: the page's items, the friends available, the rating
//! format) and published as a [`Pending`] request; the engine then waits for the person's
//! answer, up to the timeout. The answer is text in the kind's answer form (`[BUY]:: 2`,
//! `RATING: 4; FEELING: ...`), filled in with [`Batch::accept`], so it is parsed and checked
//! exactly like an LLM's answer (an answer that does not parse is refused and the person may
//! try again). When the time is up, or nobody plays, the inner backend answers.
//!
//! Every accepted answer is kept as a [`Played`] entry (`roleplay.jsonl` beside the
//! interactions); a backend made with [`RolePlayBackend::replaying`] fills the same requests
//! with the same text again, so a demo session is reproduced from its seed, its transcript,
//! its intervention log and its role-play log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::behaviour::{Batch, BehaviourBackend, Context};
use crate::decision::prompt::Prompts;

/// The decision kinds a person answers when playing an agent; the others (memory
/// importance, reflection, interviews) stay with the agent's own backend.
pub const ROLE_KINDS: &[&str] = &["top", "page", "feel", "social", "chat", "post"];

/// The role-play log's file name (beside `interaction.csv`).
pub const LOG_FILE: &str = "roleplay.jsonl";

/// One answer a person gave, as written to `roleplay.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Played {
    /// Round of the request.
    pub round: u32,
    /// Phase name (`Watch`, `Feel`, ...).
    pub phase: String,
    /// The played agent's user id.
    pub user: u32,
    /// Step within the phase.
    pub step: u16,
    /// Decision kind.
    pub kind: String,
    /// The answer text, in the kind's answer form.
    pub answer: String,
}

impl Played {
    fn key(&self) -> (u32, String, u32, u16) {
        (self.round, self.phase.clone(), self.user, self.step)
    }
}

/// A request waiting for the person's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Pending {
    /// Identifies this request in [`RolePlay::answer`].
    pub id: u64,
    /// The played agent.
    pub agent: u32,
    /// Round of the request.
    pub round: u32,
    /// Decision kind (`page`, `feel`, ...).
    pub kind: &'static str,
    /// The prompt the agent's LLM would see (its options and the answer format).
    pub prompt: String,
    /// Ready-made answers (label, answer text), derived from the prompt.
    pub choices: Vec<Choice>,
    /// Seconds left when it was published.
    pub timeout_secs: u64,
}

/// A ready-made answer.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    /// What the button says.
    pub label: String,
    /// The answer text sent.
    pub answer: String,
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No request waits (or another one does).
    #[error("no role-play request {0} is waiting (it was answered, timed out, or never existed)")]
    NotWaiting(u64),
    /// The answer does not parse or does not fit the options.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Default)]
struct State {
    agent: Option<u32>,
    pending: Option<Pending>,
    answer: Option<(
        u64,
        String,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    )>,
    next_id: u64,
    played: Vec<Played>,
    cancelled: bool,
}

/// What the server and the backend share: who is played, the waiting request, the answers.
pub struct RolePlay {
    state: Mutex<State>,
    cv: Condvar,
    timeout: Duration,
    log: Mutex<Option<PathBuf>>,
    notify: Box<dyn Fn(Option<&Pending>) + Send + Sync>,
}

impl RolePlay {
    /// Role play waiting `timeout` for each answer; `notify` is called when a request is
    /// published (`Some`) and when it is answered or timed out (`None`).
    pub fn new(timeout: Duration, notify: Box<dyn Fn(Option<&Pending>) + Send + Sync>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            timeout,
            log: Mutex::new(None),
            notify,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the role-play log to `path` from now on (the file is rewritten on each answer).
    pub fn set_log(&self, path: Option<PathBuf>) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = path;
    }

    /// The agent a person plays.
    pub fn agent(&self) -> Option<u32> {
        self.lock().agent
    }

    /// Plays `agent` from its next decision on (`None`: nobody).
    pub fn set_agent(&self, agent: Option<u32>) {
        let mut st = self.lock();
        st.agent = agent;
        if st.pending.as_ref().is_some_and(|p| Some(p.agent) != agent) {
            st.cancelled = true;
            self.cv.notify_all();
        }
    }

    /// The waiting request.
    pub fn pending(&self) -> Option<Pending> {
        self.lock().pending.clone()
    }

    /// The answers given so far, in order.
    pub fn played(&self) -> Vec<Played> {
        self.lock().played.clone()
    }

    /// Forgets the answers (a new session).
    pub fn clear(&self) {
        let mut st = self.lock();
        st.played.clear();
        st.cancelled = st.pending.is_some();
        self.cv.notify_all();
    }

    /// Stops waiting for the current request (its agent's backend answers).
    pub fn cancel(&self) {
        let mut st = self.lock();
        if st.pending.is_some() {
            st.cancelled = true;
            self.cv.notify_all();
        }
    }

    /// Hands the person's answer to the waiting request `id`; resolves once it is parsed.
    ///
    /// # Errors
    /// [`AnswerError::NotWaiting`] when `id` is not the waiting request.
    pub fn answer(
        &self,
        id: u64,
        text: String,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), String>>, AnswerError> {
        let mut st = self.lock();
        if st.pending.as_ref().map(|p| p.id) != Some(id) || st.answer.is_some() {
            return Err(AnswerError::NotWaiting(id));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        st.answer = Some((id, text, tx));
        self.cv.notify_all();
        Ok(rx)
    }

    fn write_log(&self, played: &[Played]) {
        let path = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(path) = path else { return };
        let mut text = String::new();
        for p in played {
            text.push_str(&serde_json::to_string(p).expect("invariant: plain data serialises"));
            text.push('\n');
        }
        if let Err(e) = crate::io::output::write_atomic(&path, text.as_bytes()) {
            tracing::error!(path = %path.display(), error = %e, "role-play log not written");
        }
    }

    /// Waits for the person's answer to request `i` of `batch`; true when one was accepted.
    fn wait(&self, batch: &dyn Batch, i: usize, ctx: &Context<'_>, pending: Pending) -> bool {
        let id = pending.id;
        let deadline = Instant::now() + self.timeout;
        {
            let mut st = self.lock();
            st.cancelled = false;
            st.pending = Some(pending.clone());
        }
        (self.notify)(Some(&pending));
        let mut st = self.lock();
        let accepted = loop {
            if let Some((aid, text, reply)) = st.answer.take() {
                if aid == id {
                    match batch.accept(i, &text, ctx) {
                        Ok(()) => {
                            let _ = reply.send(Ok(()));
                            let key = batch.key(i);
                            st.played.push(Played {
                                round: key.round,
                                phase: key.phase.name().to_string(),
                                user: key.user.0,
                                step: key.step,
                                kind: batch.kind().to_string(),
                                answer: text,
                            });
                            break true;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.0));
                            continue;
                        }
                    }
                }
            }
            let now = Instant::now();
            if st.cancelled || now >= deadline {
                break false;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        st.pending = None;
        st.answer = None;
        st.cancelled = false;
        let played = st.played.clone();
        drop(st);
        if accepted {
            self.write_log(&played);
        }
        (self.notify)(None);
        accepted
    }
}

/// Reads a role-play log (JSON Lines of [`Played`]).
///
/// # Errors
/// A message naming the file and the line that does not parse.
pub fn read_log(path: &Path) -> Result<Vec<Played>, String> {
    crate::io::read_jsonl(path)
}

/// The decorator: the played agent's requests go to the person (or to the recorded answers),
/// the rest of the batch to `inner`.
pub struct RolePlayBackend {
    inner: Box<dyn BehaviourBackend>,
    prompts: Prompts,
    live: Arc<RolePlay>,
    replay: BTreeMap<(u32, String, u32, u16), Played>,
}

impl RolePlayBackend {
    /// Wraps `inner`; `prompts` render the options shown to the person.
    pub fn new(inner: Box<dyn BehaviourBackend>, prompts: Prompts, live: Arc<RolePlay>) -> Self {
        Self {
            inner,
            prompts,
            live,
            replay: BTreeMap::new(),
        }
    }

    /// Fills the requests `entries` recorded with their recorded answers again.
    pub fn replaying(mut self, entries: Vec<Played>) -> Self {
        self.replay = entries.into_iter().map(|p| (p.key(), p)).collect();
        self
    }
}

impl BehaviourBackend for RolePlayBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn answer_batch(&self, ctx: &Context<'_>, batch: &dyn Batch) {
        if ROLE_KINDS.contains(&batch.kind()) {
            let agent = self.live.agent();
            for i in 0..batch.len() {
                let key = batch.key(i);
                let rkey = (
                    key.round,
                    key.phase.name().to_string(),
                    key.user.0,
                    key.step,
                );
                if let Some(p) = self.replay.get(&rkey) {
                    let _ = batch.render(i, &self.prompts, ctx);
                    match batch.accept(i, &p.answer, ctx) {
                        Ok(()) => {
                            let mut st = self.live.lock();
                            st.played.push(p.clone());
                            let played = st.played.clone();
                            drop(st);
                            self.live.write_log(&played);
                        }
                        Err(e) => {
                            tracing::warn!(?key, error = %e, "recorded role-play answer refused")
                        }
                    }
                    continue;
                }
                if Some(key.user.0) != agent {
                    continue;
                }
                let rendered = batch.render(i, &self.prompts, ctx);
                let id = {
                    let mut st = self.live.lock();
                    st.next_id += 1;
                    st.next_id
                };
                let pending = Pending {
                    id,
                    agent: key.user.0,
                    round: key.round,
                    kind: batch.kind(),
                    choices: choices(batch.kind(), &rendered.text),
                    prompt: rendered.text,
                    timeout_secs: self.live.timeout.as_secs(),
                };
                self.live.wait(batch, i, ctx, pending);
            }
        }
        self.inner.answer_batch(ctx, batch);
    }
}

/// Ready-made answers for a kind, read from its rendered prompt.
pub fn choices(kind: &str, prompt: &str) -> Vec<Choice> {
    let c = |label: String, answer: String| Choice { label, answer };
    match kind {
        "top" => vec![
            c(
                "Recommender".into(),
                "[RECOMMENDER]:: enters the Recommender System".into(),
            ),
            c(
                "Social media".into(),
                "[SOCIAL]:: enters the Social Media".into(),
            ),
            c("Do nothing".into(), "[NOTHING]:: does nothing".into()),
        ],
        "page" => {
            let mut out: Vec<Choice> = prompt
                .lines()
                .filter_map(|l| {
                    let l = l.trim();
                    let (n, rest) = l.split_once(". ")?;
                    let n: u32 = n.parse().ok()?;
                    let title = rest.split('>').next()?.trim_start_matches('<');
                    (rest.starts_with('<'))
                        .then(|| c(format!("Watch {n}: {title}"), format!("[BUY]:: {n}")))
                })
                .collect();
            out.push(c(
                "Next page".into(),
                "[NEXT]:: looks at the next page".into(),
            ));
            out.push(c("Leave".into(), "[LEAVE]:: leaves".into()));
            out
        }
        "feel" => (1..=5)
            .map(|r| {
                c(
                    format!("{r} star{}", if r == 1 { "" } else { "s" }),
                    format!("RATING: {r}; FEELING: I would rate it {r} out of 5."),
                )
            })
            .collect(),
        "social" => {
            let mut out: Vec<Choice> = prompt
                .lines()
                .find_map(|l| l.split_once("Friends available to chat now: "))
                .map(|(_, list)| {
                    list.trim_end_matches('.')
                        .split(", ")
                        .filter(|n| !n.is_empty())
                        .map(|n| c(format!("Chat with {n}"), format!("[CHAT]:: {n}")))
                        .collect()
                })
                .unwrap_or_default();
            out.push(c(
                "Post about movies".into(),
                "[POST]:: the movies I watched recently".into(),
            ));
            out
        }
        _ => Vec::new(),
    }
}

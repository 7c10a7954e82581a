//! Typed decisions behind a behaviour-backend trait.
//!
//! Every choice an agent makes is a typed [`Request`] answered by a typed [`Answer`]. Systems build
//! one batch per phase step, in user-id order, and apply the answers in that same order; they never
//! know which backend answered. A backend answers a whole batch at once so an LLM backend can run
//! the calls concurrently; it must return one result per request, index-aligned.

pub mod offline;

use bevy_ecs::resource::Resource;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clock::SimClock;
use std::sync::Arc;

use crate::components::{
    Histories, Memory, MemoryRecord, Profile, Relationships, Taste, TopAction,
};
use crate::ids::{ItemId, UserId};

/// The phase a request belongs to (part of its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Phase {
    /// Top-level choice.
    Activity = 0,
    /// Page decisions.
    Watch = 2,
    /// Feelings and ratings.
    Feel = 3,
    /// Social choice and chats.
    Chat = 4,
    /// Posts.
    Broadcast = 5,
    /// Memory writes (compression, importance, insights, reflection).
    Remember = 6,
}

/// Identity and sort key of one request: `(round, phase, user, step)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestKey {
    /// Round, 1-based.
    pub round: u32,
    /// Phase.
    pub phase: Phase,
    /// The deciding agent.
    pub user: UserId,
    /// Step within the phase (page decision number, or 0/1 for two-step phases).
    pub step: u16,
}

impl RequestKey {
    /// The key as four integers, for seeding per-request random streams.
    pub fn as_ids(&self) -> [u64; 4] {
        [
            u64::from(self.round),
            self.phase as u64,
            u64::from(self.user.0),
            u64::from(self.step),
        ]
    }
}

/// Read-only view of an agent, borrowed from the world for the duration of one batch.
#[derive(Clone, Copy, Debug)]
pub struct AgentView<'a> {
    /// Agent id.
    pub id: UserId,
    /// Profile.
    pub profile: &'a Profile,
    /// Genre tastes.
    pub taste: &'a Taste,
    /// Watched / heard histories.
    pub histories: &'a Histories,
    /// Social ties (sorted by id).
    pub contacts: &'a Relationships,
    /// Memory.
    pub memory: &'a Memory,
}

/// What is being decided.
#[derive(Clone, Debug)]
pub enum Ask<'a> {
    /// Recommender, social media, or nothing (spec §2.2).
    TopLevel,
    /// A page of items: watch, next page, search or leave (spec §2.3).
    Page {
        /// Items on the page, in display order (1-based in prompts).
        items: &'a [ItemId],
        /// 0-based page number within the current list.
        page: u32,
        /// Page decisions already made this session.
        steps: u32,
        /// The query when the page holds search results.
        search: Option<&'a str>,
        /// The agent may still search this session.
        can_search: bool,
    },
    /// Feeling and 1..=5 rating after watching `item`.
    Feel {
        /// The watched item.
        item: ItemId,
    },
    /// Chat with one available contact, or post to all (spec §2.4).
    Social {
        /// Agents free to chat now, ascending id: idle contacts, plus idle random strangers when
        /// `social_random_contacts` > 0 (strangers are not in the agent's `contacts`).
        available: &'a [UserId],
    },
    /// Write a conversation opened by the agent with `partner`.
    Chat {
        /// The partner.
        partner: AgentView<'a>,
        /// Most lines in the dialogue.
        max_turns: u32,
    },
    /// Write a post to all contacts.
    Post,
    /// Sensory compression (spec §3.2, LLM call A). Intended prompt: the observations as numbered
    /// lines `[i] text`; "Summarise these observations into one stand-alone sentence about the
    /// person's movie interests and their reasons; third person if a name is given, else first
    /// person; do not restate the profile." Output: [`Answer::Text`], the whole reply, one sentence.
    Compress {
        /// The observations, oldest first (rendered from structured events).
        observations: &'a [String],
    },
    /// Importance of a memory (spec §3.2, LLM call B/D). Intended prompt: the rubric "entering
    /// social media or the recommender, and chatting without a specific movie name, are
    /// unimportant; mentioning or recommending specific movies is important; more informative
    /// content is more important, especially in chats. Rate 1-10; reply with one integer".
    /// Output: [`Answer::Importance`] 1..=10 (parse the first integer; clamp to 1..=10).
    Importance {
        /// The memory text.
        text: &'a str,
        /// The structured event it came from (`None` for insights).
        event: Option<&'a MemoryRecord>,
    },
    /// Insight on an STM entry moving to long-term memory (spec §3.2, LLM call C). Intended
    /// prompt: the entry, its reinforcing texts and the current text joined with `;`; "Give one
    /// sentence with a high-level insight into this person's character, clearly different from
    /// these memories." Output: [`Answer::Text`], the first non-empty line, numbering stripped.
    Insight {
        /// The transferred entry.
        memory: &'a str,
        /// Texts that reinforced it, oldest first (without the current one).
        related: &'a [Arc<str>],
        /// The text whose arrival completed the transfer.
        current: &'a str,
    },
    /// Reflection topic (spec §3.5 step 1). Intended prompt: the latest long-term memories, one
    /// per line as `[idx] text`; "What is the single most salient high-level question we can
    /// answer about this person from these statements?" Output: [`Answer::Topics`]: non-empty
    /// lines, numbering stripped (at most 3 are used).
    ReflectTopic {
        /// `(stream index, text)` of the latest records, oldest first.
        recent: &'a [(u32, Arc<str>)],
    },
    /// Reflection insights on a topic (spec §3.5 step 2). Intended prompt: the topic and the
    /// retrieved statements as `[idx] text`; "Give the main insight you can infer, worded
    /// differently from the statements, as `insight text [idx, idx]` citing the statements it
    /// derives from." Output: [`Answer::Insights`]: one per non-empty line; the cited ids are the
    /// integers inside the line's trailing `[...]` span only (not numbers in the text); the text is
    /// the line without that span.
    ReflectInsights {
        /// The topic question.
        topic: &'a str,
        /// `(stream index, text)` of the retrieved records, best first.
        statements: &'a [(u32, Arc<str>)],
    },
}

/// One reflection insight with the stream indices it cites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insight {
    /// The insight sentence.
    pub text: String,
    /// Stream indices of the records it derives from.
    pub cites: Vec<u32>,
}

/// One request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Key (sort order and random-stream identity).
    pub key: RequestKey,
    /// The deciding agent.
    pub agent: AgentView<'a>,
    /// The question.
    pub ask: Ask<'a>,
}

/// A page decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageAction {
    /// Watch the items at these 0-based page positions (RecAgent watches exactly one).
    Watch(Vec<u32>),
    /// See the next page.
    Next,
    /// Search for a title.
    Search(String),
    /// Leave the recommender.
    Leave,
}

/// Feeling after watching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feeling {
    /// Stars, 1..=5.
    pub rating: u8,
    /// One first-person line.
    pub text: String,
}

/// Social choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocialAction {
    /// Chat with this available agent for `minutes` simulated minutes (the engine snaps the
    /// length to the nearest `chat_hours` value; RecAgent's `[TIME]::` line).
    Chat {
        /// The partner, one of [`Ask::Social`]'s `available`.
        with: UserId,
        /// Chat length in simulated minutes.
        minutes: u32,
    },
    /// Post to all contacts.
    Post,
}

/// One line of a dialogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utterance {
    /// Speaker (one of the two agents).
    pub speaker: UserId,
    /// Text.
    pub text: String,
    /// Catalogue items the line names.
    pub mentions: Vec<ItemId>,
}

/// A post draft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostDraft {
    /// Text.
    pub text: String,
    /// Catalogue items it names.
    pub mentions: Vec<ItemId>,
}

/// A typed answer; its variant matches the request's [`Ask`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// For [`Ask::TopLevel`].
    Top(TopAction),
    /// For [`Ask::Page`].
    Page(PageAction),
    /// For [`Ask::Feel`].
    Feel(Feeling),
    /// For [`Ask::Social`].
    Social(SocialAction),
    /// For [`Ask::Chat`].
    Chat(Vec<Utterance>),
    /// For [`Ask::Post`].
    Post(PostDraft),
    /// For [`Ask::Compress`] and [`Ask::Insight`]: one sentence.
    Text(String),
    /// For [`Ask::Importance`]: a score 1..=10.
    Importance(u8),
    /// For [`Ask::ReflectTopic`]: topic questions.
    Topics(Vec<String>),
    /// For [`Ask::ReflectInsights`]: insights with citations.
    Insights(Vec<Insight>),
}

/// A failed request (the system falls back and counts it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Shared read-only context of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The catalogue.
    pub catalog: &'a Catalog,
    /// The clock.
    pub clock: &'a SimClock,
    /// Root seed.
    pub seed: u64,
}

/// A behaviour backend.
pub trait BehaviourBackend: Send + Sync {
    /// Name recorded in the manifest (`offline`, `llm`, `replay`).
    fn name(&self) -> &'static str;
    /// Answers a batch. Returns exactly one result per request, in request order, whatever order
    /// the work completed in.
    fn answer_batch(
        &self,
        ctx: &Context<'_>,
        batch: &[Request<'_>],
    ) -> Vec<Result<Answer, BackendError>>;
}

/// Counts of requests and fallbacks, per phase (index = `Phase as usize`).
#[derive(Resource, Clone, Debug, Default, Serialize, Deserialize)]
pub struct BehaviourStats {
    /// Requests sent.
    pub requests: [u64; 8],
    /// Answers that failed or did not fit the request and were replaced by a fallback.
    pub fallbacks: [u64; 8],
}

/// The backend resource systems call.
#[derive(Resource)]
pub struct Behaviour(pub Box<dyn BehaviourBackend>);

impl Behaviour {
    /// Answers a batch, validating each answer against its request. A failed or ill-fitting answer
    /// is replaced by [`fallback`] and counted (and logged) in `stats`; one agent's failure never
    /// fails the batch.
    pub fn ask(
        &self,
        ctx: &Context<'_>,
        batch: &[Request<'_>],
        stats: &mut BehaviourStats,
    ) -> Vec<Answer> {
        if batch.is_empty() {
            return Vec::new();
        }
        let mut results = self.0.answer_batch(ctx, batch);
        results.resize_with(batch.len(), || {
            Err(BackendError("backend returned too few answers".into()))
        });
        batch
            .iter()
            .zip(results)
            .map(|(req, res)| {
                let p = req.key.phase as usize;
                stats.requests[p] += 1;
                match res {
                    Ok(a) if fits(req, &a) => a,
                    other => {
                        stats.fallbacks[p] += 1;
                        let why = match other {
                            Ok(a) => format!("answer does not fit the request: {a:?}"),
                            Err(e) => e.0,
                        };
                        tracing::warn!(key = ?req.key, "fallback: {why}");
                        fallback(req)
                    }
                }
            })
            .collect()
    }
}

/// True when `a` is a valid answer to `req` (right variant, indices on the page, partner available).
pub fn fits(req: &Request<'_>, a: &Answer) -> bool {
    match (&req.ask, a) {
        (Ask::TopLevel, Answer::Top(t)) => *t != TopAction::Inactive,
        (
            Ask::Page {
                items, can_search, ..
            },
            Answer::Page(p),
        ) => match p {
            PageAction::Watch(slots) => {
                !slots.is_empty() && slots.iter().all(|&s| (s as usize) < items.len())
            }
            PageAction::Search(q) => *can_search && !q.trim().is_empty(),
            _ => true,
        },
        (Ask::Feel { .. }, Answer::Feel(f)) => (1..=5).contains(&f.rating),
        (Ask::Social { available }, Answer::Social(s)) => match s {
            SocialAction::Chat { with, .. } => available.contains(with),
            SocialAction::Post => true,
        },
        (Ask::Chat { partner, .. }, Answer::Chat(lines)) => {
            !lines.is_empty()
                && lines
                    .iter()
                    .all(|l| l.speaker == req.agent.id || l.speaker == partner.id)
        }
        (Ask::Post, Answer::Post(p)) => !p.text.trim().is_empty(),
        (Ask::Compress { .. } | Ask::Insight { .. }, Answer::Text(t)) => !t.trim().is_empty(),
        (Ask::Importance { .. }, Answer::Importance(v)) => (1..=10).contains(v),
        (Ask::ReflectTopic { .. }, Answer::Topics(t)) => t.iter().any(|x| !x.trim().is_empty()),
        (Ask::ReflectInsights { .. }, Answer::Insights(v)) => {
            v.iter().any(|i| !i.text.trim().is_empty())
        }
        _ => false,
    }
}

/// The deterministic fallback for a request whose answer failed: do nothing / leave / a neutral
/// rating / post nothing memorable.
pub fn fallback(req: &Request<'_>) -> Answer {
    match &req.ask {
        Ask::TopLevel => Answer::Top(TopAction::Nothing),
        Ask::Page { .. } => Answer::Page(PageAction::Leave),
        Ask::Feel { .. } => Answer::Feel(Feeling {
            rating: 3,
            text: "I have no strong feelings about it.".into(),
        }),
        Ask::Social { .. } => Answer::Social(SocialAction::Post),
        Ask::Chat { partner, .. } => Answer::Chat(vec![Utterance {
            speaker: req.agent.id,
            text: format!("Hi {}, how are you?", partner.profile.name),
            mentions: Vec::new(),
        }]),
        Ask::Post => Answer::Post(PostDraft {
            text: "Looking for something good to watch.".into(),
            mentions: Vec::new(),
        }),
        Ask::Compress { observations } => Answer::Text(observations.join(" ")),
        // Below the default gate: an unscored memory is not kept.
        Ask::Importance { .. } => Answer::Importance(1),
        Ask::Insight { memory, .. } => Answer::Text((*memory).to_string()),
        Ask::ReflectTopic { .. } => Answer::Topics(Vec::new()),
        Ask::ReflectInsights { .. } => Answer::Insights(Vec::new()),
    }
}

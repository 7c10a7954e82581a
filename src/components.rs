//! ECS components (data only). Users, items and posts are entities.
//!
//! Per-agent state is compact: strings are shared `Arc<str>` (interned at load, so 1,000,000 agents
//! built from 1,000 profiles share their text), ids are `u32`, histories are short vectors of ids,
//! and item text lives once in the [`crate::catalog::Catalog`] resource.

use std::sync::Arc;

use bevy_ecs::component::Component;
use serde::{Deserialize, Serialize};

use crate::domain::GenreSet;
use crate::ids::{ItemId, UserId};

pub use crate::domain::FeatureSet;

/// A user's profile, as loaded. Shared strings; never mutated during a run.
#[derive(Component, Clone, Debug)]
pub struct Profile {
    /// Name (not unique; never used as a key).
    pub name: Arc<str>,
    /// Gender as written.
    pub gender: Arc<str>,
    /// Age in years.
    pub age: u16,
    /// Traits (comma list).
    pub traits: Arc<str>,
    /// Occupation / status.
    pub status: Arc<str>,
    /// Movie interests (comma list).
    pub interest: Arc<str>,
    /// Feature codes.
    pub features: FeatureSet,
    /// Free-text observations (legacy schema), else empty.
    pub observations: Arc<str>,
}

/// Genre tastes derived from the profile (interest phrases and observation keywords).
/// Used by the offline behaviour model and the content of templates.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taste {
    /// Genres the user likes.
    pub liked: GenreSet,
}

/// One directed social tie.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The other user.
    pub user: UserId,
    /// Index into [`crate::world::RelationLabels`].
    pub label: u8,
    /// Closeness in [0, 1] (legacy files: 1).
    pub closeness: f32,
}

/// Outgoing ties, sorted by user id (so iteration order is the id order).
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Relationships(pub Vec<Contact>);

impl Relationships {
    /// True when `u` is a contact.
    pub fn contains(&self, u: UserId) -> bool {
        self.0.binary_search_by_key(&u, |c| c.user).is_ok()
    }
}

/// What an observation in memory is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum ObservationKind {
    /// Entered the recommender system.
    EnteredRecommender,
    /// Entered social media.
    EnteredSocial,
    /// Did nothing this round.
    DidNothing,
    /// Was shown an item on a page.
    Shown,
    /// Watched an item (`value` = rating 1..=5 once felt).
    Watched,
    /// Searched (item = best hit, if any).
    Searched,
    /// Chatted with `other` (item = a mentioned item, if any).
    Chatted,
    /// Posted (item = a mentioned item, if any).
    Posted,
    /// Read `other`'s post (item = a mentioned item, if any).
    ReadPost,
    /// A behaviour plugin's own observation: `text` is the whole sentence, `value` its offline
    /// importance (1..=10; 0 = 5).
    Note,
}

/// One observation: a structured event (rendered to text on demand from the ids and the
/// catalogue) plus, for chats and posts, the shared text (one allocation for all holders).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Round of the observation.
    pub round: u32,
    /// Item involved, if any.
    pub item: Option<ItemId>,
    /// Other user involved, if any.
    pub other: Option<UserId>,
    /// What happened.
    pub kind: ObservationKind,
    /// A small value (rating 1..=5 for `Watched`), else 0.
    pub value: u8,
    /// Free text (a chat transcript, a post), shared between the agents that hold it.
    pub text: Option<Arc<str>>,
}

/// The agent's memory: RecAgent's short-term and long-term memory (spec §3), see
/// [`crate::memory`]. Written only in the remember phase; read by decisions through
/// [`Memory::recalled`] (what this round's prompts see) or [`Memory::retrieve`].
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Short-term and long-term state.
    pub state: crate::memory::MemoryState,
    /// The raw observations of the latest round in which the agent observed anything, in the
    /// order they happened (texts shared with the other agents that hold them). Replaced, not
    /// accumulated, so its size stays bounded.
    pub observed: Vec<MemoryRecord>,
}

impl Memory {
    /// The texts retrieved for this agent at the end of the last remember phase (the recalled
    /// long-term records, prefixed `[idx] `, then every short-term entry), within `max_words`.
    pub fn recalled(&self, max_words: usize) -> Vec<String> {
        let p = crate::memory::MemoryParams {
            max_words,
            ..Default::default()
        };
        crate::memory::recalled_texts(&self.state, &p)
    }

    /// The `k` best long-term records for an embedded `query` at `now_hours` (simulated hours
    /// since the clock's start), best first. Pure: access times are not updated.
    pub fn retrieve(
        &self,
        params: &crate::memory::MemoryParams,
        query: &[f32],
        now_hours: f32,
        k: usize,
    ) -> Vec<&crate::memory::LtmRecord> {
        let q = crate::memory::QVec::new(query);
        crate::memory::retrieve(&self.state, params, &q, now_hours, k)
            .into_iter()
            .map(|i| &self.state.ltm[i])
            .collect()
    }
}

/// Watched and heard-of items, most recent last, each at most `history_size` long (RecAgent: 10).
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Histories {
    /// Items watched with the rating given (0 until felt), no repeats.
    pub watched: Vec<(ItemId, u8)>,
    /// Items heard of in chats and posts, each with the round it was last heard (hearing it
    /// again moves it to the end with the new round), no repeats.
    pub heard: Vec<(ItemId, u32)>,
}

impl Histories {
    /// Appends `item` to a history, removing an earlier entry with the same key and keeping the
    /// last `cap`.
    pub fn push<T: Copy, K: PartialEq>(
        list: &mut Vec<T>,
        item: T,
        cap: usize,
        key: impl Fn(&T) -> K,
    ) {
        if let Some(p) = list.iter().position(|i| key(i) == key(&item)) {
            list.remove(p);
        }
        list.push(item);
        if list.len() > cap {
            let extra = list.len() - cap;
            list.drain(..extra);
        }
    }

    /// Records that `item` was heard of in `round` (see [`Histories::heard`]), keeping the last `cap`.
    pub fn hear(&mut self, item: ItemId, round: u32, cap: usize) {
        Self::push(&mut self.heard, (item, round), cap, |h| h.0);
    }

    /// The round `item` was last heard of, if it is in the heard history.
    pub fn heard_round(&self, item: ItemId) -> Option<u32> {
        self.heard.iter().find(|h| h.0 == item).map(|h| h.1)
    }

    /// The rating (1..=5) `item` has in the watched history; `None` when it is not there or
    /// not rated yet.
    pub fn rating_of(&self, item: ItemId) -> Option<u8> {
        self.watched
            .iter()
            .find(|w| w.0 == item)
            .map(|w| w.1)
            .filter(|&r| r > 0)
    }

    /// True when `item` is in the watched history.
    pub fn has_watched(&self, item: ItemId) -> bool {
        self.watched.iter().any(|w| w.0 == item)
    }

    /// The latest watched item and its rating.
    pub fn last_watched(&self) -> Option<(ItemId, u8)> {
        self.watched.last().copied()
    }
}

/// What the agent is busy with (the original's event state machine, spec §2.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngagementKind {
    /// Free.
    #[default]
    Idle,
    /// Watching an item.
    Watching,
    /// In a chat.
    Chatting,
    /// Writing a post.
    Posting,
}

/// The agent's current engagement and until when (simulated minutes since the clock's start).
/// Read lazily: an engagement whose `until` is not after the current time is idle.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engagement {
    /// What the agent is doing.
    pub kind: EngagementKind,
    /// End, in simulated minutes since the clock's start.
    pub until_minutes: i64,
}

impl Engagement {
    /// What the agent is doing at `now_minutes` (idle once the engagement ended).
    pub fn at(&self, now_minutes: i64) -> EngagementKind {
        if self.until_minutes > now_minutes {
            self.kind
        } else {
            EngagementKind::Idle
        }
    }
}

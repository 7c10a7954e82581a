//! What the page sees: the state line, agents with their state, agent cards, the graph and the
//! statistics, read from the world between two rounds (plain data, serialised as the API's
//! JSON). Everything is in id order; nothing iterates a hash map.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::clock::{format_timestamp, SimClock};
use crate::components::{Histories, Memory, Profile, Relationships};
use crate::ids::{ItemId, UserId};
use crate::sim::{RecState, Sim};
use crate::systems::metrics::MetricsState;
use crate::world::Roster;

/// What an agent is doing, read from its messages of the last round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Did nothing (or was not active).
    #[default]
    Idle,
    /// Browsed the recommender without watching.
    Browsing,
    /// Watched a movie.
    Watching,
    /// Chatted with a friend.
    Chatting,
    /// Posted to its friends.
    Posting,
}

impl AgentState {
    /// The state a line of the messages output implies for its agent (`None`: it says nothing
    /// about the state): a chat it started, a post it wrote (not one it read), a watch, a visit
    /// to the recommender.
    pub fn of_message(action: &str, content: &str) -> Option<Self> {
        Some(match action {
            "CHAT" if content.contains(" is chatting with ") => Self::Chatting,
            "POST" if !content.contains(" observes that ") && content.contains(" posts: ") => {
                Self::Posting
            }
            "WATCH" => Self::Watching,
            "RECOMMENDER" if content.contains(" watches <") => Self::Watching,
            "RECOMMENDER" | "LEAVE" => Self::Browsing,
            _ => return None,
        })
    }

    /// The partner's id of a chat line `A is chatting with B (id).`.
    pub fn chat_partner(content: &str) -> Option<u32> {
        let (_, rest) = content.split_once(" is chatting with ")?;
        let open = rest.rfind('(')?;
        rest[open + 1..].split(')').next()?.parse().ok()
    }
}

/// `GET /api/state`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StateView {
    /// Rounds done.
    pub round: u32,
    /// Rounds configured.
    pub rounds: u32,
    /// The simulated clock (start of the next round).
    pub time: String,
    /// The run loop is running.
    pub running: bool,
    /// Run loops started since the server started (a Start while running starts none).
    pub loops: u64,
    /// Every configured round ran.
    pub finished: bool,
    /// Agents.
    pub agents: usize,
    /// Items in the catalogue.
    pub items: usize,
    /// Watches so far.
    pub interactions: usize,
    /// The agent a person plays.
    pub roleplay_agent: Option<u32>,
}

/// One agent in `GET /api/agents`.
#[derive(Clone, Debug, Serialize)]
pub struct AgentSummary {
    /// User id.
    pub id: u32,
    /// Name.
    pub name: Arc<str>,
    /// State in the last round.
    pub state: AgentState,
}

/// A watched or heard item.
#[derive(Clone, Debug, Serialize)]
pub struct ItemEntry {
    /// Item id.
    pub item: u32,
    /// Title.
    pub title: String,
    /// Rating 1..=5 (watched and rated; for heard items, the agent's own rating if it watched).
    pub rating: Option<u8>,
    /// Round it was last heard of (heard items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
}

/// `GET /api/agents/{id}`.
#[derive(Clone, Debug, Serialize)]
pub struct AgentCard {
    /// User id.
    pub id: u32,
    /// Name.
    pub name: Arc<str>,
    /// Age.
    pub age: u16,
    /// Gender.
    pub gender: Arc<str>,
    /// Traits.
    pub traits: Arc<str>,
    /// Occupation.
    pub status: Arc<str>,
    /// Movie interests.
    pub interest: Arc<str>,
    /// State in the last round.
    pub state: AgentState,
    /// Watched, most recent last.
    pub watched: Vec<ItemEntry>,
    /// Heard of, most recent last.
    pub heard: Vec<ItemEntry>,
    /// The memories its prompts read (retrieved long-term records, then short-term).
    pub memories: Vec<String>,
    /// Contacts' ids.
    pub contacts: Vec<u32>,
}

/// `GET /api/graph`: agents and their (undirected) ties.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GraphView {
    /// Nodes, ascending id.
    pub nodes: Vec<AgentSummary>,
    /// Ties as `[a, b]` with `a < b`, sorted.
    pub edges: Vec<[u32; 2]>,
}

/// An item and a count.
#[derive(Clone, Debug, Serialize)]
pub struct TopItem {
    /// Item id.
    pub item: u32,
    /// Title.
    pub title: String,
    /// Watches, or agents that heard of it.
    pub count: u64,
}

/// One round's figures for the charts.
#[derive(Clone, Debug, Serialize)]
pub struct RoundFigures {
    /// Round.
    pub round: u32,
    /// Active agents.
    pub active_agents: u64,
    /// Watches.
    pub watches: u64,
    /// Mean rating.
    pub mean_rating: Option<f64>,
    /// Genre entropy of what was watched (bits).
    pub entropy_watched: Option<f64>,
    /// Chats.
    pub chats: u64,
    /// Posts.
    pub posts: u64,
}

/// `GET /api/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsView {
    /// Agents.
    pub agents: usize,
    /// Items.
    pub items: usize,
    /// Watches so far.
    pub interactions: usize,
    /// Active agents in the last round.
    pub active_agents: u64,
    /// Chats so far.
    pub chats: u64,
    /// Posts so far.
    pub posts: u64,
    /// Most watched items (ties: lower id first).
    pub most_watched: Vec<TopItem>,
    /// Items most agents have heard of in chats and posts (heard histories).
    pub most_talked_about: Vec<TopItem>,
    /// Per round.
    pub rounds: Vec<RoundFigures>,
}

fn title(cat: &Catalog, id: ItemId) -> String {
    cat.by_id(id)
        .map_or_else(|| format!("item {}", id.0), |i| i.title.to_string())
}

/// Figures of one metrics row.
pub fn figures(r: &crate::systems::metrics::MetricsRow) -> RoundFigures {
    RoundFigures {
        round: r.round,
        active_agents: r.active_agents,
        watches: r.watches,
        mean_rating: r.mean_rating,
        entropy_watched: r.entropy_watched,
        chats: r.chats,
        posts: r.posts,
    }
}

/// The state line.
pub fn state(sim: &Sim) -> StateView {
    let w = sim.world();
    let clock = w.resource::<SimClock>();
    StateView {
        round: clock.round,
        rounds: sim.config().round,
        time: format_timestamp(clock.now()),
        running: false,
        loops: 0,
        finished: clock.round >= sim.config().round,
        agents: w.resource::<Roster>().len(),
        items: w.resource::<Catalog>().len(),
        interactions: w.resource::<RecState>().log.watches().len(),
        roleplay_agent: None,
    }
}

/// Every agent's card, ascending id, with `states` (default idle).
pub fn cards(sim: &mut Sim, states: &BTreeMap<u32, AgentState>) -> Vec<AgentCard> {
    let world = sim.world_mut();
    let mut q = world.query::<(&UserId, &Profile, &Histories, &Memory, &Relationships)>();
    let cat = world.resource::<Catalog>();
    let mut out: Vec<AgentCard> = q
        .iter(world)
        .map(|(id, p, h, m, r)| AgentCard {
            id: id.0,
            name: p.name.clone(),
            age: p.age,
            gender: p.gender.clone(),
            traits: p.traits.clone(),
            status: p.status.clone(),
            interest: p.interest.clone(),
            state: states.get(&id.0).copied().unwrap_or_default(),
            watched: h
                .watched
                .iter()
                .map(|&(item, r)| ItemEntry {
                    item: item.0,
                    title: title(cat, item),
                    rating: (r > 0).then_some(r),
                    round: None,
                })
                .collect(),
            heard: h
                .heard
                .iter()
                .map(|&(item, round)| ItemEntry {
                    item: item.0,
                    title: title(cat, item),
                    rating: h.rating_of(item),
                    round: Some(round),
                })
                .collect(),
            memories: m.recalled(400).into_iter().take(12).collect(),
            contacts: r.0.iter().map(|c| c.user.0).collect(),
        })
        .collect();
    out.sort_by_key(|c| c.id);
    out
}

/// The graph of `cards` (ties made undirected).
pub fn graph(cards: &[AgentCard]) -> GraphView {
    let mut edges: Vec<[u32; 2]> = cards
        .iter()
        .flat_map(|c| {
            c.contacts
                .iter()
                .filter(|&&o| o != c.id)
                .map(move |&o| [c.id.min(o), c.id.max(o)])
        })
        .collect();
    edges.sort_unstable();
    edges.dedup();
    GraphView {
        nodes: cards
            .iter()
            .map(|c| AgentSummary {
                id: c.id,
                name: c.name.clone(),
                state: c.state,
            })
            .collect(),
        edges,
    }
}

fn top(counts: BTreeMap<u32, u64>, cat: &Catalog, n: usize) -> Vec<TopItem> {
    let mut v: Vec<(u32, u64)> = counts.into_iter().filter(|x| x.1 > 0).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v.into_iter()
        .map(|(item, count)| TopItem {
            item,
            title: title(cat, ItemId(item)),
            count,
        })
        .collect()
}

/// The statistics.
pub fn stats(sim: &Sim, cards: &[AgentCard]) -> StatsView {
    let w = sim.world();
    let cat = w.resource::<Catalog>();
    let rec = w.resource::<RecState>();
    let rows = w
        .get_resource::<MetricsState>()
        .map(|m| m.rows.clone())
        .unwrap_or_default();
    let mut watched = BTreeMap::new();
    for &(_, item, _, _) in rec.log.watches() {
        *watched.entry(cat.get(item).id.0).or_insert(0u64) += 1;
    }
    let mut heard = BTreeMap::new();
    for c in cards {
        for h in &c.heard {
            *heard.entry(h.item).or_insert(0u64) += 1;
        }
    }
    StatsView {
        agents: cards.len(),
        items: cat.len(),
        interactions: rec.log.watches().len(),
        active_agents: rows.last().map_or(0, |r| r.active_agents),
        chats: rows.iter().map(|r| r.chats).sum(),
        posts: rows.iter().map(|r| r.posts).sum(),
        most_watched: top(watched, cat, 5),
        most_talked_about: top(heard, cat, 5),
        rounds: rows.iter().map(figures).collect(),
    }
}

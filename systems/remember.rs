//! Remember: the round's observations go through RecAgent's memory (spec §3): sensory
//! compression and importance, the short-term gate and reinforcement, transfer with an insight,
//! long-term storage, reflection, forgetting and the cap; then each touched agent's recall for the
//! next round is computed.
//!
//! Phase: `SimPhase::Remember`. Reads: `PendingObservations`, agent data. Writes: `Memory`.
//!
//! Every LLM-backed step is a typed request ([`Ask::Compress`], [`Ask::Importance`],
//! [`Ask::Insight`], [`Ask::ReflectTopic`], [`Ask::ReflectInsights`]) sent in one batch per step
//! across all agents, with key `(round, Remember, user, step)` where `step = kind << 10 | seq`.
//! State changes are applied per agent in user-id order, each agent drawing from its own stream
//! `(seed, Memory, round, user)`, so serial and parallel runs end with identical memories.
//!
//! Retrieval is pure ([`crate::memory::retrieve`]). Its side effects in the original (access time
//! update, STM reinforcement by the retrieved texts, spec §3.6 steps 2-3) are applied here, at the
//! start of the step, for the records the agent recalled this round (`MemoryState::recalled`,
//! computed at the end of the previous remember step with the agent's interests as the query).
//!
//! Differences from the original (on purpose): one long-term save per agent and round (reflection
//! check, forgetting pass and cap once per round, not once per write); every reflection insight may
//! merge the records it cites (the original merged only for the first line).

use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::behaviour::{
    Answer, Ask, Behaviour, BehaviourStats, Context, Phase, Request, RequestKey,
};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{MemoryRecord, ObservationKind, Profile};
use crate::config::SimConfig;
use crate::embed::Embeddings;
use crate::ids::UserId;
use crate::memory::{self, MemoryParams, QVec, StmOp, Transfer};
use crate::rng::{stream_rng, Stream};
use crate::sim::{view, PendingObservations, SimPhase, SimTick};
use crate::world::Roster;

/// Registers the remember system.
pub struct RememberPlugin;

impl Plugin for RememberPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(SimTick, write_memories.in_set(SimPhase::Remember));
    }
}

/// Request sub-steps (the high bits of [`RequestKey::step`]).
const STEP_COMPRESS: u16 = 1;
const STEP_IMPORTANCE: u16 = 2;
const STEP_INSIGHT: u16 = 3;
const STEP_INSIGHT_IMPORTANCE: u16 = 4;
const STEP_TOPIC: u16 = 5;
const STEP_REFLECT: u16 = 6;

/// Most reflection topics used per reflection.
const MAX_TOPICS: usize = 3;

fn key(round: u32, user: UserId, kind: u16, seq: usize) -> RequestKey {
    RequestKey {
        round,
        phase: Phase::Remember,
        user,
        step: (kind << 10) | (seq.min(1023) as u16),
    }
}

/// Renders a structured observation as one sentence (the sensory input).
pub fn render(
    rec: &MemoryRecord,
    name: &str,
    other: Option<&str>,
    catalog: &Catalog,
) -> String {
    let title = rec
        .item
        .and_then(|i| catalog.by_id(i))
        .map(|i| format!("<{}>", i.title));
    let other = other.unwrap_or("a friend");
    let mut s = match (rec.kind, title) {
        (ObservationKind::EnteredRecommender, _) => format!("{name} entered the recommender system."),
        (ObservationKind::EnteredSocial, _) => format!("{name} entered the social media."),
        (ObservationKind::DidNothing, _) => format!("{name} did nothing."),
        (ObservationKind::Shown, Some(t)) => {
            format!("{name} was recommended {} movies, starting with {t}.", rec.value)
        }
        (ObservationKind::Shown, None) => format!("{name} was shown a page of movies."),
        (ObservationKind::Watched, Some(t)) if rec.value > 0 => {
            format!("{name} watched {t} and rated it {} out of 5.", rec.value)
        }
        (ObservationKind::Watched, t) => {
            format!("{name} watched {}.", t.as_deref().unwrap_or("a movie"))
        }
        (ObservationKind::Searched, Some(t)) => format!("{name} searched and found {t}."),
        (ObservationKind::Searched, None) => format!("{name} searched but found nothing."),
        (ObservationKind::Chatted, Some(t)) => format!("{name} chatted with {other} about {t}."),
        (ObservationKind::Chatted, None) => format!("{name} chatted with {other}."),
        (ObservationKind::Posted, Some(t)) => format!("{name} posted about {t}."),
        (ObservationKind::Posted, None) => format!("{name} posted on social media."),
        (ObservationKind::ReadPost, Some(t)) => format!("{name} read {other}'s post about {t}."),
        (ObservationKind::ReadPost, None) => format!("{name} read {other}'s post."),
    };
    if let Some(t) = &rec.text {
        let words: Vec<&str> = t.split_whitespace().take(40).collect();
        s.push_str(&format!(" \"{}\"", words.join(" ")));
    }
    s
}

/// Per-agent work of one remember step.
struct Work {
    user: UserId,
    entity: Entity,
    records: Vec<MemoryRecord>,
    rng: ChaCha8Rng,
    transfers: Vec<Transfer>,
}

fn quantise(emb: &Embeddings, texts: &[&str], stats: &mut BehaviourStats) -> Vec<QVec> {
    let (v, fell_back) = emb.embed_or_fallback(texts);
    if fell_back {
        stats.fallbacks[Phase::Remember as usize] += 1;
    }
    v.iter().map(|x| QVec::new(x)).collect()
}

fn text_of(a: &Answer) -> String {
    match a {
        Answer::Text(t) => t.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().into(),
        _ => String::new(),
    }
}

fn score_of(a: &Answer) -> u8 {
    match a {
        Answer::Importance(v) => *v,
        _ => 1,
    }
}

/// The memory step (see the module docs).
pub fn write_memories(
    roster: Res<Roster>,
    mut pending: ResMut<PendingObservations>,
    behaviour: Res<Behaviour>,
    mut stats: ResMut<BehaviourStats>,
    catalog: Res<Catalog>,
    clock: Res<SimClock>,
    cfg: Res<SimConfig>,
    emb: Res<Embeddings>,
    mut agents: Query<AgentDataMut>,
) {
    let p: &MemoryParams = &cfg.memory;
    let round = clock.round;
    let now_h = clock.hours_since_start(clock.now()) as f32;
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };

    // Group the round's observations by agent (id order, stable within an agent).
    let mut list = std::mem::take(&mut pending.0);
    list.sort_by_key(|(u, _)| *u);
    let mut work: Vec<Work> = Vec::new();
    for (u, rec) in list.drain(..) {
        match work.last_mut() {
            Some(w) if w.user == u => w.records.push(rec),
            _ => {
                if let Some(e) = roster.entity(u) {
                    work.push(Work {
                        user: u,
                        entity: e,
                        records: vec![rec],
                        rng: stream_rng(cfg.seed, Stream::Memory, &[u64::from(round), u64::from(u.0)]),
                        transfers: Vec::new(),
                    });
                }
            }
        }
    }
    pending.0 = list; // keep the allocation
    if work.is_empty() {
        return;
    }

    for w in &work {
        if let Ok(mut d) = agents.get_mut(w.entity) {
            d.5.observed.clone_from(&w.records);
        }
    }

    // 1. Side effects of this round's recall: access time, STM reinforcement (spec §3.6).
    for w in &mut work {
        let Ok(mut d) = agents.get_mut(w.entity) else { continue };
        let m = &mut d.5.state;
        let recalled = m.recalled.clone();
        memory::touch(m, &recalled, now_h);
        for idx in recalled {
            if let Ok(i) = m.ltm.binary_search_by_key(&idx, |r| r.idx) {
                let (text, e): (Arc<str>, QVec) = (m.ltm[i].text().into(), m.ltm[i].emb().to_owned());
                let rng = &mut w.rng;
                let t = memory::stm_add(m, p, &text, 0.0, &e, StmOp::Retrieval, &mut || rng.random());
                w.transfers.extend(t);
            }
        }
    }

    // 2-3. Sensory: compress each observation (buffer size 1), then score it.
    let names = |u: UserId, q: &Query<AgentDataMut>| -> Option<Arc<str>> {
        roster.entity(u).and_then(|e| q.get(e).ok()).map(|d| d.1.name.clone())
    };
    let rendered: Vec<Vec<[String; 1]>> = work
        .iter()
        .map(|w| {
            let name = names(w.user, &agents).unwrap_or_else(|| "Someone".into());
            w.records
                .iter()
                .map(|r| {
                    let other = r.other.and_then(|o| names(o, &agents));
                    [render(r, &name, other.as_deref(), &catalog)]
                })
                .collect()
        })
        .collect();
    let compressed: Vec<String> = {
        let mut reqs = Vec::new();
        for (w, texts) in work.iter().zip(&rendered) {
            let Ok(d) = agents.get(w.entity) else { continue };
            for (seq, t) in texts.iter().enumerate() {
                reqs.push(Request {
                    key: key(round, w.user, STEP_COMPRESS, seq),
                    agent: view(d),
                    ask: Ask::Compress { observations: t },
                });
            }
        }
        behaviour.ask(&ctx, &reqs, &mut stats).iter().map(text_of).collect()
    };
    let importance: Vec<f32> = {
        let mut reqs = Vec::new();
        let mut k = 0;
        for w in &work {
            let Ok(d) = agents.get(w.entity) else { continue };
            for (seq, r) in w.records.iter().enumerate() {
                reqs.push(Request {
                    key: key(round, w.user, STEP_IMPORTANCE, seq),
                    agent: view(d),
                    ask: Ask::Importance { text: &compressed[k], event: Some(r) },
                });
                k += 1;
            }
        }
        behaviour.ask(&ctx, &reqs, &mut stats).iter().map(|a| p.importance_of(score_of(a))).collect()
    };

    // 4-5. Gate, embed, STM add with reinforcement and transfer.
    let kept: Vec<usize> = (0..compressed.len())
        .filter(|&i| importance[i] > p.importance_gate && !compressed[i].is_empty())
        .collect();
    let embs = quantise(&emb, &kept.iter().map(|&i| compressed[i].as_str()).collect::<Vec<_>>(), &mut stats);
    let mut embs = kept.iter().copied().zip(embs).peekable();
    let mut k = 0;
    for w in &mut work {
        let Ok(mut d) = agents.get_mut(w.entity) else { continue };
        let m = &mut d.5.state;
        for _ in 0..w.records.len() {
            if let Some((_, e)) = embs.next_if(|(i, _)| *i == k) {
                let text: Arc<str> = compressed[k].as_str().into();
                let rng = &mut w.rng;
                let t = memory::stm_add(m, p, &text, importance[k], &e, StmOp::Add, &mut || rng.random());
                w.transfers.extend(t);
            }
            k += 1;
        }
    }

    // 6-8. Insights on transferred entries, their importance, long-term save.
    let insights: Vec<String> = {
        let mut reqs = Vec::new();
        for w in &work {
            let Ok(d) = agents.get(w.entity) else { continue };
            for (seq, t) in w.transfers.iter().enumerate() {
                let n = t.entry.enhancers.len().saturating_sub(1);
                reqs.push(Request {
                    key: key(round, w.user, STEP_INSIGHT, seq),
                    agent: view(d),
                    ask: Ask::Insight {
                        memory: &t.entry.text,
                        related: &t.entry.enhancers[..n],
                        current: &t.current,
                    },
                });
            }
        }
        behaviour.ask(&ctx, &reqs, &mut stats).iter().map(text_of).collect()
    };
    let insight_importance: Vec<f32> = {
        let mut reqs = Vec::new();
        let mut k = 0;
        for w in &work {
            let Ok(d) = agents.get(w.entity) else { continue };
            for seq in 0..w.transfers.len() {
                reqs.push(Request {
                    key: key(round, w.user, STEP_INSIGHT_IMPORTANCE, seq),
                    agent: view(d),
                    ask: Ask::Importance { text: &insights[k], event: None },
                });
                k += 1;
            }
        }
        behaviour.ask(&ctx, &reqs, &mut stats).iter().map(|a| p.importance_of(score_of(a))).collect()
    };
    let insight_embs = quantise(&emb, &insights.iter().map(String::as_str).collect::<Vec<_>>(), &mut stats);
    let mut k = 0;
    for w in &mut work {
        let Ok(mut d) = agents.get_mut(w.entity) else { continue };
        let m = &mut d.5.state;
        for t in w.transfers.drain(..) {
            memory::ltm_add(m, &t.entry.text, t.entry.importance, &t.entry.emb, now_h, false);
            if !insights[k].is_empty() {
                memory::ltm_add(m, &insights[k], insight_importance[k], &insight_embs[k], now_h, false);
            }
            k += 1;
        }
    }

    // 9. Reflection when the aggregate importance passes the threshold (spec §3.5).
    let reflecting: Vec<usize> = (0..work.len())
        .filter(|&i| {
            agents
                .get(work[i].entity)
                .is_ok_and(|d| memory::reflection_due(&d.5.state, p))
        })
        .collect();
    if !reflecting.is_empty() {
        let recent: Vec<Vec<(u32, Arc<str>)>> = reflecting
            .iter()
            .map(|&i| {
                agents.get(work[i].entity).map_or_else(
                    |_| Vec::new(),
                    |d| {
                        let l = &d.5.state.ltm;
                        l[l.len().saturating_sub(p.reflection_window)..]
                            .iter()
                            .map(|r| (r.idx, Arc::from(r.text())))
                            .collect()
                    },
                )
            })
            .collect();
        let topics: Vec<Vec<String>> = {
            let mut reqs = Vec::new();
            for (&i, rc) in reflecting.iter().zip(&recent) {
                let Ok(d) = agents.get(work[i].entity) else { continue };
                reqs.push(Request {
                    key: key(round, work[i].user, STEP_TOPIC, 0),
                    agent: view(d),
                    ask: Ask::ReflectTopic { recent: rc },
                });
            }
            behaviour
                .ask(&ctx, &reqs, &mut stats)
                .into_iter()
                .map(|a| match a {
                    Answer::Topics(t) => t
                        .into_iter()
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .take(MAX_TOPICS)
                        .collect(),
                    _ => Vec::new(),
                })
                .collect()
        };
        // Per (agent, topic): the top-k records for the topic (pure retrieval).
        let flat: Vec<(usize, &str)> = reflecting
            .iter()
            .zip(&topics)
            .flat_map(|(&i, ts)| ts.iter().map(move |t| (i, t.as_str())))
            .collect();
        let topic_embs = quantise(&emb, &flat.iter().map(|x| x.1).collect::<Vec<_>>(), &mut stats);
        let statements: Vec<Vec<(u32, Arc<str>)>> = flat
            .iter()
            .zip(&topic_embs)
            .map(|(&(i, _), q)| {
                agents.get(work[i].entity).map_or_else(
                    |_| Vec::new(),
                    |d| {
                        let m = &d.5.state;
                        memory::retrieve(m, p, q, now_h, p.top_k)
                            .into_iter()
                            .map(|j| (m.ltm[j].idx, Arc::from(m.ltm[j].text())))
                            .collect()
                    },
                )
            })
            .collect();
        let answers: Vec<Vec<crate::behaviour::Insight>> = {
            let mut reqs = Vec::new();
            let mut seq_of = Vec::new();
            for (n, (&(i, t), st)) in flat.iter().zip(&statements).enumerate() {
                let Ok(d) = agents.get(work[i].entity) else { continue };
                let seq = flat[..n].iter().filter(|x| x.0 == i).count();
                seq_of.push(n);
                reqs.push(Request {
                    key: key(round, work[i].user, STEP_REFLECT, seq),
                    agent: view(d),
                    ask: Ask::ReflectInsights { topic: t, statements: st },
                });
            }
            let mut out = vec![Vec::new(); flat.len()];
            for (n, a) in seq_of.into_iter().zip(behaviour.ask(&ctx, &reqs, &mut stats)) {
                if let Answer::Insights(v) = a {
                    out[n] = v.into_iter().filter(|x| !x.text.trim().is_empty()).collect();
                }
            }
            out
        };
        let texts: Vec<&str> = answers.iter().flatten().map(|x| x.text.as_str()).collect();
        let mut iembs = quantise(&emb, &texts, &mut stats).into_iter();
        let mut n = 0;
        for &i in &reflecting {
            let Ok(mut d) = agents.get_mut(work[i].entity) else { continue };
            let m = &mut d.5.state;
            while n < flat.len() && flat[n].0 == i {
                for ins in &answers[n] {
                    let Some(e) = iembs.next() else { break };
                    let imp = memory::merge_into(m, p, &e, &ins.cites);
                    memory::ltm_add(m, ins.text.trim(), imp, &e, now_h, true);
                }
                n += 1;
            }
            m.aggregate_importance = 0.0;
        }
    }

    // 10-11. Forgetting, cap, and the recall the agent's next prompts read.
    let queries: Vec<Arc<str>> = work
        .iter()
        .map(|w| {
            agents.get(w.entity).map_or_else(
                |_| Arc::from(""),
                |d| {
                    if d.1.interest.trim().is_empty() {
                        d.1.name.clone()
                    } else {
                        d.1.interest.clone()
                    }
                },
            )
        })
        .collect();
    let qembs = quantise(&emb, &queries.iter().map(|q| &**q).collect::<Vec<_>>(), &mut stats);
    for (w, q) in work.iter_mut().zip(qembs) {
        let Ok(mut d) = agents.get_mut(w.entity) else { continue };
        let m = &mut d.5.state;
        if p.forgetting {
            let rng = &mut w.rng;
            memory::forget(m, p, now_h, &mut || rng.random());
        }
        memory::enforce_cap(m, p);
        let r = memory::retrieve(m, p, &q, now_h, p.top_k);
        m.recalled = r.into_iter().map(|i| m.ltm[i].idx).collect();
    }
}

/// Candidate folders for the persisted item index, in order: `memory.index_dir` (relative to the
/// config file) if set; else `.recagent-index` beside the item file when that folder's mode is
/// writable (never for the embedded demo data), then `<output_dir>/index`.
pub fn index_dirs(
    cfg: &SimConfig,
    item_path: &std::path::Path,
    out_dir: &std::path::Path,
) -> Vec<std::path::PathBuf> {
    if let Some(d) = &cfg.memory.index_dir {
        return vec![cfg.resolve(d)];
    }
    let mut v = Vec::new();
    if !cfg.is_embedded() {
        // Only when the data folder's mode allows writing (root ignores the mode, so asking the
        // OS would happily write into a folder meant to be read-only).
        if let Some(parent) = item_path.parent() {
            let writable = std::fs::metadata(parent).is_ok_and(|m| !m.permissions().readonly());
            if writable {
                v.push(parent.join(".recagent-index"));
            }
        }
    }
    v.push(out_dir.join("index"));
    v
}

/// Agent data with a mutable memory (the remember phase is its only writer).
pub type AgentDataMut = (
    &'static UserId,
    &'static Profile,
    &'static crate::components::Taste,
    &'static crate::components::Histories,
    &'static crate::components::Relationships,
    &'static mut crate::components::Memory,
);

//! Chat: agents who chose social media pick chat or post (spec §2.4); chats are written as one
//! dialogue per pair. A partner must be a contact (keyed by id, never by name) or one of this
//! round's random strangers (`social_random_contacts`), and both agents must be free at the
//! round's time (the original's event state machine, spec §2.6: an agent watching or chatting is
//! unavailable; posting does not block). Conflicts are settled in initiator-id order.
//!
//! # Single call, not turn by turn
//! A dialogue is one request ([`Chat`]) that writes every utterance, as the original's
//! `generate_dialogue` does: one LLM call per chat instead of one per turn, and every chat of a
//! round goes out in one concurrent batch (turn by turn would need `chat_max_turns` sequential
//! batches). Both agents' views (profile, histories, memory) are in the request, so the backend
//! sees both sides. `chat_max_turns` caps the utterances (longer answers are cut).
//!
//! Phase: `SimPhase::Chat`. Settings: [`ChatSettings`] (`social_random_contacts`,
//! `chat_hours`, `chat_max_turns`). State: [`SocialPlan`] on every agent. Reads: agent data,
//! `Choice`, `Engagement`. Writes: `SocialPlan`, `Engagement` (chatting for the answer's
//! length, snapped to `chat_hours`), `Histories.heard` (listener), `PendingObservations` (the
//! transcript, to both), `RoundLog`. Counters: `chats`, `chat_lines`, `mentions`,
//! `no_acquaintance`.

use std::collections::BTreeSet;
use std::sync::Arc;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use super::activate::Choice;
use crate::behaviour::{Behaviour, BehaviourStats};
use crate::catalog::Catalog;
use crate::clock::SimClock;
use crate::components::{Engagement, EngagementKind, Histories, ObservationKind};
use crate::config::SimConfig;
use crate::decision::chat::{Chat, ChatAsk};
use crate::decision::social::{Social, SocialAction};
use crate::decision::top::TopAction;
use crate::decision::{Context, Decision, Request};
use crate::ids::{ItemId, UserId};
use crate::plugin::{check_range, Counter, Counters, Settings, SimApp};
use crate::sim::{
    map_in_order, view, ActiveAgents, AgentData, PendingObservations, RoundLog, SimPhase, SimTick,
};
use crate::social::{random_strangers, resolve_mentions, snap_chat_minutes, transcript};
use crate::world::Roster;

/// Chat settings.
#[derive(Resource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Random non-contacts ("strangers") added each round to a social agent's chat candidates,
    /// drawn per (round, agent); 0..=100. Posts still go to contacts only. Separate from
    /// `social_random_k`, which keeps RecAgent's meaning (rewire the graph once at start).
    pub social_random_contacts: u32,
    /// Chat durations an answer may choose, in simulated hours (RecAgent: 0.5, 1, 2); 1..=8
    /// values, each in (0, 24]. Other answers snap to the nearest value (counted as a fallback).
    pub chat_hours: Vec<f64>,
    /// Most utterances in one chat (longer dialogues are cut, the cut logged); 1..=50.
    pub chat_max_turns: u32,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            social_random_contacts: 0,
            chat_hours: vec![0.5, 1.0, 2.0],
            chat_max_turns: 8,
        }
    }
}

impl Settings for ChatSettings {
    const SECTION: Option<&'static str> = None;
    fn validate(&self) -> Result<(), (String, String)> {
        check_range(
            "social_random_contacts",
            self.social_random_contacts,
            0..=100,
            "0..=100",
        )?;
        if self.chat_hours.is_empty()
            || self.chat_hours.len() > 8
            || !self.chat_hours.iter().all(|h| *h > 0.0 && *h <= 24.0)
        {
            return Err((
                "chat_hours".into(),
                format!(
                    "{:?} is out of range: allowed 1..=8 values, each in (0, 24]",
                    self.chat_hours
                ),
            ));
        }
        check_range("chat_max_turns", self.chat_max_turns, 1..=50, "1..=50")?;
        Ok(())
    }
}

/// This round's social plan of an agent: chat with `chat_with`, or post. Reset when the agent
/// is active.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocialPlan {
    /// The booked chat partner.
    pub chat_with: Option<UserId>,
    /// The agent posts this round.
    pub post: bool,
}

/// Chats held.
pub const CHATS: Counter = Counter::new("chats", "chats");
/// Dialogue lines.
pub const CHAT_LINES: Counter = Counter::new("chat_lines", "lines");
/// Item mentions in chats and posts.
pub const MENTIONS: Counter = Counter::new("mentions", "mentions");
/// Social attempts of agents with no contacts.
pub const NO_ACQUAINTANCE: Counter = Counter::new("no_acquaintance", "no acquaintance");

/// Registers the social choice and chats.
pub struct ChatPlugin;

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.add_settings::<ChatSettings>()
            .add_decision::<Social>()
            .add_decision::<Chat>()
            .show_in_progress(CHATS)
            .add_counters("chats", &[CHATS, CHAT_LINES, MENTIONS, NO_ACQUAINTANCE])
            .add_summary("chats", |c| {
                Some(format!(
                    "chats {} ({} lines) · mentions {} · no acquaintance {}",
                    c.get("chats"),
                    c.get("chat_lines"),
                    c.get("mentions"),
                    c.get("no_acquaintance")
                ))
            })
            .add_agent_component::<SocialPlan>()
            .add_systems(
                SimTick,
                (choose_social_actions, hold_chats)
                    .chain()
                    .in_set(SimPhase::Chat),
            );
    }
}

/// True when an agent with this engagement can start a chat now (idle, or only posting).
fn free(kind: EngagementKind) -> bool {
    matches!(kind, EngagementKind::Idle | EngagementKind::Posting)
}

/// Asks each social agent with contacts to chat (with an available contact or stranger) or post,
/// then books the chats in initiator-id order.
///
/// Candidates: the agent's contacts plus `social_random_contacts` random strangers
/// ([`random_strangers`]), kept when free now (not watching, not chatting). An agent itself
/// still chatting (a chat longer than the round interval) gets no candidates, so it posts. An
/// agent with no contacts gets the `SOCIAL` message `"<name> has no acquaintance."` and stops
/// (counted in `no_acquaintance`). A chat whose partner was booked by a lower-id initiator in
/// the same batch ends with a `LEAVE` message.
pub fn choose_social_actions(
    cfg: Res<SimConfig>,
    settings: Res<ChatSettings>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    agents: Query<(AgentData, &Choice)>,
    mut plans: Query<&mut SocialPlan>,
    mut engagement: Query<&mut Engagement>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let now = (clock.now() - clock.start).num_minutes();
    let is_free = |u: UserId, engagement: &Query<&mut Engagement>| {
        roster
            .entity(u)
            .and_then(|e| engagement.get(e).ok())
            .is_some_and(|g| free(g.at(now)))
    };
    let mut social: Vec<Entity> = Vec::new();
    for &e in &active.0 {
        if let Ok(mut p) = plans.get_mut(e) {
            *p = SocialPlan::default();
        }
        let Ok((d, choice)) = agents.get(e) else {
            continue;
        };
        if choice.0 != TopAction::Social {
            continue;
        }
        let (uid, contacts) = (*d.0, d.4);
        if contacts.0.is_empty() {
            log.say_with(uid, "SOCIAL", || {
                format!("{} has no acquaintance.", d.1.name)
            });
            counters.add(&NO_ACQUAINTANCE, 1);
            continue;
        }
        log.say_with(uid, "SOCIAL", || {
            format!("{} is going to social media.", d.1.name)
        });
        social.push(e);
    }
    // Who is free among each agent's candidates: read-only, one agent's own list each, so on
    // the pool (the engagement lookups are a random access per contact).
    let social: Vec<(Entity, Vec<UserId>)> = {
        let engagement = &engagement;
        let available = map_in_order(cfg.runs_parallel(), &social, |&e| {
            let Ok((d, _)) = agents.get(e) else {
                return Vec::new();
            };
            let (uid, contacts) = (*d.0, d.4);
            if !is_free(uid, engagement) {
                return Vec::new();
            }
            let mut candidates: Vec<UserId> = contacts.0.iter().map(|c| c.user).collect();
            if settings.social_random_contacts > 0 {
                candidates.extend(random_strangers(
                    cfg.seed,
                    clock.round,
                    uid,
                    &roster.ids,
                    contacts,
                    settings.social_random_contacts as usize,
                ));
                candidates.sort_unstable();
            }
            candidates.retain(|&c| is_free(c, engagement));
            candidates
        });
        social.into_iter().zip(available).collect()
    };
    let answers =
        behaviour.ask_each::<Social, _>(&ctx, &mut bstats, social.iter(), |(e, avail)| {
            let (d, _) = agents.get(*e).ok()?;
            Some(Request::new(clock.round, 0, view(d), avail.as_slice()))
        });
    let mut busy: BTreeSet<UserId> = BTreeSet::new();
    for ((e, _), choice) in answers {
        let (Ok((d, _)), Ok(mut plan)) = (agents.get(*e), plans.get_mut(*e)) else {
            continue;
        };
        let (uid, name) = (*d.0, &d.1.name);
        match choice {
            SocialAction::Post => plan.post = true,
            SocialAction::Chat { with, minutes } => {
                let pname = roster
                    .entity(with)
                    .and_then(|pe| agents.get(pe).ok())
                    .map(|p| p.0 .1.name.clone())
                    .unwrap_or_default();
                if busy.contains(&uid) || busy.contains(&with) {
                    log.say_with(uid, "LEAVE", || {
                        format!(
                            "{name} wants to chat with {pname} ({with}), but one of them is \
                             already chatting. So {name} does nothing."
                        )
                    });
                    continue;
                }
                let (minutes, allowed) = snap_chat_minutes(minutes, &settings.chat_hours);
                if !allowed {
                    bstats.fallback(Social::KIND);
                    tracing::warn!(user = %uid, minutes, "chat length not in chat_hours; snapped");
                }
                busy.insert(uid);
                busy.insert(with);
                plan.chat_with = Some(with);
                for pe in [Some(*e), roster.entity(with)].into_iter().flatten() {
                    if let Ok(mut g) = engagement.get_mut(pe) {
                        *g = Engagement {
                            kind: EngagementKind::Chatting,
                            until_minutes: now + i64::from(minutes),
                        };
                    }
                }
            }
        }
    }
}

/// Writes every booked chat in one batch. Lines go to the initiator's messages (`CHAT`
/// `"<speaker> says: <text>"`), items a line mentions (the backend's ids, or those
/// [`crate::social::detect_mentions`] finds in its text) join the listener's heard history, the
/// mention counts and the round's hearings (with the speaker's rating of the item, if any), and
/// the transcript (`"[A]: ...\n[B]: ..."`, one shared allocation) is written to
/// both agents' memories.
pub fn hold_chats(
    cfg: Res<SimConfig>,
    settings: Res<ChatSettings>,
    clock: Res<SimClock>,
    catalog: Res<Catalog>,
    roster: Res<Roster>,
    behaviour: Res<Behaviour>,
    mut bstats: ResMut<BehaviourStats>,
    active: Res<ActiveAgents>,
    mut log: ResMut<RoundLog>,
    mut counters: ResMut<Counters>,
    mut obs: ResMut<PendingObservations>,
    plans: Query<&SocialPlan>,
    mut agents: ParamSet<(Query<AgentData>, Query<&mut Histories>)>,
) {
    let ctx = Context {
        catalog: &catalog,
        clock: &clock,
        seed: cfg.seed,
    };
    let pairs: Vec<(Entity, Entity)> = active
        .0
        .iter()
        .filter_map(|&e| Some((e, roster.entity(plans.get(e).ok()?.chat_with?)?)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let max_turns = settings.chat_max_turns;
    // Each pair with both speakers `(id, name)`, beside its dialogue.
    let answers = {
        let q = agents.p0();
        behaviour.ask_each::<Chat, _>(&ctx, &mut bstats, pairs, |&(a, b)| {
            let (da, db) = (q.get(a).ok()?, q.get(b).ok()?);
            let ask = ChatAsk {
                partner: view(db),
                max_turns,
            };
            Some(Request::new(clock.round, 1, view(da), ask))
        })
    };
    let speakers: Vec<((UserId, Arc<str>), (UserId, Arc<str>))> = {
        let q = agents.p0();
        answers
            .iter()
            .map(|((a, b), _)| {
                let who = |e: Entity| {
                    q.get(e)
                        .map(|d| (*d.0, d.1.name.clone()))
                        .unwrap_or((UserId(u32::MAX), Arc::from("")))
                };
                (who(*a), who(*b))
            })
            .collect()
    };
    let cap = cfg.history_size as usize;
    let mut chats: Vec<_> = answers.into_iter().zip(speakers).collect();
    for ((_, lines), ((a, _), _)) in &mut chats {
        if lines.len() > max_turns as usize {
            tracing::info!(user = %a, cut = lines.len() - max_turns as usize, "dialogue cut to chat_max_turns");
            lines.truncate(max_turns as usize);
        }
    }
    // Each line's mentions (the detector reads a backend's free text) and the transcript: per
    // chat, from its own lines, so on the pool ahead of the in-order apply below.
    let read = map_in_order(
        cfg.runs_parallel(),
        &chats,
        |((_, lines), ((a, a_name), (_, b_name)))| {
            let mentions: Vec<Vec<ItemId>> = lines
                .iter()
                .map(|l| resolve_mentions(&catalog, &l.mentions, &l.text))
                .collect();
            let text: Arc<str> = transcript(lines.iter().map(|l| {
                let who = if l.speaker == *a {
                    &**a_name
                } else {
                    &**b_name
                };
                (who, l.text.as_str())
            }))
            .into();
            (mentions, text)
        },
    );
    let mut hist = agents.p1();
    for ((((ea, eb), lines), ((a, a_name), (b, b_name))), (mentions, text)) in
        chats.into_iter().zip(read)
    {
        counters.add(&CHATS, 1);
        log.say_with(a, "CHAT", || {
            format!("{a_name} is chatting with {b_name} ({b}).")
        });
        let mut first_mention: Option<ItemId> = None;
        for (line, mentions) in lines.iter().zip(&mentions) {
            counters.add(&CHAT_LINES, 1);
            let speaker_name = if line.speaker == a { &a_name } else { &b_name };
            log.say_with(a, "CHAT", || format!("{speaker_name} says: {}", line.text));
            let (speaker, speaker_id, listener, listener_id) = if line.speaker == a {
                (ea, a, eb, b)
            } else {
                (eb, b, ea, a)
            };
            for &m in mentions {
                counters.add(&MENTIONS, 1);
                log.mentions.push(m);
                first_mention.get_or_insert(m);
                let stated = hist.get(speaker).ok().and_then(|h| h.rating_of(m));
                log.heard(listener_id, speaker_id, m, stated);
                if let Ok(mut h) = hist.get_mut(listener) {
                    h.hear(m, clock.round, cap);
                }
            }
        }
        obs.add_text(
            a,
            clock.round,
            ObservationKind::Chatted,
            first_mention,
            Some(b),
            text.clone(),
        );
        obs.add_text(
            b,
            clock.round,
            ObservationKind::Chatted,
            first_mention,
            Some(a),
            text,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::behaviour::Utterance;
    use crate::components::MemoryRecord;
    use crate::decision::Script;
    use crate::testing::{obs_text, tiny, HEAT, MATRIX};

    type Offered = Arc<Mutex<Vec<(u32, Vec<u32>)>>>;

    /// Social answers by agent id (unlisted agents post); the candidates each agent was offered
    /// are recorded.
    fn social_script(answers: Vec<(u32, SocialAction)>, offered: &Offered) -> Script {
        let offered = offered.clone();
        Script::new().on::<Social>(move |r, _| {
            let u = r.agent.id.0;
            offered
                .lock()
                .unwrap()
                .push((u, r.ask.iter().map(|c| c.0).collect()));
            Some(
                answers
                    .iter()
                    .find(|a| a.0 == u)
                    .map_or(SocialAction::Post, |a| a.1),
            )
        })
    }

    fn chat(with: u32, minutes: u32) -> SocialAction {
        SocialAction::Chat {
            with: UserId(with),
            minutes,
        }
    }

    #[test]
    fn choose_social_actions_books_chats_in_initiator_order_and_refuses_busy_partners() {
        let offered = Offered::default();
        let script = social_script(
            vec![(0, chat(2, 50)), (1, chat(2, 60)), (2, chat(3, 30))],
            &offered,
        );
        // 4 has no contacts; 5 (3's contact) is watching; 6 (0's contact) is not active but free.
        let edges = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 5), (6, 0)];
        let mut t = tiny(7, &edges, "", script);
        t.at_round(2);
        let now = t.now_minutes();
        t.activate(&[0, 1, 2, 3, 4, 5]);
        for u in 0..5 {
            t.set(u, Choice(TopAction::Social));
            t.set(
                u,
                SocialPlan {
                    chat_with: Some(UserId(6)),
                    post: true,
                },
            ); // last round's plan
        }
        t.set(5, Choice(TopAction::Recommender));
        let watching = Engagement {
            kind: EngagementKind::Watching,
            until_minutes: now + 120,
        };
        t.set(5, watching);

        t.run(choose_social_actions);

        assert_eq!(
            *offered.lock().unwrap(),
            vec![
                (0, vec![1, 2, 6]),
                (1, vec![0, 2]),
                (2, vec![0, 1, 3]),
                (3, vec![2]),
            ]
        );
        // 0 books 2 (50 min snapped to 1 h, counted); 1 finds its partner 2 busy; 2, booked by
        // 0, cannot start a chat of its own with the free 3.
        let plans: Vec<SocialPlan> = (0..5).map(|u| t.get::<SocialPlan>(u)).collect();
        let chat_with_2 = SocialPlan {
            chat_with: Some(UserId(2)),
            post: false,
        };
        let post = SocialPlan {
            chat_with: None,
            post: true,
        };
        let nothing = SocialPlan::default();
        assert_eq!(plans, vec![chat_with_2, nothing, nothing, post, nothing]);
        let chatting = Engagement {
            kind: EngagementKind::Chatting,
            until_minutes: now + 60,
        };
        let engagements: Vec<Engagement> = (0..7).map(|u| t.get::<Engagement>(u)).collect();
        let idle = Engagement::default();
        assert_eq!(
            engagements,
            vec![chatting, idle, chatting, idle, idle, watching, idle]
        );
        let going = |u: u32| {
            (
                i64::from(u),
                "SOCIAL",
                format!("U{u} is going to social media."),
            )
        };
        assert_eq!(
            t.messages(),
            vec![
                going(0),
                going(1),
                going(2),
                going(3),
                (4, "SOCIAL", "U4 has no acquaintance.".to_string()),
                (
                    1,
                    "LEAVE",
                    "U1 wants to chat with U2 (2), but one of them is already chatting. So U1 \
                     does nothing."
                        .to_string()
                ),
                (
                    2,
                    "LEAVE",
                    "U2 wants to chat with U3 (3), but one of them is already chatting. So U2 \
                     does nothing."
                        .to_string()
                ),
            ]
        );
        assert_eq!(t.counter("no_acquaintance"), 1);
        assert_eq!(t.requests_and_fallbacks("social"), (4, 1));
    }

    #[test]
    fn choose_social_actions_a_chatting_agent_gets_no_candidates_and_posting_does_not_block() {
        let offered = Offered::default();
        let script = social_script(vec![(0, chat(1, 30)), (1, chat(3, 120))], &offered);
        // One random stranger per social agent: for 1 (contacts 0 and 2) only 3 is a stranger.
        let mut t = tiny(4, &[(0, 1), (1, 2)], "social_random_contacts: 1\n", script);
        t.at_round(3);
        let now = t.now_minutes();
        t.activate(&[0, 1]);
        t.set(0, Choice(TopAction::Social));
        t.set(1, Choice(TopAction::Social));
        // 0 is still in last round's long chat; 1 is writing a post, which does not block.
        let long_chat = Engagement {
            kind: EngagementKind::Chatting,
            until_minutes: now + 30,
        };
        t.set(0, long_chat);
        t.set(
            1,
            Engagement {
                kind: EngagementKind::Posting,
                until_minutes: now + 5,
            },
        );

        t.run(choose_social_actions);

        assert_eq!(*offered.lock().unwrap(), vec![(0, vec![]), (1, vec![2, 3])]);
        // 0's chat does not fit its empty list: the fallback, a post (counted).
        assert_eq!(
            t.get::<SocialPlan>(0),
            SocialPlan {
                chat_with: None,
                post: true
            }
        );
        assert_eq!(t.get::<SocialPlan>(1).chat_with, Some(UserId(3)));
        assert_eq!(t.get::<Engagement>(0), long_chat);
        let two_hours = Engagement {
            kind: EngagementKind::Chatting,
            until_minutes: now + 120,
        };
        assert_eq!(t.get::<Engagement>(1), two_hours);
        assert_eq!(t.get::<Engagement>(3), two_hours);
        assert_eq!(t.requests_and_fallbacks("social"), (2, 1));
    }

    #[test]
    fn hold_chats_writes_lines_mentions_heard_histories_and_one_shared_transcript() {
        // Pair (0, 2): 0 names <Heat> in a marked span (detected), 2 names The Matrix by id.
        // Pair (1, 3): three lines, cut to chat_max_turns = 2.
        let script = Script::new().on::<Chat>(|r, _| {
            let (a, b) = (r.agent.id, r.ask.partner.id);
            let line = |speaker, text: &str, mentions: Vec<ItemId>| Utterance {
                speaker,
                text: text.into(),
                mentions,
            };
            Some(if a.0 == 0 {
                vec![
                    line(a, "Have you seen <Heat>?", vec![]),
                    line(b, "  Not yet, but I loved its rival.  ", vec![MATRIX]),
                ]
            } else {
                vec![
                    line(a, "Hello.", vec![]),
                    line(b, "Hi.", vec![]),
                    line(a, "Bye.", vec![]),
                ]
            })
        });
        let mut t = tiny(4, &[(0, 2), (1, 3)], "chat_max_turns: 2\n", script);
        t.at_round(4);
        t.activate(&[0, 1]);
        let plan = |u| SocialPlan {
            chat_with: Some(UserId(u)),
            post: false,
        };
        t.set(0, plan(2));
        t.set(1, plan(3));
        // 2 rated The Matrix 4 (its stated rating when it names it); 0 has not rated Heat.
        t.set(
            2,
            Histories {
                watched: vec![(MATRIX, 4)],
                heard: vec![],
            },
        );
        t.set(
            0,
            Histories {
                watched: vec![(HEAT, 0)],
                heard: vec![],
            },
        );

        t.run(hold_chats);

        assert_eq!(
            t.messages(),
            vec![
                (0, "CHAT", "U0 is chatting with U2 (2).".to_string()),
                (0, "CHAT", "U0 says: Have you seen <Heat>?".to_string()),
                (
                    0,
                    "CHAT",
                    "U2 says:   Not yet, but I loved its rival.  ".to_string()
                ),
                (1, "CHAT", "U1 is chatting with U3 (3).".to_string()),
                (1, "CHAT", "U1 says: Hello.".to_string()),
                (1, "CHAT", "U3 says: Hi.".to_string()),
            ]
        );
        assert_eq!(t.counter("chats"), 2);
        assert_eq!(t.counter("chat_lines"), 4);
        assert_eq!(t.counter("mentions"), 2);
        assert_eq!(t.requests_and_fallbacks("chat"), (2, 0));
        assert_eq!(
            t.world().resource::<crate::sim::RoundLog>().mentions,
            vec![HEAT, MATRIX]
        );
        // The listener hears each line's items: 2 heard Heat from 0, 0 heard The Matrix from 2.
        assert_eq!(t.get::<Histories>(2).heard, vec![(HEAT, 4)]);
        assert_eq!(t.get::<Histories>(0).heard, vec![(MATRIX, 4)]);
        // With the speakers' ratings: 0 had watched Heat but not rated it (none), 2 rated The
        // Matrix 4.
        assert_eq!(
            t.world().resource::<crate::sim::RoundLog>().hearings(),
            &[
                crate::sim::Hearing {
                    listener: UserId(2),
                    speaker: UserId(0),
                    item: HEAT,
                    stated: None,
                },
                crate::sim::Hearing {
                    listener: UserId(0),
                    speaker: UserId(2),
                    item: MATRIX,
                    stated: Some(4),
                },
            ]
        );
        assert!(t.get::<Histories>(1).heard.is_empty() && t.get::<Histories>(3).heard.is_empty());

        let t02 = "[U0]: Have you seen <Heat>?\n[U2]: Not yet, but I loved its rival.";
        let t13 = "[U1]: Hello.\n[U3]: Hi.";
        use ObservationKind::Chatted;
        let pending = t.pending();
        assert_eq!(
            pending,
            vec![
                obs_text(0, 4, Chatted, Some(HEAT), Some(2), t02),
                obs_text(2, 4, Chatted, Some(HEAT), Some(0), t02),
                obs_text(1, 4, Chatted, None, Some(3), t13),
                obs_text(3, 4, Chatted, None, Some(1), t13),
            ]
        );
        let text = |r: &MemoryRecord| r.text.clone().unwrap();
        assert!(Arc::ptr_eq(&text(&pending[0].1), &text(&pending[1].1)));
        assert!(Arc::ptr_eq(&text(&pending[2].1), &text(&pending[3].1)));
    }
}

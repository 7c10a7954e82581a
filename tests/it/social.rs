//! Social behaviour: chats between available related agents, transcripts in both memories,
//! posts reaching exactly the author's contacts (also at 500 contacts), random strangers, and
//! mention detection on real catalogues. A scripted backend fixes every decision, so the
//! assertions are exact.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use recagent::behaviour::scripted::ScriptedBackend;
use recagent::behaviour::{Feeling, PageAction, PostDraft, SocialAction, Utterance};
use recagent::catalog::Catalog;
use recagent::clock::SimClock;
use recagent::components::{Engagement, EngagementKind, Histories, Memory, ObservationKind};
use recagent::config::SimConfig;
use recagent::decision::chat::Chat;
use recagent::decision::feel::Feel;
use recagent::decision::page::Page;
use recagent::decision::post::Post;
use recagent::decision::social::Social;
use recagent::decision::top::{Top, TopAction};
use recagent::decision::Script;
use recagent::ids::{ItemId, UserId};
use recagent::io::data::{load_items, Source};
use recagent::sim::{Sim, SimBuilder};
use recagent::social::detect_mentions;
use recagent::systems::broadcast::{Inbox, PostBoard};
use recagent::systems::chat::ChatSettings;
use recagent::world::Roster;

use crate::common::{messages, paths, shared};

const ITEMS: &str = "id,title,genre,description\n\
    0,Toy Story,Animation|Comedy,Toys.\n\
    1,\"Matrix, The (1999)\",Action|Sci-Fi,A hacker.\n\
    2,Heat (1995),Action|Crime,A heist.\n";

/// Every decision fixed by the test; the `available` lists offered to social agents are recorded.
#[derive(Default)]
struct Plan {
    top: BTreeMap<u32, TopAction>,
    social: BTreeMap<u32, SocialAction>,
    offered: Mutex<Vec<(u32, Vec<UserId>)>>,
}

/// The scripted backend of `plan`: memory steps get their kinds' fallbacks.
fn backend(plan: &Arc<Plan>) -> ScriptedBackend {
    let (top, social) = (plan.clone(), plan.clone());
    ScriptedBackend::new(
        Script::new()
            .on::<Top>(move |r, _| Some(*top.top.get(&r.agent.id.0).unwrap_or(&TopAction::Nothing)))
            .on::<Page>(|_, _| Some(PageAction::Leave))
            .on::<Feel>(|_, _| {
                Some(Feeling {
                    rating: 3,
                    text: "ok".into(),
                })
            })
            .on::<Social>(move |r, _| {
                let u = r.agent.id.0;
                social.offered.lock().unwrap().push((u, r.ask.to_vec()));
                Some(*social.social.get(&u).unwrap_or(&SocialAction::Post))
            })
            // LLM-like text: no ids given, so the engine detects the mentions.
            .on::<Chat>(|r, _| {
                Some(vec![
                    Utterance {
                        speaker: r.agent.id,
                        text: "Have you seen <Matrix>?".into(),
                        mentions: vec![],
                    },
                    Utterance {
                        speaker: r.ask.partner.id,
                        text: "Yes, The Matrix (1999) and Toy Story are great.".into(),
                        mentions: vec![],
                    },
                ])
            })
            .on::<Post>(|_, _| {
                Some(PostDraft {
                    text: "Everyone should watch \"the matrix\"!".into(),
                    mentions: vec![],
                })
            }),
    )
}

/// A world of `n` agents (`U<i>`, ids 0..n) with the given undirected edges, the three-item
/// catalogue above and the scripted backend.
fn world(dir: &Path, n: u32, edges: &[(u32, u32)], extra: &str, script: &Arc<Plan>) -> Sim {
    let mut users = String::from("id,name,gender,age,traits,status,interest,feature\n");
    for i in 0..n {
        users.push_str(&format!(
            "{i},U{i},female,30,calm,Nurse,action movies,Watcher\n"
        ));
    }
    let mut rel = String::from("user_1,user_2,relationship,closeness\n");
    for &(a, b) in edges {
        rel.push_str(&format!("{a},{b},friend,0.5\n{b},{a},friend,0.5\n"));
    }
    std::fs::write(dir.join("item.csv"), ITEMS).unwrap();
    std::fs::write(dir.join("users.csv"), users).unwrap();
    std::fs::write(dir.join("rel.csv"), rel).unwrap();
    let text = format!(
        "item_path: item.csv\nuser_path: users.csv\nrelationship_path: rel.csv\nround: 3\n\
         active_prob: 1.0\n{extra}"
    );
    let cfg = SimConfig::from_yaml(&text, "test", dir.to_path_buf()).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    SimBuilder::new(cfg)
        .outputs(paths(&out))
        .backend(Box::new(backend(script)))
        .build()
        .unwrap()
}

fn get<C: bevy_ecs::component::Component + Clone>(sim: &Sim, u: u32) -> C {
    let w = sim.app.world();
    let e = w.resource::<Roster>().entity(UserId(u)).unwrap();
    w.get::<C>(e).unwrap().clone()
}

fn set_engagement(sim: &mut Sim, u: u32, g: Engagement) {
    let e = sim
        .app
        .world()
        .resource::<Roster>()
        .entity(UserId(u))
        .unwrap();
    *sim.app.world_mut().get_mut::<Engagement>(e).unwrap() = g;
}

fn messages_of(dir: &Path) -> Vec<(u32, i64, String, String)> {
    messages(&std::fs::read_to_string(dir.join("out/messages.jsonl")).unwrap())
}

#[test]
fn chat_only_between_available_related_agents_and_both_remember_it() {
    let tmp = tempfile::tempdir().unwrap();
    // 0 knows 1, 2, 3; 1 knows 2; 4 knows 5. Agent 3 is watching through round 1.
    let script = Arc::new(Plan {
        top: [(0, TopAction::Social), (1, TopAction::Social)].into(),
        social: [
            (
                0,
                SocialAction::Chat {
                    with: UserId(2),
                    minutes: 60,
                },
            ),
            (
                1,
                SocialAction::Chat {
                    with: UserId(2),
                    minutes: 120,
                },
            ),
        ]
        .into(),
        ..Default::default()
    });
    let mut sim = world(
        tmp.path(),
        6,
        &[(0, 1), (0, 2), (0, 3), (1, 2), (4, 5)],
        "",
        &script,
    );
    set_engagement(
        &mut sim,
        3,
        Engagement {
            kind: EngagementKind::Watching,
            until_minutes: 120,
        },
    );
    sim.step().unwrap();

    // Offered partners: free contacts only (3 is watching; 4 and 5 are not contacts).
    let offered = script.offered.lock().unwrap().clone();
    assert_eq!(
        offered,
        vec![
            (0, vec![UserId(1), UserId(2)]),
            (1, vec![UserId(0), UserId(2)])
        ]
    );
    // 0 books 2 first (id order); 1 then finds 2 busy and leaves.
    let st = sim.counters().snapshot();
    assert_eq!((st["chats"], st["chat_lines"], st["posts"]), (1, 2, 0));
    let msgs = messages_of(tmp.path());
    let has = |agent: i64, action: &str, content: &str| {
        msgs.iter()
            .any(|m| m.1 == agent && m.2 == action && m.3 == content)
    };
    assert!(has(0, "SOCIAL", "U0 is going to social media."));
    assert!(has(0, "CHAT", "U0 is chatting with U2 (2)."));
    assert!(has(0, "CHAT", "U0 says: Have you seen <Matrix>?"));
    assert!(has(
        0,
        "CHAT",
        "U2 says: Yes, The Matrix (1999) and Toy Story are great."
    ));
    assert!(has(
        1,
        "LEAVE",
        "U1 wants to chat with U2 (2), but one of them is already chatting. So U1 does nothing."
    ));
    // Both are chatting for the answer's 60 minutes from the round's time (round 1 = minute 0).
    let now = {
        let c = sim.app.world().resource::<SimClock>();
        (c.now() - c.start).num_minutes()
    };
    for u in [0, 2] {
        assert_eq!(
            get::<Engagement>(&sim, u),
            Engagement {
                kind: EngagementKind::Chatting,
                until_minutes: now + 60
            }
        );
    }
    assert_eq!(get::<Engagement>(&sim, 1).at(now), EngagementKind::Idle);

    // The transcript is in both memories, one shared allocation.
    let chat = |u: u32| {
        get::<Memory>(&sim, u)
            .observed
            .into_iter()
            .find(|r| r.kind == ObservationKind::Chatted)
            .unwrap()
    };
    let (m0, m2) = (chat(0), chat(2));
    let want =
        "[U0]: Have you seen <Matrix>?\n[U2]: Yes, The Matrix (1999) and Toy Story are great.";
    assert_eq!(m0.text.as_deref(), Some(want));
    assert!(Arc::ptr_eq(
        m0.text.as_ref().unwrap(),
        m2.text.as_ref().unwrap()
    ));
    assert_eq!((m0.other, m2.other), (Some(UserId(2)), Some(UserId(0))));
    assert_eq!(m0.item, Some(ItemId(1)));
    // Mentions detected in the text: line 1 names the Matrix (heard by 2), line 2 the Matrix and
    // Toy Story (heard by 0), all in round 1.
    assert_eq!(st["mentions"], 3);
    assert_eq!(get::<Histories>(&sim, 2).heard, vec![(ItemId(1), 1)]);
    assert_eq!(
        get::<Histories>(&sim, 0).heard,
        vec![(ItemId(1), 1), (ItemId(0), 1)]
    );
    assert!(get::<Memory>(&sim, 1)
        .observed
        .iter()
        .all(|r| r.kind != ObservationKind::Chatted));
}

#[test]
fn a_post_reaches_exactly_the_authors_contacts() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Arc::new(Plan {
        top: [(0, TopAction::Social)].into(),
        ..Default::default()
    });
    let mut sim = world(
        tmp.path(),
        6,
        &[(0, 1), (0, 2), (0, 3), (4, 5)],
        "",
        &script,
    );
    sim.step().unwrap();
    for u in 1..=3 {
        assert_eq!(get::<Inbox>(&sim, u).0.len(), 1, "contact {u}");
    }
    for u in [0, 4, 5] {
        assert!(get::<Inbox>(&sim, u).0.is_empty(), "non-contact {u}");
    }
    let st = sim.counters().snapshot();
    assert_eq!((st["posts"], st["deliveries"], st["mentions"]), (1, 3, 1));
    sim.step().unwrap();
    let msgs = messages_of(tmp.path());
    assert!(msgs.iter().any(|m| m
        == &(
            1,
            0,
            "POST".into(),
            "U0 posts: Everyone should watch \"the matrix\"!".into()
        )));
    assert!(msgs
        .iter()
        .any(|m| m == &(1, 0, "POST".into(), "3 contacts get this post.".into())));
    let readers: Vec<i64> = msgs
        .iter()
        .filter(|m| m.3.contains(" observes that U0 posts: "))
        .map(|m| {
            assert_eq!((m.0, m.2.as_str()), (2, "POST"));
            m.1
        })
        .collect();
    assert_eq!(readers, vec![1, 2, 3]);
    // Readers remember the post (the author's text, shared) and heard of the Matrix in round 2.
    let posted = get::<Memory>(&sim, 0)
        .observed
        .into_iter()
        .find(|r| r.kind == ObservationKind::Posted)
        .unwrap();
    for u in 1..=3 {
        let read = get::<Memory>(&sim, u)
            .observed
            .into_iter()
            .find(|r| r.kind == ObservationKind::ReadPost)
            .unwrap();
        assert_eq!(read.other, Some(UserId(0)));
        // `observed` holds each agent's latest round: the author's is round 2's post (same text,
        // its own allocation), the readers' is their reading of round 1's post.
        assert_eq!(read.text.as_deref(), posted.text.as_deref());
        assert_eq!(get::<Histories>(&sim, u).heard, vec![(ItemId(1), 2)]);
        // Post 0 was read and removed; agent 0 posted again in round 2 (post 1, unread).
        assert_eq!(get::<Inbox>(&sim, u).0, vec![recagent::ids::PostId(1)]);
    }
    for u in [4, 5] {
        assert!(get::<Histories>(&sim, u).heard.is_empty());
    }
}

#[test]
fn a_500_contact_post_completes_within_the_round() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Arc::new(Plan {
        top: [(0, TopAction::Social)].into(),
        ..Default::default()
    });
    let edges: Vec<(u32, u32)> = (1..=500).map(|i| (0, i)).collect();
    let mut sim = world(tmp.path(), 502, &edges, "", &script);
    sim.step().unwrap();
    // Delivered within round 1: exactly the 500 contacts, not agent 501.
    let st = sim.counters().snapshot();
    assert_eq!((st["posts"], st["deliveries"]), (1, 500));
    for u in 1..=500 {
        assert_eq!(get::<Inbox>(&sim, u).0.len(), 1, "contact {u}");
    }
    assert!(get::<Inbox>(&sim, 501).0.is_empty());
    assert_eq!(
        sim.app.world().resource::<PostBoard>().recipients.len(),
        500
    );
    // Read in round 2 by all 500, each holding the one shared text.
    sim.step().unwrap();
    let reads = (1..=500)
        .filter(|&u| {
            get::<Memory>(&sim, u)
                .observed
                .iter()
                .any(|r| r.kind == ObservationKind::ReadPost && r.other == Some(UserId(0)))
        })
        .count();
    assert_eq!(reads, 500);
    assert!(get::<Memory>(&sim, 501)
        .observed
        .iter()
        .all(|r| r.kind != ObservationKind::ReadPost));
    let msgs = messages_of(tmp.path());
    assert_eq!(
        msgs.iter()
            .filter(|m| m.0 == 2
                && m.3.starts_with("U")
                && m.3.contains(" observes that U0 posts: "))
            .count(),
        500
    );
}

#[test]
fn social_random_contacts_adds_exactly_k_non_contacts() {
    for k in [0u32, 5] {
        let tmp = tempfile::tempdir().unwrap();
        let script = Arc::new(Plan {
            top: [(0, TopAction::Social), (7, TopAction::Social)].into(),
            ..Default::default()
        });
        let mut sim = world(
            tmp.path(),
            30,
            &[(0, 1), (0, 2), (7, 8)],
            &format!("social_random_contacts: {k}\n"),
            &script,
        );
        // A watching stranger is never offered, but the k strangers are drawn before that filter,
        // so no agent is watching here: exactly k are offered.
        sim.step().unwrap();
        let offered = script.offered.lock().unwrap().clone();
        assert_eq!(offered.len(), 2);
        for (u, avail) in offered {
            let contacts: &[u32] = if u == 0 { &[1, 2] } else { &[8] };
            let strangers: Vec<&UserId> =
                avail.iter().filter(|x| !contacts.contains(&x.0)).collect();
            assert_eq!(strangers.len(), k as usize, "agent {u}: {avail:?}");
            assert!(strangers.iter().all(|x| x.0 != u && x.0 < 30));
            assert_eq!(avail.len(), contacts.len() + k as usize);
            assert!(avail.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn mentions_on_real_catalogues() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    let rec = Catalog::new(load_items(Source::Path(&dir.join("item.csv"))).unwrap()).unwrap();
    // RecAgent's own marker form in its descriptions: "<Matrix, The >".
    for text in [
        "The movie <Matrix, The > is great",
        "I loved The Matrix (1999).",
        "have you seen \"the matrix\"?",
        "Matrix, The: a classic",
    ] {
        assert_eq!(detect_mentions(&rec, text), vec![ItemId(2502)], "{text}");
    }
    assert_eq!(
        detect_mentions(&rec, "Toy Story, then <Jumanji>!"),
        vec![ItemId(1), ItemId(0)]
    );
    let Some(ml) = shared("agent4rec/datasets/ml-1m/raw_data/movies.dat") else {
        return;
    };
    let ml = Catalog::new(load_items(Source::Path(&ml)).unwrap()).unwrap();
    let matrix = ml
        .items()
        .iter()
        .find(|i| &*i.title == "Matrix, The (1999)")
        .unwrap()
        .id;
    for text in [
        "<The Matrix>",
        "The Matrix (1999) again",
        "<matrix, the (1999)>",
    ] {
        assert_eq!(detect_mentions(&ml, text), vec![matrix], "{text}");
    }
}

#[test]
fn a_chat_longer_than_the_interval_keeps_both_busy_next_round() {
    let tmp = tempfile::tempdir().unwrap();
    // Interval 1 h, chat 2 h: in round 2 (minute 60) agents 0 and 2 are still chatting.
    let script = Arc::new(Plan {
        top: [(0, TopAction::Social), (1, TopAction::Social)].into(),
        social: [(
            0,
            SocialAction::Chat {
                with: UserId(2),
                minutes: 120,
            },
        )]
        .into(),
        ..Default::default()
    });
    let mut sim = world(
        tmp.path(),
        4,
        &[(0, 1), (0, 2), (1, 2), (1, 3)],
        "interval: 1h\n",
        &script,
    );
    sim.step().unwrap();
    script.offered.lock().unwrap().clear();
    sim.step().unwrap();
    let offered = script.offered.lock().unwrap().clone();
    // 0 is itself chatting: no partner; 1 is offered only 3 (0 and 2 are busy).
    assert_eq!(offered, vec![(0, vec![]), (1, vec![UserId(3)])]);
    assert_eq!(sim.counters().get("chats"), 1, "no second chat for 0");
}

#[test]
fn social_keys_are_validated() {
    for (yaml, key, range) in [
        (
            "social_random_contacts: 101",
            "social_random_contacts",
            "0..=100",
        ),
        (
            "chat_hours: []",
            "chat_hours",
            "1..=8 values, each in (0, 24]",
        ),
        (
            "chat_hours: [1, 0]",
            "chat_hours",
            "1..=8 values, each in (0, 24]",
        ),
        ("chat_max_turns: 0", "chat_max_turns", "1..=50"),
        ("post_minutes: 2000", "post_minutes", "0..=1440"),
        (
            "offline: {heard_half_life_rounds: 0}",
            "offline.heard_half_life_rounds",
            "(0, 1000]",
        ),
    ] {
        let cfg = SimConfig::from_yaml(yaml, "t", ".".into());
        let e = match cfg {
            Err(e) => e.to_string(),
            Ok(c) => SimBuilder::new(c).check().unwrap_err().to_string(),
        };
        assert!(e.contains(key) && e.contains(range), "{yaml}: {e}");
    }
    let ok = SimConfig::from_yaml(
        "social_random_contacts: 3\nchat_hours: [0.25, 1]\nchat_max_turns: 2\npost_minutes: 0\n",
        "t",
        env!("CARGO_MANIFEST_DIR").into(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::new(ok, paths(tmp.path())).unwrap();
    let chat = sim.settings::<ChatSettings>();
    assert_eq!(
        (
            chat.social_random_contacts,
            chat.chat_hours.clone(),
            chat.chat_max_turns,
            sim.settings::<recagent::systems::broadcast::BroadcastSettings>()
                .post_minutes
        ),
        (3, vec![0.25, 1.0], 2, 0)
    );
}

#[test]
fn dialogue_is_cut_to_max_turns_and_length_snapped_to_chat_hours() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Arc::new(Plan {
        top: [(0, TopAction::Social)].into(),
        social: [(
            0,
            SocialAction::Chat {
                with: UserId(1),
                minutes: 45,
            },
        )]
        .into(),
        ..Default::default()
    });
    let mut sim = world(tmp.path(), 2, &[(0, 1)], "chat_max_turns: 1\n", &script);
    sim.step().unwrap();
    let st = sim.counters().snapshot();
    // One utterance kept ("Have you seen <Matrix>?"), so one mention, heard by 1 only.
    assert_eq!((st["chats"], st["chat_lines"], st["mentions"]), (1, 1, 1));
    assert_eq!(get::<Histories>(&sim, 1).heard, vec![(ItemId(1), 1)]);
    assert!(get::<Histories>(&sim, 0).heard.is_empty());
    // 45 minutes is not among 0.5 / 1 / 2 h: snapped to 30 (tie → shorter), counted.
    assert_eq!(get::<Engagement>(&sim, 0).until_minutes, 30);
    let fallbacks = sim
        .app
        .world()
        .resource::<recagent::behaviour::BehaviourStats>()
        .fallbacks_of("social");
    assert_eq!(fallbacks, 1);
}

#[test]
fn strangers_are_reproducible_and_never_the_initiator() {
    // The offline model over the demo data with 3 strangers per social agent and round: two runs
    // are byte-identical, and no agent chats with itself.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cfg = crate::common::demo_config()
        .with_overrides(&[("social_random_contacts".into(), "3".into())])
        .unwrap();
    cfg.round = 4;
    let ra = crate::common::run(cfg.clone(), a.path());
    let rb = crate::common::run(cfg, b.path());
    assert_eq!(ra.messages, rb.messages);
    assert!(ra.stats["chats"] > 0, "the demo run holds chats");
    for (_, agent, action, content) in messages(&ra.messages) {
        if action == "CHAT" && content.contains(" is chatting with ") {
            let id: i64 = content
                .rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(").")
                .parse()
                .unwrap();
            assert_ne!(id, agent, "no chat with oneself");
        }
    }
}

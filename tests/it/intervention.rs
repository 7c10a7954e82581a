//! Interventions between rounds (`recagent::intervention`): messages and interviews reach the
//! agent's memory and the messages output, settings change or are refused with the reason,
//! profile edits are validated and survive a resume, and a run configured to replay the
//! intervention log reproduces the original run byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

use recagent::components::{Memory, Profile, Taste};
use recagent::config::SimConfig;
use recagent::intervention::{Intervention, InterventionError, ProfilePatch};
use recagent::sim::Sim;
use tempfile::tempdir;

use crate::common::{messages, paths, read};

/// The demo data, `agents` agents, everyone active every round.
fn config(agents: u32, rounds: u32, extra: &str) -> SimConfig {
    let base = crate::common::demo_config();
    let mut sets = vec![
        ("agent_num".to_string(), agents.to_string()),
        ("round".to_string(), rounds.to_string()),
        ("active_prob".to_string(), "1".to_string()),
    ];
    for kv in extra.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        sets.push((k.into(), v.into()));
    }
    base.with_overrides(&sets).unwrap()
}

fn component<C: bevy_ecs::component::Component + Clone>(sim: &mut Sim, user: u32) -> C {
    let world = sim.world_mut();
    let e = world
        .resource::<recagent::world::Roster>()
        .entity(recagent::ids::UserId(user))
        .unwrap();
    world.get::<C>(e).unwrap().clone()
}

/// (user, item) -> rating of the round's watches, from `interaction.csv`.
fn watches(interactions: &str, round: u32) -> BTreeMap<(u32, u32), u8> {
    interactions
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2] == "1" && f[4] == round.to_string()).then(|| {
                (
                    (f[0].parse().unwrap(), f[1].parse().unwrap()),
                    f[3].parse().unwrap(),
                )
            })
        })
        .collect()
}

#[test]
fn a_message_and_an_interview_reach_memory_messages_and_the_log() {
    let dir = tempdir().unwrap();
    let p = paths(dir.path());
    let mut sim = Sim::new(config(6, 2, ""), p.clone()).unwrap();
    sim.step().unwrap();
    // A movie agent 1 watched in round 1, asked about by title: the offline answer states its
    // rating (module docs of `intervention::interview`).
    let w = watches(&read(&p.interactions), 1);
    let (&(user, item), &rating) = w.iter().next().expect("someone watched in round 1");
    let title = {
        let cat = sim.world().resource::<recagent::catalog::Catalog>();
        cat.by_id(recagent::ids::ItemId(item))
            .unwrap()
            .title
            .to_string()
    };
    let opinion = recagent::decision::offline::opinion(rating);
    let answer = sim
        .interview(user, &format!("Did you like <{title}>?"))
        .unwrap();
    assert_eq!(
        answer,
        format!("I watched <{title}> and gave it {rating} out of 5: {opinion}.")
    );
    let other = (user + 1) % 6;
    sim.send_message(other, "  Try a comedy\ntonight. ")
        .unwrap();
    assert_eq!(sim.interventions().len(), 2);
    sim.step().unwrap();

    let name = |sim: &mut Sim, u: u32| component::<Profile>(sim, u).name.to_string();
    let (asked, told) = (name(&mut sim, user), name(&mut sim, other));
    let msgs = messages(&read(&p.messages));
    let round2: Vec<_> = msgs.iter().filter(|m| m.0 == 2).collect();
    assert!(round2.iter().any(|m| m.1 == i64::from(user)
        && m.2 == "INTERVIEW"
        && m.3 == format!("{asked} is asked: Did you like <{title}>? {asked} answers: {answer}")));
    assert!(round2.iter().any(|m| m.1 == i64::from(other)
        && m.2 == "MESSAGE"
        && m.3 == format!("{told} receives a message: Try a comedy tonight.")));
    // Nothing of them in round 1's messages.
    assert!(!msgs
        .iter()
        .any(|m| m.0 == 1 && (m.2 == "INTERVIEW" || m.2 == "MESSAGE")));
    // Written to memory in round 2's remember phase.
    let mem = component::<Memory>(&mut sim, other);
    assert!(mem.observed.iter().any(|r| r.text.as_deref()
        == Some(&*format!(
            "{told} received a message: Try a comedy tonight."
        ))));
    let mem = component::<Memory>(&mut sim, user);
    assert!(mem
        .observed
        .iter()
        .any(
            |r| r.text.as_deref().is_some_and(|t| t.starts_with(&format!(
                "{asked} was interviewed. Question: Did you like <{title}>? Answer: I watched"
            )))
        ));
    // The log: both before round 2, in order, the answer kept.
    let log = read(&dir.path().join("interventions.jsonl"));
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["before_round"], 2);
    assert_eq!(lines[0]["seq"], 0);
    assert_eq!(lines[0]["intervention"]["kind"], "interview");
    assert_eq!(lines[0]["answer"], answer);
    assert_eq!(lines[1]["seq"], 1);
    assert_eq!(lines[1]["intervention"]["kind"], "message");
    // Recorded as the agent got it: on one line.
    assert_eq!(lines[1]["intervention"]["text"], "Try a comedy tonight.");
    assert_eq!(sim.counters().get("interventions"), 2);
}

#[test]
fn bad_interventions_are_refused_and_change_nothing() {
    let dir = tempdir().unwrap();
    let mut sim = Sim::new(config(4, 1, ""), paths(dir.path())).unwrap();
    // Before any round: who the agent is, from its profile (module docs of the interview).
    let prof = component::<Profile>(&mut sim, 1);
    let first = prof.name.split_whitespace().next().unwrap().to_string();
    assert_eq!(
        sim.interview(1, "Tell me about yourself.").unwrap(),
        format!(
            "I'm {first}, {} years old, and I mostly enjoy {}. I have not watched anything here yet.",
            prof.age,
            prof.interest.trim()
        )
    );
    let applied = sim.interventions().len();
    let e = sim.send_message(99, "hello").unwrap_err();
    assert!(matches!(e, InterventionError::UnknownAgent(99)), "{e}");
    let e = sim.send_message(0, " \n ").unwrap_err();
    assert_eq!(e.to_string(), "text: 0 characters: allowed 1..=2000");
    let before = component::<Profile>(&mut sim, 0);
    let e = sim
        .edit_profile(
            0,
            ProfilePatch {
                interest: Some("Comedy".into()),
                age: Some(0),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "age: 0 is out of range: allowed 1..=120");
    let e = sim
        .edit_profile(
            0,
            ProfilePatch {
                name: Some("Bob".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().starts_with("name: the name cannot change"),
        "{e}"
    );
    // Every field is checked before anything changes: the interest did not change either.
    assert_eq!(component::<Profile>(&mut sim, 0).interest, before.interest);

    // Texts are never cut: 2,001 characters are refused; newlines become spaces.
    let e = sim.send_message(0, &"a".repeat(2_001)).unwrap_err();
    assert_eq!(e.to_string(), "text: 2001 characters: allowed 1..=2000");
    let e = sim
        .edit_profile(0, ProfilePatch::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("patch: nothing to change"), "{e}");
    // A key a branch refuses too: the branch's reason, and no advice to branch.
    let e = sim.set_setting("agent_num", "3").unwrap_err().to_string();
    assert_eq!(
        e,
        "`agent_num` cannot change mid-run: the population and catalogue are fixed by the checkpoint; the settings that can change mid-run are active_prob, page_size, rec_model, rec_random_k"
    );
    let e = sim.set_setting("lr", "0.1").unwrap_err().to_string();
    assert!(
        e.contains("it is read when the world is built") && e.contains("--set lr=..."),
        "{e}"
    );
    // Several settings change together or not at all.
    let e = sim.set_settings(&[
        ("active_prob".into(), "0.3".into()),
        ("page_size".into(), "0".into()),
    ]);
    assert!(matches!(e, Err(InterventionError::Config(_))), "{e:?}");
    let e = sim.set_settings(&[
        ("page_size".into(), "2".into()),
        ("rec_random_k".into(), "0".into()),
        ("agent_num".into(), "3".into()),
    ]);
    assert!(matches!(e, Err(InterventionError::Refused { .. })), "{e:?}");
    let e = sim
        .set_setting("active_method", "sample")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("activity levels are drawn at the start of a run"),
        "{e}"
    );
    let e = sim.set_setting("page_sise", "3").unwrap_err().to_string();
    assert!(e.contains("no setting is named `page_sise`"), "{e}");
    let e = sim.set_setting("page_size", "0").unwrap_err();
    assert!(matches!(e, InterventionError::Config(_)), "{e}");
    assert!(e.to_string().contains("page_size"), "{e}");
    let e = sim
        .set_setting("rec_random_k", "5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rec_random_k"), "{e}");
    assert_eq!(sim.interventions().len(), applied);
    assert_eq!(sim.counters().get("interventions"), 1);
    assert_eq!(
        sim.settings::<recagent::systems::recommend::RecommendSettings>()
            .page_size,
        5
    );
}

/// Items shown per user in `round` (shown-only rows and watched rows), from `interaction.csv`.
fn shown_per_user(interactions: &str, round: u32) -> BTreeMap<u32, usize> {
    let mut n = BTreeMap::new();
    for l in interactions.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f[4] == round.to_string() {
            *n.entry(f[0].parse().unwrap()).or_insert(0) += 1;
        }
    }
    n
}

#[test]
fn live_settings_change_from_the_next_round() {
    let dir = tempdir().unwrap();
    let p = paths(dir.path());
    let mut sim = Sim::new(config(40, 2, "rec_random_k=0"), p.clone()).unwrap();
    sim.step().unwrap();
    sim.set_setting("page_size", "3").unwrap();
    sim.set_setting("rec_model", "Popularity").unwrap();
    sim.set_setting("active_prob", "0.9").unwrap();
    sim.step().unwrap();
    let text = read(&p.interactions);
    let (r1, r2) = (shown_per_user(&text, 1), shown_per_user(&text, 2));
    assert!(!r1.is_empty() && !r2.is_empty(), "{r1:?} {r2:?}");
    // Every page is full (200 demo films), so a user's shown items are whole pages.
    assert!(r1.values().all(|n| n % 5 == 0), "{r1:?}");
    assert!(r2.values().all(|n| n % 3 == 0), "{r2:?}");
    assert!(r2.values().any(|n| n % 5 != 0), "{r2:?}");
    let world = sim.world();
    assert_eq!(
        world.resource::<recagent::sim::RecState>().model.name(),
        "Popularity"
    );
    assert_eq!(
        world.resource::<SimConfig>().rec_model,
        recagent::config::RecModel::Popularity
    );
    let levels: Vec<f32> = {
        let w = sim.world_mut();
        let mut q = w.query::<&recagent::systems::activate::Activity>();
        q.iter(w).map(|a| a.level).collect()
    };
    assert_eq!(levels, vec![0.9; 40]);
    let sys: Vec<_> = messages(&read(&p.messages))
        .into_iter()
        .filter(|m| m.2 == "SETTING")
        .map(|m| (m.0, m.1, m.3))
        .collect();
    assert_eq!(
        sys,
        vec![
            (2, -1, "page_size set to 3".to_string()),
            (2, -1, "rec_model set to Popularity".to_string()),
            (2, -1, "active_prob set to 0.9".to_string()),
        ]
    );
}

#[test]
fn a_profile_edit_changes_the_tastes_and_survives_a_resume() {
    let dir = tempdir().unwrap();
    let p = paths(dir.path());
    let mut sim = Sim::new(config(4, 3, ""), p.clone()).unwrap();
    sim.step().unwrap();
    sim.edit_profile(
        2,
        ProfilePatch {
            age: Some(33),
            interest: Some("Comedy, Horror".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let genres = |sim: &mut Sim| {
        let t = component::<Taste>(sim, 2);
        let cat = sim.world().resource::<recagent::catalog::Catalog>();
        t.liked
            .iter()
            .map(|g| cat.genre_names()[g].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(genres(&mut sim), vec!["Comedy", "Horror"]);
    sim.step().unwrap();
    let ckpt = dir.path().join("round-2.ckpt");
    recagent::checkpoint::save(&mut sim, &ckpt, None).unwrap();
    let log_before = read(&dir.path().join("interventions.jsonl"));
    drop(sim);

    let (mut resumed, _) = recagent::checkpoint::resume(&ckpt, &[], None).unwrap();
    let prof = component::<Profile>(&mut resumed, 2);
    assert_eq!((prof.age, &*prof.interest), (33, "Comedy, Horror"));
    assert_eq!(genres(&mut resumed), vec!["Comedy", "Horror"]);
    assert_eq!(read(&dir.path().join("interventions.jsonl")), log_before);
    assert_eq!(resumed.interventions().len(), 1);
}

/// Runs `cfg` for 3 rounds into `dir`, with interventions before rounds 2 and 3 when `live`.
fn session(cfg: SimConfig, dir: &Path, live: bool) -> Vec<String> {
    let p = paths(dir);
    let mut sim = Sim::new(cfg, p.clone()).unwrap();
    sim.step().unwrap();
    if live {
        sim.send_message(1, "The festival starts tomorrow.")
            .unwrap();
        sim.interview(2, "What kind of movies do you like?")
            .unwrap();
        sim.set_setting("page_size", "4").unwrap();
    }
    sim.step().unwrap();
    if live {
        sim.queue_intervention(Intervention::Profile {
            agent: 0,
            patch: ProfilePatch {
                interest: Some("Documentary".into()),
                ..Default::default()
            },
        });
        sim.queue_intervention(Intervention::Message {
            agent: 99,
            text: "nobody".into(),
        });
    }
    sim.step().unwrap();
    // A run without interventions has no log.
    [
        "messages.jsonl",
        "interaction.csv",
        "metrics.csv",
        "interventions.jsonl",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|_| "<absent>".into()))
    .collect()
}

#[test]
fn replaying_the_intervention_log_reproduces_the_session() {
    let a = tempdir().unwrap();
    let live = session(config(6, 3, ""), a.path(), true);
    let log = a.path().join("interventions.jsonl");
    // The queued message to an unknown agent was logged and skipped, not recorded.
    assert_eq!(live[3].lines().count(), 4, "{}", live[3]);
    assert!(
        live[0].contains("\"action\":\"PROFILE\""),
        "profile edit missing"
    );

    let b = tempdir().unwrap();
    let replay = format!("interventions.replay={}", log.display());
    let again = session(config(6, 3, &replay), b.path(), false);
    for (x, y) in live.iter().zip(&again) {
        assert!(x == y, "replay differs:\n{x}\n---\n{y}");
    }
    // Without the interventions the run differs.
    let c = tempdir().unwrap();
    let plain = session(config(6, 3, ""), c.path(), false);
    assert_ne!(plain[0], live[0]);
    assert_eq!(plain[3], "<absent>");
}

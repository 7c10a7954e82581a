//! The behaviour of `examples/custom_behaviour.rs` (agents rate the posts in their inbox),
//! added to the shipped ones with one builder line: its counters reach the manifest, its
//! offline rule gives the hand-computed stars, its state survives a checkpoint and resume, a
//! run through the mock LLM replays byte for byte, and simulations without it refuse its
//! checkpoints and transcripts by name.

#[path = "../../examples/custom_behaviour.rs"]
mod example;

use std::path::Path;

use example::{PostRatingPlugin, PostRatings};
use recagent::checkpoint::{self, CheckpointError};
use recagent::components::Relationships;
use recagent::config::{BackendKind, SimConfig};
use recagent::sim::{Sim, SimBuilder};
use recagent::world::Roster;

use crate::common::{messages, paths};
use crate::llm_mock::{prompt_of, sensible_answer, Mock, Step};

/// The demo data with `rest` appended, as a file in `dir` (so errors can name lines).
fn config(dir: &Path, rest: &str) -> SimConfig {
    let r = env!("CARGO_MANIFEST_DIR");
    let path = dir.join("run.yaml");
    std::fs::write(
        &path,
        format!(
            "item_path: {r}/data/item.csv\nuser_path: {r}/data/users.csv\n\
             relationship_path: {r}/data/relationship.csv\nactive_prob: 0.8\n{rest}"
        ),
    )
    .unwrap();
    SimConfig::load(&path).unwrap()
}

fn build(cfg: SimConfig, out: &Path) -> Sim {
    SimBuilder::new(cfg)
        .plugins(PostRatingPlugin)
        .outputs(paths(out))
        .build()
        .unwrap()
}

/// Every agent's `PostRatings`, by id.
fn ratings(sim: &mut Sim) -> Vec<(u32, PostRatings)> {
    let roster = sim.world().resource::<Roster>().clone();
    roster
        .ids
        .iter()
        .zip(&roster.entities)
        .map(|(id, &e)| (id.0, sim.world().get::<PostRatings>(e).unwrap().clone()))
        .collect()
}

#[test]
fn counters_reach_the_manifest_and_the_offline_rule_gives_the_hand_computed_stars() {
    let tmp = tempfile::tempdir().unwrap();
    // No noise and no mention term: stars = clamp(round(1 + 4 × closeness), 1, 5).
    let cfg = config(
        tmp.path(),
        "round: 4\npost_ratings:\n  base: 1\n  closeness_weight: 4\n  mention_weight: 0\n  noise: 0\n  keep: 100\n",
    );
    let out = tmp.path().join("out");
    let mut sim = build(cfg, &out);
    for _ in 0..4 {
        sim.step().unwrap();
    }
    sim.write_manifest("finished").unwrap();
    let all = ratings(&mut sim);
    let (count, stars): (u32, u32) = all
        .iter()
        .fold((0, 0), |(c, s), (_, r)| (c + r.count, s + r.stars));
    assert!(count > 10, "the demo run rates posts: {count}");
    let roster = sim.world().resource::<Roster>().clone();
    let mut checked = 0;
    for (id, r) in &all {
        let e = roster.entity(recagent::ids::UserId(*id)).unwrap();
        let rel = sim.world().get::<Relationships>(e).unwrap();
        for &(_, author, s) in &r.latest {
            let c = rel
                .0
                .iter()
                .find(|c| c.user == author)
                .map_or(0.0, |c| f64::from(c.closeness));
            let want = (1.0 + 4.0 * c).round().clamp(1.0, 5.0) as u8;
            assert_eq!(s, want, "agent {id} rating author {author} (closeness {c})");
            checked += 1;
        }
    }
    assert_eq!(checked, count);
    // The counters are in the manifest's summary and match the component and the messages.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["summary"]["posts_rated"], u64::from(count));
    assert_eq!(m["summary"]["post_stars"], u64::from(stars));
    assert_eq!(m["behaviour_requests"]["rate_post"], u64::from(count));
    assert_eq!(m["config"]["post_ratings"]["closeness_weight"], 4.0);
    let msgs = messages(&std::fs::read_to_string(out.join("messages.jsonl")).unwrap());
    let rated = msgs.iter().filter(|m| m.2 == "RATE").count();
    assert_eq!(rated as u32, count);
    // And in the summary, formatted by the plugin.
    let line = sim
        .counters()
        .summary()
        .into_iter()
        .find(|(g, _)| *g == "post ratings")
        .unwrap()
        .1;
    assert_eq!(
        line,
        format!(
            "posts rated {count} · mean {:.2} stars",
            f64::from(stars) / f64::from(count)
        )
    );
}

#[test]
fn its_state_survives_checkpoint_and_resume_and_is_refused_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "round: 4\n");
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    let mut a = build(cfg.clone(), &full);
    for _ in 0..4 {
        a.step().unwrap();
    }
    let mut b = build(cfg, &part);
    b.step().unwrap();
    b.step().unwrap();
    let ckpt = part.join("round-2.ckpt");
    let header = checkpoint::save(&mut b, &ckpt, None).unwrap();
    assert!(header.parts.contains(&"post_ratings".to_string()));
    let before = ratings(&mut b);
    assert!(
        before.iter().any(|(_, r)| r.count > 0),
        "ratings by round 2"
    );
    drop(b);
    // Without the plugin: refused, naming the part (before any file is touched).
    let len = std::fs::metadata(part.join("messages.jsonl"))
        .unwrap()
        .len();
    let e = checkpoint::resume(&ckpt, &[], None).err().unwrap();
    assert!(
        matches!(&e, CheckpointError::Parts { difference, .. } if difference.contains("post_ratings")),
        "{e}"
    );
    assert!(e.to_string().contains("post_ratings"), "{e}");
    assert_eq!(
        std::fs::metadata(part.join("messages.jsonl"))
            .unwrap()
            .len(),
        len
    );
    // With it: the state comes back as it was, and the run ends as the uninterrupted one.
    let (mut resumed, _) =
        checkpoint::resume_with(&ckpt, &[], None, |b| b.plugins(PostRatingPlugin)).unwrap();
    assert_eq!(ratings(&mut resumed), before);
    while resumed.round() < 4 {
        resumed.step().unwrap();
    }
    assert_eq!(ratings(&mut resumed), ratings(&mut a));
    assert_eq!(
        checkpoint::state_hash(&checkpoint::capture(resumed.world_mut()).unwrap()),
        checkpoint::state_hash(&checkpoint::capture(a.world_mut()).unwrap())
    );
    drop((a, resumed));
    for f in ["messages.jsonl", "interaction.csv"] {
        assert_eq!(
            std::fs::read(full.join(f)).unwrap(),
            std::fs::read(part.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn a_mock_llm_run_with_it_replays_byte_for_byte() {
    // The mock answers the rating template's `RATING: <integer 1-5>` line as it answers feelings.
    let mock = Mock::start(|b, _| Step::Answer(sensible_answer(b)));
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(
        tmp.path(),
        &format!(
            "round: 3\nagent_num: 12\nbackend: llm\napi_bases: [{}]\napi_keys: [sk-x]\nllm_options:\n  backoff_base_ms: 1\n",
            mock.base
        ),
    );
    cfg.agent_num = Some(12);
    let rec = tmp.path().join("rec");
    let mut sim = build(cfg.clone(), &rec);
    for _ in 0..3 {
        sim.step().unwrap();
    }
    let rated = sim.counters().get("posts_rated");
    drop(sim);
    let transcript = rec.join("transcript.jsonl");
    let t = std::fs::read_to_string(&transcript).unwrap();
    let rate_lines = t
        .lines()
        .filter(|l| l.contains("\"phase\":\"RatePost\""))
        .count();
    assert!(rate_lines > 0 && rated > 0, "{rate_lines} {rated}");
    assert!(
        mock.seen
            .lock()
            .unwrap()
            .iter()
            .any(|(b, _)| prompt_of(b).contains("posted on social media:")),
        "the template reached the server"
    );

    let mut replay = cfg;
    replay.backend = BackendKind::Replay;
    replay.api_bases = vec!["http://127.0.0.1:9/v1".into()];
    replay.transcript_path = Some(transcript.clone());
    let hits = mock.hits.load(std::sync::atomic::Ordering::SeqCst);
    let rep = tmp.path().join("rep");
    let mut r = build(replay.clone(), &rep);
    for _ in 0..3 {
        r.step().unwrap();
    }
    assert_eq!(r.llm_usage().unwrap().replay_mismatches, 0);
    drop(r);
    assert_eq!(mock.hits.load(std::sync::atomic::Ordering::SeqCst), hits);
    for f in ["messages.jsonl", "interaction.csv"] {
        assert_eq!(
            std::fs::read(rec.join(f)).unwrap(),
            std::fs::read(rep.join(f)).unwrap(),
            "{f}"
        );
    }
    // Replayed without the plugin, the transcript's phase is unknown: a clear error.
    let e = Sim::new(replay, paths(&tmp.path().join("bad")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("RatePost") && e.contains("not registered"),
        "{e}"
    );
}

#[test]
fn its_settings_are_checked_with_their_keys_and_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |rest: &str| {
        SimBuilder::new(config(tmp.path(), rest))
            .plugins(PostRatingPlugin)
            .check()
            .map_err(|e| e.to_string())
    };
    assert!(check("post_ratings:\n  noise: 1\n").is_ok());
    let e = check("round: 2\npost_ratings:\n  noise: 3\n").unwrap_err();
    assert!(
        e.ends_with(
            "run.yaml:7: invalid value for `post_ratings.noise`: 3 is out of range: allowed 0..=2"
        ),
        "{e}"
    );
    let e = check("post_ratings:\n  nosie: 1\n").unwrap_err();
    assert!(e.contains("post_ratings") && e.contains("nosie"), "{e}");
    let e = check("post_ratings: 5\n").unwrap_err();
    assert!(e.contains("`post_ratings`") && e.contains("mapping"), "{e}");
    // Without the plugin, its section is an unknown key.
    let e = SimBuilder::new(config(tmp.path(), "post_ratings:\n  noise: 1\n"))
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown field `post_ratings`") && e.contains("line 5"),
        "{e}"
    );
}

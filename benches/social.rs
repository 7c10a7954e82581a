//! Social benchmarks (release: `cargo bench --bench social`). Prints figures, no assertions.
//!
//! 1. Post fan-out: median wall time of a round in which one agent posts to N contacts (and the
//!    previous round's post to the same N is read), against the same world with the author idle.
//!    The bar: a 500-contact post must not stall a round.
//! 2. `detect_mentions` on RecAgent's catalogue (`../shared/data/recagent/item.csv`, skipped when
//!    absent): a typical dialogue, and a misspelt marked title (fuzzy pass over the catalogue).

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(missing_docs, reason = "bench binary")]

use std::path::Path;
use std::time::Instant;

use recagent::behaviour::scripted::ScriptedBackend;
use recagent::behaviour::{PostDraft, SocialAction};
use recagent::catalog::Catalog;
use recagent::config::SimConfig;
use recagent::decision::page::{Page, PageAction};
use recagent::decision::post::Post;
use recagent::decision::social::Social;
use recagent::decision::top::{Top, TopAction};
use recagent::decision::Script;
use recagent::io::data::{load_items, Source};
use recagent::io::output::OutputPaths;
use recagent::sim::SimBuilder;
use recagent::social::detect_mentions;

/// Agent 0 goes to social media and posts (when `post`); everyone else does nothing; the other
/// kinds get their fallbacks (the shared scripted backend).
fn one_poster(post: bool) -> ScriptedBackend {
    ScriptedBackend::new(
        Script::new()
            .on::<Top>(move |r, _| {
                Some(if post && r.agent.id.0 == 0 {
                    TopAction::Social
                } else {
                    TopAction::Nothing
                })
            })
            .on::<Page>(|_, _| Some(PageAction::Leave))
            .on::<Social>(|_, _| Some(SocialAction::Post))
            .on::<Post>(|_, _| {
                Some(PostDraft {
                    text: "Just watched <Toy Story>, 5/5!".into(),
                    mentions: vec![],
                })
            }),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median milliseconds per round over `rounds` rounds (after one warm-up round).
fn round_ms(dir: &Path, contacts: u32, post: bool, rounds: u32) -> f64 {
    let mut users = String::from("id,name,gender,age,traits,status,interest,feature\n");
    let mut rel = String::from("user_1,user_2,relationship,closeness\n");
    for i in 0..=contacts {
        users.push_str(&format!("{i},U{i},female,30,calm,Nurse,comedy,Watcher\n"));
        if i > 0 {
            rel.push_str(&format!("0,{i},friend,0.5\n{i},0,friend,0.5\n"));
        }
    }
    std::fs::write(
        dir.join("item.csv"),
        "id,title,genre,description\n0,Toy Story,Comedy,Toys.\n",
    )
    .unwrap();
    std::fs::write(dir.join("users.csv"), users).unwrap();
    std::fs::write(dir.join("rel.csv"), rel).unwrap();
    let text = format!(
        "item_path: item.csv\nuser_path: users.csv\nrelationship_path: rel.csv\nround: {}\n\
         active_prob: 1.0\nwrite_messages: false\n",
        rounds + 1
    );
    let cfg = SimConfig::from_yaml(&text, "bench", dir.to_path_buf()).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let paths = OutputPaths {
        messages: out.join("m.jsonl"),
        interactions: out.join("i.csv"),
        manifest: out.join("manifest.json"),
        log: out.join("run.log"),
    };
    let mut sim = SimBuilder::new(cfg)
        .outputs(paths)
        .backend(Box::new(one_poster(post)))
        .build()
        .unwrap();
    sim.step().unwrap();
    let times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            sim.step().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    assert_eq!(
        sim.counters().get("deliveries"),
        if post {
            u64::from(contacts) * u64::from(rounds + 1)
        } else {
            0
        }
    );
    median(times)
}

fn main() {
    println!(
        "post fan-out: median ms per round (one author; its previous post read the same round)"
    );
    println!(
        "{:>8} {:>12} {:>12} {:>10}",
        "contacts", "with post", "idle", "extra"
    );
    for n in [500u32, 5_000, 50_000] {
        let rounds = if n >= 50_000 { 5 } else { 11 };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let with = round_ms(a.path(), n, true, rounds);
        let idle = round_ms(b.path(), n, false, rounds);
        println!("{n:>8} {with:>12.3} {idle:>12.3} {:>10.3}", with - idle);
    }

    let item = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/recagent/item.csv");
    if !item.exists() {
        println!("detect_mentions: skipped ({} absent)", item.display());
        return;
    }
    let cat = Catalog::new(load_items(Source::Path(&item)).unwrap()).unwrap();
    let dialogue = "[Ann]: Hi Bo! I recently watched <Toy Story> and it was outstanding. Have you \
        seen anything good lately?\n[Bo]: I watched The Matrix and Jurassic Park last week, both \
        were great. You might like \"Heat\" too.\n[Ann]: Thanks, I will put them on my list!";
    for (label, text, n) in [
        ("dialogue (3 lines, 45 words)", dialogue, 2_000u32),
        (
            "fuzzy span <Jurasic Parc>",
            "Have you seen <Jurasic Parc>?",
            200,
        ),
    ] {
        let times: Vec<f64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(detect_mentions(&cat, std::hint::black_box(text)));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let found = detect_mentions(&cat, text);
        println!(
            "detect_mentions, {} items, {label}: median {:.1} µs, found {found:?}",
            cat.len(),
            median(times)
        );
    }
}

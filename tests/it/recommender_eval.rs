//! Recommender models: hand-computed ItemKNN similarities, no item shown twice, BPR training on
//! Agent4Rec's ML-1M split, warm start and retraining inside a simulation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use recagent::recommender::eval::{log_from_lists, Split};
use recagent::recommender::{
    build_page, cosine_neighbours, Content, External, InteractionLog, ItemKnn, LightGcn, Mf,
    Popularity, RandomRec, Recommender, TrainParams,
};
use recagent::rng::{stream_rng, Stream};

use crate::common::{demo_config, run, shared};

#[test]
fn itemknn_cosine_on_a_four_item_toy_set_by_hand() {
    // u0 = {0, 1}, u1 = {0, 1, 2}, u2 = {2, 3}. Users per item: 0:{u0,u1} 1:{u0,u1} 2:{u1,u2} 3:{u2}.
    // sim(0,1) = 2/√(2·2) = 1; sim(0,2) = sim(1,2) = 1/√(2·2) = 0.5; sim(2,3) = 1/√(2·1) = 0.7071;
    // sim(0,3) = sim(1,3) = 0 (no common user, so not listed).
    let lists = vec![vec![0, 1], vec![0, 1, 2], vec![2, 3]];
    let pos = recagent::recommender::train::Positives::from_lists(&lists, 4);
    let n = cosine_neighbours(&pos, 10);
    let h = std::f32::consts::FRAC_1_SQRT_2;
    let close = |a: &[(u32, f32)], b: &[(u32, f32)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 1e-6)
    };
    assert!(close(&n[0], &[(1, 1.0), (2, 0.5)]), "{:?}", n[0]);
    assert!(close(&n[1], &[(0, 1.0), (2, 0.5)]), "{:?}", n[1]);
    assert!(close(&n[2], &[(3, h), (0, 0.5), (1, 0.5)]), "{:?}", n[2]);
    assert!(close(&n[3], &[(2, h)]), "{:?}", n[3]);
    // Scores for u2 (history {2, 3}): item 0 = 0.5, item 1 = 0.5; ties by index.
    let mut knn = ItemKnn::new(10);
    knn.fit(&log_from_lists(&lists, 4));
    let mut rng = stream_rng(0, Stream::Recommender, &[]);
    let s = knn.recommend(2, 2, &|i| i >= 2, &mut rng);
    assert_eq!(s.items, vec![0, 1]);
    assert_eq!(s.scores, vec![0.5, 0.5]);
    // Keeping one neighbour keeps the most similar only.
    assert_eq!(cosine_neighbours(&pos, 1)[2], vec![(3, h)]);
}

fn small_params() -> TrainParams {
    TrainParams {
        dim: 8,
        lr: 0.01,
        epochs: 3,
        batch: 16,
        layers: 2,
        ..TrainParams::default()
    }
}

#[test]
fn no_model_shows_an_item_twice() {
    // 6 users, 30 items, a few watches; page through the whole catalogue for every user.
    let lists: Vec<Vec<u32>> = (0..6u32).map(|u| vec![u, u + 6, (u * 7) % 30]).collect();
    let genres = ndarray::Array2::from_shape_fn((30, 3), |(i, g)| f32::from(u8::from(i % 3 == g)));
    let models: Vec<Box<dyn Recommender>> = vec![
        Box::new(RandomRec::default()),
        Box::new(Popularity::default()),
        Box::new(Mf::new(small_params())),
        Box::new(LightGcn::new(small_params())),
        Box::new(ItemKnn::new(5)),
        Box::new(Content::new(genres, None)),
    ];
    for mut model in models {
        let mut log = InteractionLog::new(6, 30);
        for (u, l) in lists.iter().enumerate() {
            for &i in l {
                log.watch(u as u32, i, 4, 1);
            }
        }
        model.fit(&log);
        for u in 0..6u32 {
            let mut shown = Vec::new();
            for page_no in 0..20u64 {
                let mut rng = stream_rng(3, Stream::Recommender, &[u64::from(u), page_no]);
                let page = build_page(model.as_ref(), &log, u, 4, 1, &mut rng);
                if page.is_empty() {
                    break;
                }
                for i in page {
                    assert!(
                        log.expose(u, i),
                        "{}: item {i} shown twice to user {u}",
                        model.name()
                    );
                    shown.push(i);
                }
            }
            assert_eq!(
                shown.len(),
                30,
                "{}: user {u} saw the whole catalogue once",
                model.name()
            );
        }
    }
}

#[test]
fn bpr_loss_decreases_and_mf_beats_popularity_on_agent4rec_split() {
    let Some(dir) = shared("agent4rec/datasets/ml-1m/cf_data") else {
        return;
    };
    let split = Split::load(&dir).unwrap();
    assert_eq!((split.n_users, split.n_items), (1000, 3292));
    let mut pop = Popularity::default();
    let p = split.evaluate(&mut pop, false, 20);
    let mut mf = Mf::new(TrainParams {
        dim: 32,
        lr: 0.005,
        epochs: 10,
        batch: 256,
        reg: recagent::recommender::MF_DEFAULT_REG,
        ..TrainParams::default()
    });
    let m = split.evaluate(&mut mf, false, 20);
    eprintln!(
        "Popularity {p:?}; MF {m:?}; MF epoch losses {:?}",
        mf.epoch_loss
    );
    assert_eq!(m.users, 1000);
    for w in mf.epoch_loss.windows(2) {
        assert!(
            w[1] < w[0],
            "BPR loss decreases every epoch: {:?}",
            mf.epoch_loss
        );
    }
    assert!(
        mf.epoch_loss[0] < std::f32::consts::LN_2,
        "first epoch already below ln 2"
    );
    assert!(m.recall > p.recall * 1.2, "MF {m:?} beats Popularity {p:?}");
}

fn warm_file(dir: &std::path::Path) -> std::path::PathBuf {
    // Demo users 0..40, items 0..200; item 999 is unknown (dropped and counted); user 500 is a
    // background user.
    let p = dir.join("init.txt");
    std::fs::write(&p, "0 1 2 3 999\n1 2 3 4\n500 1 4 5 6 7\n2 7 8\n").unwrap();
    p
}

#[test]
fn simulation_with_trained_models_warm_start_and_retraining_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let init = warm_file(dir.path());
    for model in ["MF", "LightGCN", "ItemKNN", "MultVAE", "Content"] {
        let cfg = demo_config()
            .with_overrides(&[
                ("rec_model".into(), model.into()),
                ("round".into(), "3".into()),
                ("epoch_num".into(), "2".into()),
                ("embedding_size".into(), "8".into()),
                ("retrain_every".into(), "2".into()),
                ("rec_init_path".into(), init.display().to_string()),
                ("execution_mode".into(), "serial".into()),
            ])
            .unwrap();
        let a = run(cfg.clone(), &dir.path().join(format!("{model}-a")));
        let b = run(cfg, &dir.path().join(format!("{model}-b")));
        assert_eq!(a.manifest["recommender"], model);
        assert!(a.stats["pages_shown"] > 0, "{model} served pages");
        assert_eq!(
            a.interactions, b.interactions,
            "{model}: same seed, same interactions"
        );
        assert_eq!(a.messages, b.messages);
        // 14 records: item 999 unknown (dropped, counted); users 0, 1, 2 are agents, 500 is not.
        assert_eq!(
            a.manifest["warm_start"],
            serde_json::json!({"records": 14, "kept": 13, "unknown_items": 1, "agent_users": 3, "background_users": 1})
        );
    }
}

#[test]
fn external_recommender_round_trip_and_fallback() {
    // A one-shot HTTP server that answers every request with items [3, 3, 99, 1, 0].
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut rd = BufReader::new(s.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            rd.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        rd.read_exact(&mut body).unwrap();
        let reply = r#"{"items":[3,3,99,1,0],"scores":[0.9,0.8,0.7,0.6,0.5]}"#;
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
        String::from_utf8(body).unwrap()
    });
    let mut ext = External::new(&format!("http://{addr}/slate"));
    let mut log = InteractionLog::new(2, 5);
    log.watch(1, 2, 5, 1);
    log.watch(1, 2, 5, 1);
    log.watch(0, 4, 5, 1);
    ext.fit(&log);
    let mut rng = stream_rng(0, Stream::Recommender, &[]);
    let s = ext.recommend(1, 2, &|i| i == 1, &mut rng);
    // 3 kept, duplicate 3 dropped, 99 out of range dropped, 1 excluded dropped, 0 kept.
    assert_eq!(s.items, vec![3, 0]);
    assert_eq!(s.scores, vec![0.9, 0.5]);
    let body: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"user": 1, "k": 2, "exclude": [1], "history": [2]})
    );
    assert_eq!(ext.dropped.load(std::sync::atomic::Ordering::Relaxed), 3);
    // The server is gone: the request fails, is counted, and popularity answers.
    let s = ext.recommend(1, 2, &|i| i == 1, &mut rng);
    assert_eq!(s.items, vec![2, 4]);
    assert_eq!(ext.failures.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn retrain_every_zero_keeps_the_initial_fit() {
    // Popularity without warm start starts from all-zero counts (ranking by id). Retrained every
    // round it follows the watches, so the pages, and with them the run, differ.
    let dir = tempfile::tempdir().unwrap();
    let run_with = |every: &str| {
        let cfg = demo_config()
            .with_overrides(&[
                ("rec_model".into(), "Popularity".into()),
                ("round".into(), "4".into()),
                ("rec_random_k".into(), "0".into()),
                ("retrain_every".into(), every.into()),
            ])
            .unwrap();
        run(cfg, &dir.path().join(every)).interactions
    };
    let frozen = run_with("0");
    assert_ne!(frozen, run_with("1"));
    assert_eq!(
        frozen,
        run_with("1000"),
        "1000 > rounds: never retrained, as 0"
    );
}

#[test]
fn recommender_config_keys_are_checked() {
    use recagent::config::{RecModel, SimConfig};
    let parse = |t: &str| SimConfig::from_yaml(t, "t.yaml", std::path::PathBuf::from("/b"));
    for (name, m) in [
        ("MF", RecModel::MF),
        ("LightGCN", RecModel::LightGCN),
        ("ItemKNN", RecModel::ItemKNN),
        ("Content", RecModel::Content),
    ] {
        assert_eq!(parse(&format!("rec_model: {name}\n")).unwrap().rec_model, m);
    }
    let e = parse("rec_model: External\n").unwrap_err().to_string();
    assert!(
        e.contains("`rec_external_url`") && e.contains("http://"),
        "{e}"
    );
    let c = parse("rec_model: External\nrec_external_url: http://127.0.0.1:9/x\n").unwrap();
    assert_eq!(c.rec_external_url.as_deref(), Some("http://127.0.0.1:9/x"));
    let e = recagent::sim::SimBuilder::new(parse("seed: 1\nretrain_every: 2000000\n").unwrap())
        .check()
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "t.yaml:2: invalid value for `retrain_every`: 2000000 is out of range: allowed 0..=1000000"
    );
    assert_eq!(
        recagent::systems::record::RecordSettings::default().retrain_every,
        1
    );
}

#[test]
fn recommender_names_are_case_insensitive_with_ecosystem_spellings() {
    use recagent::config::{RecModel, SimConfig};
    let parse = |t: &str| SimConfig::from_yaml(t, "t.yaml", std::path::PathBuf::from("/b"));
    for (name, m) in [
        ("mf", RecModel::MF),
        ("Mf", RecModel::MF),
        ("BPR", RecModel::MF),
        ("bpr", RecModel::MF),
        ("popularity", RecModel::Popularity),
        ("Pop", RecModel::Popularity),
        ("POP", RecModel::Popularity),
        ("lightgcn", RecModel::LightGCN),
        ("LightGCN", RecModel::LightGCN),
        ("itemknn", RecModel::ItemKNN),
        ("ItemKNN", RecModel::ItemKNN),
        ("MultVAE", RecModel::MultVAE),
        ("multvae", RecModel::MultVAE),
        ("random", RecModel::Random),
    ] {
        assert_eq!(
            parse(&format!("seed: 1\nrec_model: {name}\n"))
                .unwrap()
                .rec_model,
            m,
            "{name}"
        );
    }
    // Written back canonically, so manifests and checkpoints keep one spelling.
    let c = parse("rec_model: pop\n").unwrap();
    assert_eq!(c.to_json()["rec_model"], "Popularity");
    // The same names on the command line.
    let c = c
        .with_overrides(&[("rec_model".into(), "bpr".into())])
        .unwrap();
    assert_eq!(c.rec_model, RecModel::MF);
    // Unknown: the accepted names, and the nearest one.
    let e = parse("seed: 1\nrec_model: Popp\n").unwrap_err().to_string();
    assert!(e.contains("line 2"), "{e}");
    assert!(
        e.contains("unknown recommender `Popp`: accepted Random, Popularity (Pop), MF (BPR), LightGCN, ItemKNN, MultVAE, Content, External (any case); did you mean `Pop`?"),
        "{e}"
    );
    let e = c
        .with_overrides(&[("rec_model".into(), "LightGNC".into())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `LightGCN`?"), "{e}");
    let e = RecModel::from_name("transformer").unwrap_err();
    assert!(!e.contains("did you mean"), "nothing is close: {e}");
    // And in eval-recommender, before any data is read.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args([
            "eval-recommender",
            "--models",
            "pop,itemnn",
            "--cf-dir",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--models: unknown recommender `itemnn`")
            && err.contains("did you mean `ItemKNN`?"),
        "{err}"
    );
}

#[test]
fn tuning_reads_train_and_valid_only() {
    use recagent::recommender::tune::{tune, Candidate, TuneSplit};
    // test.txt is not a valid file: reading it would fail (as Split::load shows).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.txt"), "0 0 1\n1 0 1 2\n2 2 3\n").unwrap();
    std::fs::write(dir.path().join("valid.txt"), "0 2\n2 0\n").unwrap();
    std::fs::write(dir.path().join("test.txt"), "not a test file\n").unwrap();
    assert!(Split::load(dir.path()).is_err());
    let split = TuneSplit::load(dir.path()).unwrap();
    let cands = vec![Candidate {
        model: "Popularity".into(),
        label: String::new(),
        make: Box::new(|| Box::new(Popularity::default())),
        step: 0,
        fits: 1,
    }];
    // Counts 0:2, 1:2, 2:2, 3:1; u0 (train {0, 1}) gets item 2, u2 (train {2, 3}) item 0:
    // both valid items hit at rank 1.
    let (trials, best) = tune(&split, &cands, 1, |_| {});
    assert_eq!(trials.len(), 1);
    assert_eq!(best["Popularity"].trial.valid.recall, 1.0);
    assert_eq!(best["Popularity"].trial.valid.users, 2);
    // The CLI's sweep reads the test split only after choosing: with no valid.txt it stops
    // before reading anything else.
    std::fs::remove_file(dir.path().join("valid.txt")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recagent"))
        .args(["eval-recommender", "--tune", "--models", "Pop", "--cf-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("valid.txt"), "{err}");
}

#[test]
fn multvae_beats_popularity_on_agent4rec_split() {
    let Some(dir) = shared("agent4rec/datasets/ml-1m/cf_data") else {
        return;
    };
    let split = Split::load(&dir).unwrap();
    let mut pop = Popularity::default();
    let p = split.evaluate(&mut pop, false, 20);
    // A quarter of the paper's widths and few epochs, so the debug build stays quick.
    let mut vae = recagent::recommender::MultVae::new(recagent::recommender::MultVaeParams {
        hidden: 150,
        latent: 50,
        epochs: 15,
        anneal_epochs: 10,
        lr: 0.002,
        ..Default::default()
    });
    let m = split.evaluate(&mut vae, false, 20);
    eprintln!(
        "Popularity {p:?}; MultVAE {m:?}; losses {:?}",
        vae.epoch_loss
    );
    assert!(vae.epoch_loss.last().unwrap() < &vae.epoch_loss[0]);
    assert!(m.recall > p.recall, "MultVAE {m:?} beats Popularity {p:?}");
}

/// Serves slates on its own thread: every third request (the 3rd, 6th, ...) gets HTTP 500,
/// the others the first `k` items not excluded, from the end of the catalogue.
struct FlakySlates {
    url: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FlakySlates {
    fn start(n_items: u32) -> Self {
        use axum::http::StatusCode;
        use axum::routing::post;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let requests = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (r, f) = (requests.clone(), failed.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().route(
                    "/slate",
                    post(move |axum::Json(req): axum::Json<serde_json::Value>| {
                        let (r, f) = (r.clone(), f.clone());
                        async move {
                            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                            if n % 3 == 0 {
                                f.fetch_add(1, Ordering::SeqCst);
                                return Err(StatusCode::INTERNAL_SERVER_ERROR);
                            }
                            let k = req["k"].as_u64().unwrap() as usize;
                            let ex: Vec<u64> = req["exclude"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_u64().unwrap())
                                .collect();
                            let items: Vec<u64> = (0..u64::from(n_items))
                                .rev()
                                .filter(|i| !ex.contains(i))
                                .take(k)
                                .collect();
                            Ok(axum::Json(serde_json::json!({ "items": items })))
                        }
                    }),
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self {
            url: format!("http://{addr}/slate"),
            requests,
            failed,
        }
    }
}

#[test]
fn external_failed_requests_are_counted_in_manifest_and_summary() {
    use std::sync::atomic::Ordering;
    let server = FlakySlates::start(200);
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config()
        .with_overrides(&[
            ("rec_model".into(), "external".into()),
            ("rec_external_url".into(), server.url.clone()),
            ("round".into(), "2".into()),
            ("rec_random_k".into(), "0".into()),
            ("execution_mode".into(), "serial".into()),
        ])
        .unwrap();
    let out = run(cfg, dir.path());
    let (requests, failed) = (
        server.requests.load(Ordering::SeqCst),
        server.failed.load(Ordering::SeqCst),
    );
    // Every third answer was a 500.
    assert_eq!(failed, requests / 3);
    assert!(failed > 0, "{requests} requests");
    let summary = &out.manifest["summary"];
    assert_eq!(summary["external_failed_requests"], failed);
    assert_eq!(summary["external_dropped_items"], 0);
    assert_eq!(out.stats["external_failed_requests"], failed);
    // The successful answers were served (items from the end of the catalogue), the failed
    // ones by Popularity.
    assert!(out.interactions.lines().skip(1).count() > 0);
}

#[test]
fn external_counters_appear_in_the_end_of_run_summary() {
    let server = FlakySlates::start(200);
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo_config()
        .with_overrides(&[
            ("rec_model".into(), "External".into()),
            ("rec_external_url".into(), server.url.clone()),
            ("round".into(), "1".into()),
        ])
        .unwrap();
    let mut sim = recagent::sim::Sim::new(cfg, crate::common::paths(dir.path())).unwrap();
    sim.step().unwrap();
    let failed = server.failed.load(std::sync::atomic::Ordering::SeqCst);
    let lines = sim.counters().summary();
    let rec = lines
        .iter()
        .find(|(g, _)| *g == "recommender")
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    assert_eq!(
        rec,
        format!(
            "External requests failed (Popularity answered) {failed} · External reply items dropped as invalid 0"
        )
    );
}

#[test]
fn slate_reply_parser_drops_invalid_entries_and_refuses_bad_shapes() {
    use recagent::recommender::parse_slate_reply;
    // 3 kept; the second 3 repeated, 99 beyond 5 items and 1 excluded are dropped; 0 kept.
    let (s, dropped) = parse_slate_reply(
        br#"{"items":[3,3,99,1,0,4],"scores":[0.9,0.8,0.7,0.6]}"#,
        2,
        5,
        &|i| i == 1,
    )
    .unwrap();
    assert_eq!(
        (s.items, s.scores, dropped),
        (vec![3, 0], vec![0.9, 0.0], 3)
    );
    for bad in [
        &b"{\"items\": [-1]}"[..],
        b"{\"items\": [4294967296]}",
        b"{\"items\": 3}",
        b"{\"items\": [1,",
        b"\xff\xfe",
        b"",
    ] {
        assert!(parse_slate_reply(bad, 5, 5, &|_| false).is_err(), "{bad:?}");
    }
}

//! Hand-computed checks of the memory arithmetic.

use std::sync::Arc;

use rand::Rng;

use super::*;
use crate::rng::{stream_rng, Stream};

fn axis(i: usize) -> QVec {
    let mut v = [0f32; 4];
    v[i] = 1.0;
    QVec::new(&v)
}

fn rec(idx: u32, importance: f32, accessed_hours: f32, emb: QVec) -> LtmRecord {
    LtmRecord {
        idx,
        text: Arc::from(format!("record {idx}")),
        importance,
        created_hours: 0.0,
        accessed_hours,
        emb,
    }
}

/// Six records, query = axis 0, now = 100 h, decay 0.99, weights 1/1/1:
/// r0: 1 + 0.9 + 0 = 1.9; r1: 1 + 0.1 + 1 = 2.1; r2: 0.99^100 + 0.5 + 1 = 1.866032;
/// r3: 0.99^50 + 0.8 + cos((76,102)/127) = 0.605006 + 0.8 + 0.597481 = 2.002487;
/// r4: 0.99^10 + 0.3 − 1 = 0.204382; r5: 0.99 + 0.63 + 0 = 1.62.
fn six() -> MemoryState {
    MemoryState {
        ltm: vec![
            rec(0, 0.9, 100.0, axis(2)),
            rec(1, 0.1, 100.0, axis(0)),
            rec(2, 0.5, 0.0, axis(0)),
            rec(3, 0.8, 50.0, QVec::new(&[0.6, 0.8, 0.0, 0.0])),
            rec(4, 0.3, 90.0, QVec::new(&[-1.0, 0.0, 0.0, 0.0])),
            rec(5, 0.63, 99.0, axis(3)),
        ],
        next_idx: 6,
        ..Default::default()
    }
}

#[test]
fn retrieval_ranking_on_six_records_matches_hand_computation() {
    let m = six();
    let p = MemoryParams::default();
    let q = axis(0);
    let expect = [1.9, 2.1, 1.866_032, 2.002_487, 0.204_382, 1.62];
    for (r, e) in m.ltm.iter().zip(expect) {
        assert!(
            (retrieval_score(&p, r, &q, 100.0) - e).abs() < 1e-4,
            "{}",
            r.idx
        );
    }
    assert_eq!(retrieve(&m, &p, &q, 100.0, 5), vec![1, 3, 0, 2, 5]);
    // Without relevance: 1.9, 1.1, 0.866, 1.405, 1.204, 1.62.
    let p0 = MemoryParams {
        relevance_weight: 0.0,
        ..p
    };
    assert_eq!(retrieve(&m, &p0, &q, 100.0, 6), vec![0, 5, 3, 4, 1, 2]);
}

#[test]
fn retrieval_is_pure_and_recall_lists_ltm_then_stm_within_budget() {
    let mut m = six();
    let before = m.clone();
    let p = MemoryParams::default();
    let _ = retrieve(&m, &p, &axis(0), 100.0, 5);
    assert_eq!(m, before);
    m.recalled = vec![3, 1];
    m.stm.push(StmEntry {
        text: "one two three".into(),
        importance: 0.7,
        emb: axis(1),
        enhancers: Vec::new(),
    });
    assert_eq!(
        recalled_texts(&m, &p),
        vec!["[3] record 3", "[1] record 1", "one two three"]
    );
    let tight = MemoryParams {
        max_words: 10,
        ..MemoryParams::default()
    };
    // "[3] record 3" is 3 words, twice = 6; the STM entry (3 more) still fits; 9 ≤ 10.
    assert_eq!(recalled_texts(&m, &tight).len(), 3);
    touch(&mut m, &[3], 120.0);
    assert_eq!(m.ltm[3].accessed_hours, 120.0);
}

#[test]
fn forgetting_probabilities_and_draws_on_a_fixed_seed() {
    // now = 1000 h; (importance, accessed): (0.5, 1000) (0.2, 900) (0.9, 952) (0.0, 0).
    // 1 − score = 0.25, 0.937326, 0.632064, 1.0 (sum 2.819390).
    let mut m = MemoryState {
        ltm: vec![
            rec(0, 0.5, 1000.0, axis(0)),
            rec(1, 0.2, 900.0, axis(0)),
            rec(2, 0.9, 952.0, axis(0)),
            rec(3, 0.0, 0.0, axis(0)),
        ],
        next_idx: 4,
        ..Default::default()
    };
    let p = MemoryParams::default();
    let probs = forget_probabilities(&m, &p, 1000.0);
    let expect = [0.088_672, 0.332_457, 0.224_185, 0.354_687];
    for (a, b) in probs.iter().zip(expect) {
        assert!((a - b).abs() < 1e-5, "{probs:?}");
    }
    // Record 0 was accessed now (exempt, no draw); draws 0.3 (< 0.332: forgotten),
    // 0.3 (≥ 0.224: kept), 0.36 (≥ 0.355: kept).
    let draws = [0.3, 0.3, 0.36];
    let mut it = draws.iter().copied();
    let mut m2 = m.clone();
    assert_eq!(
        forget(&mut m2, &p, 1000.0, &mut || it.next().unwrap()),
        vec![1]
    );
    assert_eq!(it.next(), None);
    // Seeded frequencies: 20,000 passes on the seed-7 memory stream.
    let mut rng = stream_rng(7, Stream::Memory, &[1, 1]);
    let mut counts = [0u32; 4];
    for _ in 0..20_000 {
        let mut c = m.clone();
        for idx in forget(&mut c, &p, 1000.0, &mut || rng.random()) {
            counts[idx as usize] += 1;
        }
    }
    assert_eq!(counts[0], 0);
    for i in 1..4 {
        let f = f64::from(counts[i]) / 20_000.0;
        assert!((f - expect[i]).abs() < 0.012, "record {i}: {f}");
    }
    m.ltm.clear();
    assert!(forget_probabilities(&m, &p, 0.0).is_empty());
}

#[test]
fn reflection_triggers_strictly_above_the_threshold() {
    let p = MemoryParams::default();
    let mut m = MemoryState::default();
    for i in 0..11 {
        ltm_add(&mut m, "x".into(), 0.9, axis(0), 0.0, false);
        assert!(!reflection_due(&m, &p), "after {} adds", i + 1); // 0.9 × 11 = 9.9
    }
    ltm_add(&mut m, "x".into(), 0.9, axis(0), 0.0, true); // reflecting: not counted
    assert!(!reflection_due(&m, &p));
    ltm_add(&mut m, "x".into(), 0.9, axis(0), 0.0, false); // 10.8
    assert!(reflection_due(&m, &p));
    assert_eq!(m.next_idx, 13);
}

fn add(
    m: &mut MemoryState,
    p: &MemoryParams,
    t: &str,
    imp: f32,
    e: &QVec,
    u: f64,
) -> Vec<Transfer> {
    stm_add(m, p, &Arc::from(t), imp, e, StmOp::Add, &mut || u)
}

#[test]
fn short_term_reinforcement_and_transfer() {
    let p = MemoryParams::default();
    let mut m = MemoryState::default();
    let e = axis(0);
    assert!(add(&mut m, &p, "A", 0.7, &e, 0.0).is_empty());
    assert!(add(&mut m, &p, "B", 0.7, &e, 0.0).is_empty()); // A: 1
    assert!(add(&mut m, &p, "C", 0.7, &e, 0.0).is_empty()); // A: 2, B: 1
    let t = add(&mut m, &p, "D", 0.8, &e, 0.0); // A: 3 -> transferred; B: 2; C: 1
    assert_eq!(t.len(), 1);
    assert_eq!(&*t[0].entry.text, "A");
    assert_eq!(&*t[0].current, "D");
    let en: Vec<&str> = t[0].entry.enhancers.iter().map(|x| &**x).collect();
    assert_eq!(en, ["B", "C", "D"]);
    let left: Vec<(&str, usize)> = m
        .stm
        .iter()
        .map(|x| (&*x.text, x.enhancers.len()))
        .collect();
    assert_eq!(left, [("B", 2), ("C", 1), ("D", 0)]);
    // A draw above p = sigmoid(1) = 0.731 reinforces nothing.
    assert!(add(&mut m, &p, "E", 0.7, &e, 0.9).is_empty());
    assert_eq!(m.stm[0].enhancers.len(), 2);
    // Retrieval reinforces but is not appended: B reaches 3 and moves.
    let t = stm_add(
        &mut m,
        &p,
        &Arc::from("R"),
        0.0,
        &e,
        StmOp::Retrieval,
        &mut || 0.0,
    );
    assert_eq!(t.iter().map(|x| &*x.entry.text).collect::<Vec<_>>(), ["B"]);
    assert!(m.stm.iter().all(|x| &*x.text != "R"));

    // cos 0.75: sigmoid 0.679 < 0.7 for an old entry; the newest gets +0.1 -> 0.7006 >= 0.7.
    let mut m = MemoryState::default();
    add(&mut m, &p, "old", 0.7, &axis(0), 0.0);
    add(&mut m, &p, "new", 0.7, &axis(1), 0.0);
    let v = QVec(vec![95, 84, 0, 0].into()); // cos with both axes: 95/126.8 = 0.749, 84/126.8 = 0.662
    let cos_old = axis(0).cos(&v);
    assert!((cos_old - 0.749).abs() < 0.01);
    let mut m2 = m.clone();
    add(&mut m2, &p, "x", 0.7, &QVec(vec![84, 95, 0, 0].into()), 0.0);
    assert_eq!(
        m2.stm[0].enhancers.len(),
        0,
        "old entry at cos 0.662 is not gated"
    );
    assert_eq!(
        m2.stm[1].enhancers.len(),
        1,
        "newest at cos 0.749 + 0.1 is gated"
    );
    add(&mut m, &p, "y", 0.7, &v, 0.0);
    assert_eq!(
        m.stm[0].enhancers.len(),
        0,
        "old entry at cos 0.749 without the bonus: 0.679"
    );
    assert_eq!(
        m.stm[1].enhancers.len(),
        0,
        "newest at cos 0.662 + 0.1: 0.682"
    );
}

#[test]
fn short_term_overflow_discards_the_least_important_older_entry() {
    let p = MemoryParams {
        stm_capacity: 3,
        ..MemoryParams::default()
    };
    let mut m = MemoryState::default();
    for (i, imp) in [0.7, 0.65, 0.9, 0.5].into_iter().enumerate() {
        add(&mut m, &p, &format!("t{i}"), imp, &axis(i), 0.0);
    }
    let left: Vec<&str> = m.stm.iter().map(|x| &*x.text).collect();
    assert_eq!(
        left,
        ["t0", "t2", "t3"],
        "t1 (0.65) goes; the newest t3 (0.5) stays"
    );
}

#[test]
fn cap_evicts_least_important_then_oldest_and_merge_folds_near_duplicates() {
    let p = MemoryParams {
        ltm_cap: 4,
        ..MemoryParams::default()
    };
    let mut m = six(); // importances 0.9 0.1 0.5 0.8 0.3 0.63
    assert_eq!(enforce_cap(&mut m, &p), vec![1, 4]);
    assert_eq!(
        m.ltm.iter().map(|r| r.idx).collect::<Vec<_>>(),
        [0, 2, 3, 5]
    );
    // Insight along axis 0 cites 2 (cos 1: merged), 3 (cos 0.597: kept), 9 (missing).
    let imp = merge_into(&mut m, &p, &axis(0), &[2, 3, 9]);
    assert!((imp - 0.65).abs() < 1e-6); // mean of 0.5 and 0.8
    assert_eq!(m.ltm.iter().map(|r| r.idx).collect::<Vec<_>>(), [0, 3, 5]);
}

#[test]
fn params_validate_names_the_key() {
    let mut p = MemoryParams::default();
    assert!(p.validate().is_ok());
    p.stm_capacity = 0;
    assert_eq!(p.validate().unwrap_err().0, "stm_capacity");
    let p = MemoryParams {
        embedder: "bert".into(),
        ..MemoryParams::default()
    };
    assert_eq!(p.validate().unwrap_err().0, "embedder");
    assert!((MemoryParams::default().importance_of(7) - 0.63).abs() < 1e-6);
    assert!((MemoryParams::default().importance_of(75) - 0.9).abs() < 1e-6); // clamped
}

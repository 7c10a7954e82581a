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
    LtmRecord::new(
        idx,
        &format!("record {idx}"),
        importance,
        0.0,
        accessed_hours,
        &emb,
    )
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
        ltm_add(&mut m, "x", 0.9, &axis(0), 0.0, false);
        assert!(!reflection_due(&m, &p), "after {} adds", i + 1); // 0.9 × 11 = 9.9
    }
    ltm_add(&mut m, "x", 0.9, &axis(0), 0.0, true); // reflecting: not counted
    assert!(!reflection_due(&m, &p));
    ltm_add(&mut m, "x", 0.9, &axis(0), 0.0, false); // 10.8
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
    let v = QVec::from_i8(&[95, 84, 0, 0]); // cos with both axes: 95/126.8 = 0.749, 84/126.8 = 0.662
    let cos_old = axis(0).cos(&v);
    assert!((cos_old - 0.749).abs() < 0.01);
    let mut m2 = m.clone();
    add(&mut m2, &p, "x", 0.7, &QVec::from_i8(&[84, 95, 0, 0]), 0.0);
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

/// The cosine of the dense i8 representation used before the compact layout (reference).
fn dense_cos(a: &[i8], b: &[i8]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut d, mut na, mut nb) = (0i32, 0i32, 0i32);
    for (&a, &b) in a.iter().zip(b) {
        let (a, b) = (i32::from(a), i32::from(b));
        d += a * b;
        na += a * a;
        nb += b * b;
    }
    if na == 0 || nb == 0 {
        0.0
    } else {
        d as f32 / ((na as f32).sqrt() * (nb as f32).sqrt())
    }
}

/// Item texts of RecAgent's catalogue (or the demo's) plus memory-like sentences.
fn real_texts() -> Vec<String> {
    let path = crate::io::data::shared_or_demo_items_path();
    let items = crate::io::data::load_items(crate::io::data::Source::Path(&path)).unwrap();
    let cat = crate::catalog::Catalog::new(items).unwrap();
    let mut t: Vec<String> = (0..cat.len() as u32)
        .step_by(13)
        .map(|i| crate::catalog::item_text(&cat, i))
        .collect();
    for i in 0..cat.len().min(60) as u32 {
        let title = &cat.get(i).title;
        t.push(format!("Alice watched <{title}> and rated it 4 out of 5."));
        t.push(format!("Bob read Carol's post about <{title}>."));
    }
    t.push(String::new());
    t
}

#[test]
fn compact_cosine_is_bit_identical_to_dense_i8_on_real_texts() {
    let texts = real_texts();
    assert!(texts.len() > 150, "{}", texts.len());
    for dim in [256usize, 4096, 64, 16] {
        let e = crate::embed::HashEmbedder { dim };
        let q: Vec<QVec> = texts.iter().map(|t| QVec::new(&e.embed(t))).collect();
        let dense: Vec<Vec<i8>> = q.iter().map(|v| v.view().to_i8()).collect();
        // Every layout pair: as stored (sparse at 256/4096, mostly dense at 16) and densified.
        let forced: Vec<QVec> = q.iter().map(|v| v.view().densified()).collect();
        let (mut sparse, mut checked) = (0, 0);
        for i in 0..q.len() {
            assert_eq!(dense[i], {
                let f: Vec<f32> = e.embed(&texts[i]);
                f.iter()
                    .map(|x| (x * 127.0).round().clamp(-127.0, 127.0) as i8)
                    .collect::<Vec<_>>()
            });
            sparse += usize::from(!q[i].view().is_dense());
            for j in (0..q.len()).step_by(5) {
                let want = dense_cos(&dense[i], &dense[j]).to_bits();
                assert_eq!(q[i].cos(&q[j]).to_bits(), want, "dim {dim}, {i} x {j}");
                assert_eq!(q[i].cos(&forced[j]).to_bits(), want);
                assert_eq!(forced[i].cos(&q[j]).to_bits(), want);
                assert_eq!(forced[i].cos(&forced[j]).to_bits(), want);
                checked += 1;
            }
        }
        assert!(checked > 3000);
        if dim >= 256 {
            // A sentence's ~30 non-zero of 256 make the sparse layout the smaller one.
            assert!(sparse >= q.len() - 1, "dim {dim}: {sparse} of {}", q.len());
        }
    }
}

#[test]
fn retrieval_scores_equal_the_dense_formula_on_real_texts() {
    let e = crate::embed::HashEmbedder::default();
    let texts = real_texts();
    let p = MemoryParams::default();
    let mut m = MemoryState::default();
    for (i, t) in texts.iter().take(120).enumerate() {
        ltm_add(&mut m, t, 0.5, &QVec::new(&e.embed(t)), i as f32, false);
    }
    for q in [
        "animated family movies",
        "Alice watched a comedy",
        "war drama",
    ] {
        let qv = QVec::new(&e.embed(q));
        let qd = qv.view().to_i8();
        let mut want: Vec<(f32, usize)> = m
            .ltm
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let s = p.recency_weight * recency(&p, 500.0 - r.accessed_hours)
                    + p.importance_score_weight * r.importance
                    + p.relevance_weight * dense_cos(&r.emb().to_i8(), &qd);
                assert_eq!(retrieval_score(&p, r, &qv, 500.0).to_bits(), s.to_bits());
                (s, i)
            })
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<usize> = want.into_iter().take(5).map(|x| x.1).collect();
        assert_eq!(retrieve(&m, &p, &qv, 500.0, 5), want);
    }
}

#[test]
fn compact_layouts_are_small_round_trip_and_reject_bad_bytes() {
    let e = crate::embed::HashEmbedder::default();
    let t = "Alice watched <Toy Story> and rated it 4 out of 5; she liked the music.";
    let v = QVec::new(&e.embed(t));
    let nnz = v.view().to_i8().iter().filter(|x| **x != 0).count();
    assert!((15..=40).contains(&nnz), "{nnz}");
    assert_eq!(v.heap_len(), 2 * nnz); // one index byte + one value byte each
    assert_eq!(v.dim(), 256);
    let big = QVec::new(&crate::embed::HashEmbedder { dim: 4096 }.embed(t));
    let big_nnz = big.view().to_i8().iter().filter(|x| **x != 0).count();
    assert_eq!(big.heap_len(), 3 * big_nnz); // two index bytes from 257 dimensions on
                                             // Inline sizes: a record is 40 bytes plus one heap block (embedding + text).
    assert_eq!(std::mem::size_of::<LtmRecord>(), 40);
    assert_eq!(std::mem::size_of::<QVec>(), 24);
    let r = LtmRecord::new(7, t, 0.6, 1.0, 2.0, &v);
    assert_eq!((r.text(), r.emb().to_owned()), (t, v.clone()));
    assert_eq!(r.heap_len(), t.len() + 2 * nnz);
    // Checkpoint encoding round-trips both the vector and the record.
    for q in [v.clone(), big.clone(), axis(2), QVec::default()] {
        let b = rmp_serde::to_vec(&q).unwrap();
        assert_eq!(rmp_serde::from_slice::<QVec>(&b).unwrap(), q);
    }
    let b = rmp_serde::to_vec(&r).unwrap();
    assert_eq!(rmp_serde::from_slice::<LtmRecord>(&b).unwrap(), r);
    // Malformed layouts are errors, never panics.
    assert!(QVec::from_parts(8, &[3, 1, 5, 9]).is_err()); // indices out of order
    assert!(QVec::from_parts(8, &[1, 9, 5, 9]).is_err()); // index 9 ≥ dim 8
    assert!(QVec::from_parts(8, &[1, 0]).is_err()); // zero value
    assert!(QVec::from_parts(8, &[1, 2, 3]).is_err()); // odd sparse length
    assert!(QVec::from_parts(300, &[44, 1, 9]).is_err()); // u16 index 300 ≥ dim 300
    assert_eq!(
        QVec::from_parts(300, &[43, 1, 9]).unwrap().view().to_i8()[299],
        9
    );
    let q = QVec::from_parts(8, &[1, 6, 5, 0x80 | 1]).unwrap();
    assert_eq!(q.view().to_i8(), [0, 5, 0, 0, 0, 0, -127, 0]);
    // A sparse list longer than the dense layout is canonicalised to the dense one.
    assert_eq!(
        QVec::from_parts(4, &[0, 1, 2, 5, 6, 7]).unwrap(),
        QVec::from_i8(&[5, 6, 7, 0])
    );
    assert!(QVec::from_parts(4, &[0, 1, 2, 5, 6, 7])
        .unwrap()
        .view()
        .is_dense());
    // A dense layout is canonicalised to the sparse one.
    assert_eq!(
        QVec::from_parts(8, &[0, 5, 0, 0, 0, 0, 0x81, 0]).unwrap(),
        q
    );
}

#[test]
fn quantisation_rounds_as_f32_round_on_edges_and_random_values() {
    use rand::SeedableRng;
    let reference = |y: f32| y.round().clamp(-127.0, 127.0) as i8;
    let mut edges = vec![
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
        1e-30,
        -1e-30,
        126.5,
        127.5,
        -127.5,
        1e9,
    ];
    // Every half k + 0.5 and the floats on either side: adding 0.5 in f32 would round the
    // largest float below 0.5 (0.49999997) up to 1.
    for k in -130..130 {
        let h = k as f32 + 0.5;
        edges.extend([
            h,
            f32::from_bits(h.to_bits() + 1),
            f32::from_bits(h.to_bits() - 1),
        ]);
    }
    for y in edges {
        assert_eq!(vector::round_to_i8(y), reference(y), "y = {y:e}");
    }
    // Whole vectors: QVec::new against the formula on random components.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..2_000 {
        let v: Vec<f32> = (0..100).map(|_| rng.random_range(-1.2f32..1.2)).collect();
        let want: Vec<i8> = v.iter().map(|x| reference(x * 127.0)).collect();
        assert_eq!(QVec::new(&v).view().to_i8(), want);
    }
}

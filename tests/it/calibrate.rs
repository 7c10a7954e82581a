//! `recagent calibrate` and the calibrated model: the file round-trips and is refused when
//! damaged, of another catalogue or of another seed; the same seed gives the same bytes; test
//! items and held-out ratings never reach the file, and valid items only its tuned choice.

use std::path::Path;

use recagent::analysis::fidelity::{data, protocol};
use recagent::calibration::fit::{calibrate, CalibrateOptions};
use recagent::calibration::CalibratedModel;

use crate::common::{ran, read, recagent};
use crate::fidelity::fixture;

fn options(dir: &Path) -> CalibrateOptions {
    CalibrateOptions {
        data: dir.to_path_buf(),
        seed: 5,
        dims: vec![4],
        epochs: vec![3],
        lr: vec![0.1],
        reg: vec![0.01],
        ..CalibrateOptions::default()
    }
}

fn fit(dir: &Path) -> CalibratedModel {
    calibrate(&options(dir), &|_, _, _| {}).unwrap()
}

/// `recagent calibrate` on `data` with the settings of [`options`], into `out`.
fn calibrate_cli(data: &Path, out: &Path) -> (Option<i32>, String, String) {
    ran(recagent()
        .args([
            "calibrate",
            "-q",
            "--seed",
            "5",
            "--dims",
            "4",
            "--epochs",
            "3",
        ])
        .args(["--lr", "0.1", "--reg", "0.01", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out))
}

#[test]
fn the_file_round_trips_and_is_refused_when_damaged_or_foreign() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let file = t.path().join("cal.bin");
    let (code, out, err) = calibrate_cli(t.path(), &file);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("calibrate: 2 users, 8 interactions"), "{out}");
    let again = t.path().join("again.bin");
    let (code, _, err) = calibrate_cli(t.path(), &again);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap(),
        "same seed, same bytes"
    );
    let m = CalibratedModel::load(&file).unwrap();
    assert_eq!(m, fit(t.path()), "the file holds what was fitted");
    assert_eq!((m.catalogue.items, m.dim, m.fit.seed), (30, 4, 5));

    // fidelity reads it, and names the model.
    let out_dir = t.path().join("fid");
    let (code, _, err) = ran(recagent()
        .args(["fidelity", "-q", "--seed", "5", "--data"])
        .arg(t.path())
        .arg("--calibration")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir));
    assert_eq!(code, Some(0), "{err}");
    assert!(read(&out_dir.join("fidelity.csv")).contains("offline-calibrated,5,5,1:1,2,"));

    // Another seed holds out other ratings: refused.
    let (code, _, err) = ran(recagent()
        .args(["fidelity", "-q", "--seed", "6", "--data"])
        .arg(t.path())
        .arg("--calibration")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("fitted with --seed 5, which holds out other ratings than --seed 6"),
        "{err}"
    );

    // One flipped byte of the body: the checksum refuses it.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x55;
    let bad = t.path().join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    let e = CalibratedModel::load(&bad).unwrap_err().to_string();
    assert!(e.contains("the checksum does not match"), "{e}");
    std::fs::write(&bad, b"hello\nworld").unwrap();
    let e = CalibratedModel::load(&bad).unwrap_err().to_string();
    assert!(e.contains("not a calibration file"), "{e}");

    // Another catalogue (one title changed): a clear error naming both.
    let other = tempfile::tempdir().unwrap();
    fixture(other.path());
    let items = other.path().join("simulation/movie_detail.csv");
    let text = read(&items).replace("Movie 29, The", "Movie 29 Redux, The");
    std::fs::write(&items, text).unwrap();
    let (code, _, err) = ran(recagent()
        .args(["fidelity", "-q", "--seed", "5", "--data"])
        .arg(other.path())
        .arg("--calibration")
        .arg(&file)
        .arg("--out")
        .arg(other.path().join("fid")));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("was fitted for the catalogue") && err.contains("(30 items)"),
        "{err}"
    );
    assert!(
        err.contains("`recagent calibrate` (without --items"),
        "{err}"
    );
}

#[test]
fn test_items_and_held_out_ratings_never_reach_the_file() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let base = fit(t.path());

    // Other test items: the same model, every byte.
    let changed = tempfile::tempdir().unwrap();
    fixture(changed.path());
    std::fs::write(
        changed.path().join("cf_data/test.txt"),
        "0 25 26 27 28\n1 29 20\n",
    )
    .unwrap();
    let mut m = fit(changed.path());
    m.fit.data = base.fit.data.clone();
    m.catalogue.source = base.catalogue.source.clone();
    assert_eq!(m, base, "test items changed the model");

    // Other values for the ratings the protocol holds out with this seed: the same model.
    let real = data::load(t.path()).unwrap();
    let held: Vec<(u32, u32)> = real
        .users
        .iter()
        .flat_map(|u| {
            let (_, h) = protocol::split_user(u, 5);
            h.ratings.into_iter().map(move |r| (u.id, r.0))
        })
        .collect();
    assert_eq!(held.len(), 2, "one held-out rating per user");
    let agg = changed.path().join("raw_data/agg_top_25.csv");
    std::fs::write(
        changed.path().join("cf_data/test.txt"),
        read(&t.path().join("cf_data/test.txt")),
    )
    .unwrap();
    let mut rows: Vec<String> = read(&agg).lines().map(String::from).collect();
    for (u, item) in &held {
        let row = &mut rows[*u as usize + 1];
        let u_real = &real.users[*u as usize];
        let pos = u_real.ratings.iter().position(|r| r.0 == *item).unwrap();
        // Column 3 holds "r; r; r": flip the held-out one to the other end of the scale.
        let (head, tail) = row.split_once(",x,").unwrap();
        let (list, rest) = tail.split_once(',').unwrap();
        let mut rs: Vec<u8> = list.split("; ").map(|x| x.parse().unwrap()).collect();
        rs[pos] = if rs[pos] >= 3 { 1 } else { 5 };
        let list: Vec<String> = rs.iter().map(u8::to_string).collect();
        *row = format!("{head},x,{},{rest}", list.join("; "));
    }
    std::fs::write(&agg, rows.join("\n") + "\n").unwrap();
    assert_ne!(read(&agg), read(&t.path().join("raw_data/agg_top_25.csv")));
    let mut m = fit(changed.path());
    m.fit.data = base.fit.data.clone();
    m.catalogue.source = base.catalogue.source.clone();
    assert_eq!(m, base, "a held-out rating changed the model");

    // Other valid items: the fitted parameters stay (one preference setting is tried, so valid
    // items choose only the page-choice parameters).
    std::fs::write(changed.path().join("cf_data/valid.txt"), "0 27\n1 28\n").unwrap();
    let m = fit(changed.path());
    assert_eq!(
        (&m.history, &m.target, &m.bias, &m.rating.item_bias),
        (
            &base.history,
            &base.target,
            &base.bias,
            &base.rating.item_bias
        )
    );
}

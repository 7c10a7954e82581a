use std::io::Write;
use std::path::Path;

use recagent::io::data::{
    load_items, load_ml_ratings, load_relationships, load_users, DataError, Source,
};

use crate::common::shared;

fn tmp(name: &str, content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(content)
        .unwrap();
    (d, p)
}

#[test]
fn recagent_item_csv() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    let items = load_items(Source::Path(&dir.join("item.csv"))).unwrap();
    assert_eq!(items.len(), 3883);
    assert!(
        items.iter().enumerate().all(|(i, it)| it.id == i as u32),
        "ids 0..3882 in order"
    );
    assert_eq!(items[0].title, "Toy Story");
    assert_eq!(items[0].genres, ["Animation", "Children's", "Comedy"]);
    assert!(
        items[1].description.starts_with("<Jumanji>"),
        "{}",
        items[1].description
    );
}

#[test]
fn recagent_user_1000_and_relationships() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    let users = load_users(Source::Path(&dir.join("user_1000.csv"))).unwrap();
    assert_eq!(users.len(), 1000);
    let u0 = &users[0];
    assert_eq!(
        (u0.id, u0.name.as_str(), u0.gender.as_str(), u0.age),
        (0, "David Smith", "male", 25)
    );
    assert_eq!(u0.interest, "sci-fi movies, comedy movies");
    assert_eq!(u0.features, ["Watcher", "Critic"]);
    // Names are not unique: ids 2 and 9 are both James Brown (spec §5.2).
    assert_eq!(users[2].name, users[9].name);
    let names: std::collections::BTreeSet<_> = users.iter().map(|u| &u.name).collect();
    assert_eq!(names.len(), 100);

    let edges =
        load_relationships(Source::Path(&dir.join("relationship_1000.csv")), &users).unwrap();
    assert_eq!(edges.len(), 20_846);
    assert_eq!(
        (edges[0].from, edges[0].to, &*edges[0].label),
        (0, 1, "friend")
    );
    assert!((edges[0].closeness - 0.925_816).abs() < 1e-5);
    assert_eq!(edges[0].line, 2);
}

#[test]
fn recagent_legacy_user_and_relationship() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    let users = load_users(Source::Path(&dir.join("user.csv"))).unwrap();
    assert_eq!(users.len(), 20);
    assert_eq!((users[0].name.as_str(), users[0].age), ("Tommie", 23));
    assert!(users[0]
        .observations
        .starts_with("Tommie is Eve's new client."));
    let edges = load_relationships(Source::Path(&dir.join("relationship.csv")), &users).unwrap();
    // 24 name pairs, each taken in both directions.
    assert_eq!(edges.len(), 48);
    let tommie = users.iter().find(|u| u.name == "Tommie").unwrap().id;
    let eve = users.iter().find(|u| u.name == "Eve").unwrap().id;
    assert!(edges.iter().any(|e| e.from == tommie && e.to == eve));
    assert!(edges.iter().any(|e| e.from == eve && e.to == tommie));
}

#[test]
fn movielens_dat_files() {
    let Some(dir) = shared("agent4rec/datasets/ml-1m/raw_data") else {
        return;
    };
    let movies = load_items(Source::Path(&dir.join("movies.dat"))).unwrap();
    assert_eq!(movies.len(), 3883);
    assert_eq!(
        (movies[0].id, movies[0].title.as_str()),
        (1, "Toy Story (1995)")
    );
    assert_eq!(movies[0].genres, ["Animation", "Children's", "Comedy"]);
    let users = load_users(Source::Path(&dir.join("users.dat"))).unwrap();
    assert_eq!(users.len(), 6040);
    // 1::F::1::10::48067 — occupation 10 is "K-12 student".
    assert_eq!(
        (
            users[0].id,
            users[0].gender.as_str(),
            users[0].age,
            users[0].status.as_str()
        ),
        (1, "F", 1, "K-12 student")
    );
}

#[test]
fn movielens_ratings_latin1_and_errors() {
    let (_d, p) = tmp(
        "ratings.dat",
        b"1::1193::5::978300760\n1::661::3::978302109\n",
    );
    let r = load_ml_ratings(Source::Path(&p)).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[1].user, r[1].item, r[1].rating, r[1].timestamp),
        (1, 661, 3, 978_302_109)
    );
    let (_d, p) = tmp(
        "ratings.dat",
        b"1::1193::5::978300760\n1::661::9::978302109\n",
    );
    let e = load_ml_ratings(Source::Path(&p)).unwrap_err().to_string();
    assert!(
        e.contains("line 2") && e.contains("Rating") && e.contains("1..=5"),
        "{e}"
    );
    // Latin-1 title (0xE9 = é) decodes.
    let (_d, p) = tmp("movies.dat", b"7::Les Mis\xe9rables (1995)::Drama\n");
    let m = load_items(Source::Path(&p)).unwrap();
    assert_eq!(m[0].title, "Les Mis\u{e9}rables (1995)");
    let (_d, p) = tmp("movies.dat", b"7::Only two fields\n");
    let e = load_items(Source::Path(&p)).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("expected 3"), "{e}");
}

#[test]
fn malformed_csv_rows_name_file_line_and_column() {
    let (_d, p) = tmp(
        "item.csv",
        b"id,title,genre,description\n0,A,Drama,x\nseven,B,Comedy,y\n",
    );
    let e = load_items(Source::Path(&p)).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, DataError::Row { line: 3, .. }), "{s}");
    assert!(
        s.contains("item.csv") && s.contains("line 3") && s.contains("column `id`"),
        "{s}"
    );

    let (_d, p) = tmp("item.csv", b"id,title,genre,description\n0,A,Drama\n");
    let s = load_items(Source::Path(&p)).unwrap_err().to_string();
    assert!(
        s.contains("line 2") && s.contains("found 3 fields, expected 4"),
        "{s}"
    );

    let (_d, p) = tmp("item.csv", b"id,name\n0,A\n");
    let s = load_items(Source::Path(&p)).unwrap_err().to_string();
    assert!(s.contains("unrecognised header"), "{s}");

    let (_d, p) = tmp(
        "item.csv",
        b"id,title,genre,description\n0,A,Drama,x\n0,B,Drama,y\n",
    );
    let s = load_items(Source::Path(&p)).unwrap_err().to_string();
    assert!(s.contains("line 3") && s.contains("duplicate id"), "{s}");

    let (_d, p) = tmp(
        "users.csv",
        b"id,name,gender,age,traits,status,interest,feature\n0,A,male,30,kind,cook,comedy movies,Watcher\n1,B,female,old,kind,cook,comedy movies,Poster\n",
    );
    let s = load_users(Source::Path(&p)).unwrap_err().to_string();
    assert!(s.contains("line 3") && s.contains("column `age`"), "{s}");

    let (_d, p) = tmp(
        "users.csv",
        b"id,name,gender,age,traits,status,interest,feature\n0,A,male,30,kind,cook,comedy movies,Watcher;Dancer\n",
    );
    let s = load_users(Source::Path(&p)).unwrap_err().to_string();
    assert!(
        s.contains("column `feature`") && s.contains("Dancer"),
        "{s}"
    );
}

#[test]
fn relationship_to_unknown_user_is_an_error() {
    let (_d, up) = tmp(
        "users.csv",
        b"id,name,gender,age,traits,status,interest,feature\n0,A,male,30,kind,cook,comedy movies,Watcher\n1,B,female,40,kind,cook,comedy movies,Poster\n",
    );
    let users = load_users(Source::Path(&up)).unwrap();
    let (_d2, rp) = tmp(
        "rel.csv",
        b"user_1,user_2,relationship,closeness\n0,1,friend,0.5\n1,5,friend,0.5\n",
    );
    let e = load_relationships(Source::Path(&rp), &users).unwrap_err();
    assert!(matches!(e, DataError::UnknownUser { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("\"5\""));
    let (_d2, rp) = tmp(
        "rel.csv",
        b"user_1,user_2,relationship,closeness\n0,1,friend,1.5\n",
    );
    let s = load_relationships(Source::Path(&rp), &users)
        .unwrap_err()
        .to_string();
    assert!(s.contains("closeness") && s.contains("[0, 1]"), "{s}");
    let _ = Path::new("");
}

/// The edges are checked on the rayon pool; the error is still the first bad row in file
/// order: of a self-loop on line 12,002 and an unknown user on line 15,002 of 20,000 rows,
/// the self-loop, whichever part of the file a thread checked first.
#[test]
fn the_first_bad_edge_in_file_order_is_the_one_reported() {
    let mut users = String::from("id,name,gender,age,traits,status,interest,feature\n");
    for i in 0..100 {
        users.push_str(&format!(
            "{i},U{i},male,30,kind,cook,comedy movies,Watcher\n"
        ));
    }
    let (_d, up) = tmp("users.csv", users.as_bytes());
    let users = load_users(Source::Path(&up)).unwrap();
    let mut rel = String::from("user_1,user_2,relationship,closeness\n");
    for k in 0..20_000 {
        // Data line k sits on file line k + 2.
        let (a, b) = match k {
            12_000 => (7, 7),
            15_000 => (7, 500),
            _ => (k % 100, (k + 1) % 100),
        };
        rel.push_str(&format!("{a},{b},friend,0.5\n"));
    }
    let (_d2, rp) = tmp("rel.csv", rel.as_bytes());
    let e = load_relationships(Source::Path(&rp), &users).unwrap_err();
    assert!(
        matches!(&e, DataError::Row { line: 12_002, message, .. } if message == "self-loop"),
        "{e}"
    );
    // Read into memory first (what the simulation's loader does), the same error.
    let bytes = std::fs::read(&rp).unwrap();
    let e2 = load_relationships(Source::File(&rp, &bytes), &users).unwrap_err();
    assert_eq!(e.to_string(), e2.to_string());
    assert!(e2.to_string().contains("rel.csv"), "{e2}");
}

/// An unterminated quote used to swallow the rest of the file into one field (here item 0's
/// description would have been `d\n1,B,Drama,e\n` and item 1 lost). Now it is an error naming
/// the file, the line where the quote opens and its column; a quote that opens a field on line
/// 3 after a correctly quoted, doubled quote on line 2 is found on line 3.
#[test]
fn unterminated_csv_quote_names_file_line_and_column() {
    let (_d, p) = tmp(
        "item.csv",
        b"id,title,genre,description\n0,A,Drama,\"d\n1,B,Drama,e\n",
    );
    let e = load_items(Source::Path(&p)).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::Row { line: 2, column: Some(c), .. } if c == "description"),
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!(
            "{}: line 2, column `description`: unterminated quote",
            p.display()
        )),
        "{msg}"
    );
    let text = "id,name,gender,age,traits,status,interest,feature\n\
        0,Ann,female,30,\"calm, \"\"kind\"\"\",Nurse,films,Watcher\n\
        1,Bob,male,40,\"open,Clerk,films,Critic\n";
    let e = load_users(Source::Text("users.csv", text))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("users.csv: line 3, column `traits`: unterminated quote"),
        "{e}"
    );
    let e = load_relationships(
        Source::Text(
            "relationship.csv",
            "user_1,user_2,relationship,closeness\n0,1,\"friend,0.5\n",
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("relationship.csv: line 2, column `relationship`: unterminated quote"),
        "{e}"
    );
    // A quote inside an unquoted field is text, as the csv reader reads it: no error.
    let ok = load_items(Source::Text(
        "item.csv",
        "id,title,genre,description\n0,A 5\"10,Drama,d\n",
    ))
    .unwrap();
    assert_eq!(ok[0].title, "A 5\"10");
}

//! Search quality of the hashing embedder against all-MiniLM-L6-v2 on RecAgent's 3,883 movies.
//!
//! ```sh
//! scripts/get-minilm.sh /work/models/all-MiniLM-L6-v2
//! RECAGENT_MINILM_DIR=/work/models/all-MiniLM-L6-v2 \
//!   cargo run --release --features minilm --example embedder_quality [-- --batch 32 --items PATH]
//! ```
//!
//! Every item text ([`item_text`]: title, genres, description) is embedded by each embedder;
//! each of the hand-made queries below is embedded and every item ranked by exact cosine
//! similarity (brute force: this measures the embedder, not the HNSW index). Each query paraphrases
//! a plot or theme instead of copying the descriptions' words, and carries a hand-judged set of
//! relevant titles, chosen by reading `item.csv`. Printed per query: the rank (1-based, of 3,883)
//! of the first relevant item; overall: recall@10 = |relevant ∩ top 10| / min(|relevant|, 10),
//! averaged over queries, and the mean reciprocal rank (MRR) of the first relevant item;
//! throughput (item texts per second, wall clock, one call over all items).

use std::path::PathBuf;
use std::time::Instant;

use recagent::catalog::{item_text, Catalog};
use recagent::embed::minilm::MiniLmEmbedder;
use recagent::embed::{dot, Embedder, HashEmbedder};
use recagent::io::data::{load_items, Source};

/// (query, relevant titles as in item.csv). A title matches every item carrying it.
const QUERIES: &[(&str, &[&str])] = &[
    (
        "animated movie in which a child's playthings secretly come alive",
        &["Toy Story", "Toy Story 2"],
    ),
    (
        "space opera about rebels fighting an evil galactic empire",
        &[
            "Star Wars: Episode IV - A New Hope",
            "Star Wars: Episode V - The Empire Strikes Back",
            "Star Wars: Episode VI - Return of the Jedi",
            "Star Wars: Episode I - The Phantom Menace",
        ],
    ),
    (
        "saga of an Italian-American crime dynasty and its patriarch",
        &[
            "The Godfather",
            "The Godfather: Part II",
            "The Godfather: Part III",
        ],
    ),
    (
        "scientists bring extinct reptiles back to life for an island amusement park",
        &["Jurassic Park", "The Lost World: Jurassic Park"],
    ),
    (
        "a luxury ocean liner strikes an iceberg and goes down on its first voyage",
        &["Titanic", "Night to Remember, A"],
    ),
    (
        "a man-eating fish terrorises swimmers at a seaside resort",
        &["Jaws", "Jaws 2", "Jaws 3-D"],
    ),
    (
        "a cybernetic killing machine travels from the future to the present",
        &["The Terminator", "Terminator 2: Judgment Day"],
    ),
    (
        "a vicious extraterrestrial creature stalks the crew of a spacecraft",
        &["Alien", "Aliens", "Alien³", "Alien: Resurrection"],
    ),
    (
        "a young farm pig learns to herd sheep",
        &["Babe", "Babe: Pig in the City"],
    ),
    (
        "an underdog prizefighter from Philadelphia battles for the heavyweight title",
        &["Rocky", "Rocky II", "Rocky III", "Rocky IV", "Rocky V"],
    ),
    (
        "bloodsucking undead creatures of the night",
        &[
            "Dracula: Dead and Loving It",
            "Vampire in Brooklyn",
            "Interview with the Vampire",
            "Blood For Dracula (Andy Warhol's Dracula)",
            "Bram Stoker's Dracula",
            "Nosferatu (Nosferatu, eine Symphonie des Grauens)",
            "Nosferatu a Venezia",
            "Blade",
            "Vampires",
            "Dracula",
            "House of Dracula",
            "Son of Dracula",
            "Fright Night",
            "Fright Night Part II",
            "Buffy the Vampire Slayer",
            "The Hunger",
            "Near Dark",
            "From Dusk Till Dawn",
        ],
    ),
    (
        "a stingy old miser is visited by ghosts on Christmas Eve",
        &[
            "Christmas Carol, A",
            "The Muppet Christmas Carol",
            "Scrooged",
        ],
    ),
    (
        "army doctors race to contain a lethal contagion before it wipes out a town",
        &["Outbreak"],
    ),
    (
        "a suave British spy with a licence to kill foils a megalomaniac villain",
        &[
            "GoldenEye",
            "Tomorrow Never Dies",
            "View to a Kill, A",
            "Goldfinger",
            "From Russia with Love",
            "Dr. No",
            "For Your Eyes Only",
            "Licence to Kill",
            "Live and Let Die",
            "Thunderball",
            "The World Is Not Enough",
            "On Her Majesty's Secret Service",
            "The Spy Who Loved Me",
            "Moonraker",
            "The Man with the Golden Gun",
        ],
    ),
    (
        "a lonely child befriends a gentle visitor from another world",
        &["E.T. the Extra-Terrestrial", "The Iron Giant"],
    ),
];

struct Scores {
    name: String,
    first_ranks: Vec<usize>,
    recall10: Vec<f64>,
    top1: Vec<String>,
    texts_per_s: f64,
}

fn evaluate(
    name: &str,
    e: &dyn Embedder,
    cat: &Catalog,
    texts: &[&str],
    relevant: &[Vec<u32>],
) -> Result<Scores, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let items = e.embed_batch(texts)?;
    let secs = t.elapsed().as_secs_f64();
    let queries: Vec<&str> = QUERIES.iter().map(|q| q.0).collect();
    let qv = e.embed_batch(&queries)?;
    let mut s = Scores {
        name: name.to_string(),
        first_ranks: Vec::new(),
        recall10: Vec::new(),
        top1: Vec::new(),
        texts_per_s: texts.len() as f64 / secs,
    };
    for (q, rel) in qv.iter().zip(relevant) {
        let mut ranked: Vec<(u32, f32)> = items
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, dot(q, v)))
            .collect();
        // Highest cosine first, ties by item index (the hashing embedder ties often at 0).
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let first = ranked
            .iter()
            .position(|(i, _)| rel.contains(i))
            .map_or(ranked.len(), |p| p + 1);
        let hits = ranked[..10].iter().filter(|(i, _)| rel.contains(i)).count();
        s.first_ranks.push(first);
        s.recall10.push(hits as f64 / rel.len().min(10) as f64);
        s.top1.push(cat.get(ranked[0].0).title.to_string());
    }
    Ok(s)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut batch = recagent::embed::minilm::DEFAULT_BATCH;
    let mut items_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/recagent/item.csv");
    let mut model_dir = std::env::var_os("RECAGENT_MINILM_DIR").map(PathBuf::from);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--batch" => batch = val()?.parse()?,
            "--items" => items_path = PathBuf::from(val()?),
            "--model-dir" => model_dir = Some(PathBuf::from(val()?)),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let model_dir = model_dir.ok_or(
        "give the model folder with RECAGENT_MINILM_DIR or --model-dir (scripts/get-minilm.sh DIR)",
    )?;

    let cat = Catalog::new(load_items(Source::Path(&items_path))?)?;
    let owned: Vec<String> = (0..cat.len() as u32).map(|i| item_text(&cat, i)).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut relevant = Vec::new();
    for (q, titles) in QUERIES {
        let mut ids = Vec::new();
        for t in *titles {
            let found: Vec<u32> = (0..cat.len() as u32)
                .filter(|&i| &*cat.get(i).title == *t)
                .collect();
            if found.is_empty() {
                return Err(format!("query {q:?}: no item titled {t:?}").into());
            }
            ids.extend(found);
        }
        relevant.push(ids);
    }

    let t = Instant::now();
    let minilm = MiniLmEmbedder::with_batch_size(&model_dir, batch)?;
    let load_s = t.elapsed().as_secs_f64();
    println!(
        "{} items; MiniLM loaded in {load_s:.2} s ({}), batch {batch}",
        cat.len(),
        minilm.id()
    );

    let runs = [
        evaluate(
            "hash-256",
            &HashEmbedder { dim: 256 },
            &cat,
            &texts,
            &relevant,
        )?,
        evaluate(
            "hash-384",
            &HashEmbedder { dim: 384 },
            &cat,
            &texts,
            &relevant,
        )?,
        evaluate("minilm", &minilm, &cat, &texts, &relevant)?,
    ];

    println!("\nrank of the first relevant item (of {}):", cat.len());
    print!("{:<4}{:<78}", "#", "query (relevant items)");
    for r in &runs {
        print!("{:>10}", r.name);
    }
    println!();
    for (k, (q, _)) in QUERIES.iter().enumerate() {
        print!("{:<4}{:<78}", k + 1, format!("{q} ({})", relevant[k].len()));
        for r in &runs {
            print!("{:>10}", r.first_ranks[k]);
        }
        println!();
    }
    println!("\ntop hit per query:");
    for (k, _) in QUERIES.iter().enumerate() {
        let tops: Vec<String> = runs
            .iter()
            .map(|r| format!("{}: {}", r.name, r.top1[k]))
            .collect();
        println!("{:<4}{}", k + 1, tops.join(" | "));
    }
    println!(
        "\n{:<10}{:>10}{:>8}{:>14}",
        "embedder", "recall@10", "MRR", "item texts/s"
    );
    for r in &runs {
        let n = r.first_ranks.len() as f64;
        let recall = r.recall10.iter().sum::<f64>() / n;
        let mrr = r.first_ranks.iter().map(|&x| 1.0 / x as f64).sum::<f64>() / n;
        println!(
            "{:<10}{:>10.3}{:>8.3}{:>14.0}",
            r.name, recall, mrr, r.texts_per_s
        );
    }
    Ok(())
}

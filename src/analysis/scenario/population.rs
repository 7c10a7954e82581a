//! Synthetic populations for scenarios larger than the data's user file (the scale smoke
//! test): `agents` users whose profiles cycle through a real user file (user `i` has the
//! profile of the file's user `i mod n`, with id `i`), and a random friendship graph of mean
//! degree `degree` (each user draws `degree / 2` partners uniformly, each pair linked both
//! ways with one uniform closeness in [0, 1), duplicates and self-links skipped), as in
//! `benches/scale.rs`. Deterministic given `seed`.
//!
//! ```yaml
//! population:
//!   agents: 100000
//!   profiles: ../../shared/data/recagent/user_1000.csv   # relative to the scenario file
//!   degree: 10                                           # default 10
//!   seed: 7                                              # default 7
//! ```

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::io::data::{load_users, Source};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPopulation {
    agents: u32,
    profiles: PathBuf,
    #[serde(default = "default_degree")]
    degree: u32,
    #[serde(default = "default_seed")]
    seed: u64,
}

fn default_degree() -> u32 {
    10
}

fn default_seed() -> u64 {
    7
}

/// A synthetic population's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Population {
    /// Number of users (all of them agents); 1..=10,000,000.
    pub agents: u32,
    /// The user file whose profiles are cycled (resolved against the scenario's directory).
    pub profiles: PathBuf,
    /// Mean number of contacts per user; 0..=1,000.
    pub degree: u32,
    /// Seed of the friendship graph.
    pub seed: u64,
}

impl Population {
    pub(crate) fn from_raw(r: &RawPopulation, dir: &Path) -> Result<Self, String> {
        if !(1..=10_000_000).contains(&r.agents) {
            return Err(format!(
                "agents: {} is out of range: allowed 1..=10000000",
                r.agents
            ));
        }
        if r.degree > 1000 {
            return Err(format!(
                "degree: {} is out of range: allowed 0..=1000",
                r.degree
            ));
        }
        let profiles = dir.join(&r.profiles);
        if !profiles.exists() {
            return Err(format!("profiles: {} does not exist", profiles.display()));
        }
        Ok(Self {
            agents: r.agents,
            profiles,
            degree: r.degree,
            seed: r.seed,
        })
    }

    /// Writes `users.csv` (`id,name,gender,age,traits,status,interest,feature`) and
    /// `relationship.csv` (`user_1,user_2,relationship,closeness`) into `dir`; returns their
    /// paths.
    ///
    /// # Errors
    /// A message naming the profile file that does not load or the file that cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
        let base = load_users(Source::Path(&self.profiles)).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let users = dir.join("users.csv");
        let rels = dir.join("relationship.csv");
        let werr = |p: &Path| {
            let p = p.display().to_string();
            move |e: &dyn std::fmt::Display| format!("{p}: cannot write: {e}")
        };
        let ue = werr(&users);
        let mut w = csv::Writer::from_path(&users).map_err(|e| ue(&e))?;
        w.write_record([
            "id", "name", "gender", "age", "traits", "status", "interest", "feature",
        ])
        .map_err(|e| ue(&e))?;
        for i in 0..self.agents {
            let u = &base[i as usize % base.len()];
            w.write_record([
                i.to_string(),
                u.name.clone(),
                u.gender.clone(),
                u.age.to_string(),
                u.traits.clone(),
                u.status.clone(),
                u.interest.clone(),
                u.features.join(";"),
            ])
            .map_err(|e| ue(&e))?;
        }
        w.flush().map_err(|e| ue(&e))?;

        let re = werr(&rels);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&rels).map_err(|e| re(&e))?);
        writeln!(w, "user_1,user_2,relationship,closeness").map_err(|e| re(&e))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        // Membership only: the file is written in draw order.
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let n = self.agents;
        for i in 0..n {
            for _ in 0..self.degree / 2 {
                let j = rng.random_range(0..n);
                let c: f32 = rng.random();
                if j == i || !seen.insert((i.min(j), i.max(j))) {
                    continue;
                }
                writeln!(w, "{i},{j},friend,{c:.3}\n{j},{i},friend,{c:.3}").map_err(|e| re(&e))?;
            }
        }
        w.flush().map_err(|e| re(&e))?;
        Ok((users, rels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_cycles_profiles_and_links_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let p = Population {
            agents: 90,
            profiles: root.join("data/users.csv"),
            degree: 4,
            seed: 7,
        };
        let (u, r) = p.write(tmp.path()).unwrap();
        let users = load_users(Source::Path(&u)).unwrap();
        let demo = load_users(Source::Path(&p.profiles)).unwrap();
        assert_eq!(users.len(), 90);
        // User 41 has the profile of demo user 41 mod 40 = 1, under its own id.
        assert_eq!(users[41].id, 41);
        assert_eq!(
            (&users[41].name, &users[41].interest, &users[41].features),
            (&demo[1].name, &demo[1].interest, &demo[1].features)
        );
        let edges = crate::io::data::load_relationships(Source::Path(&r), &users).unwrap();
        // At most 90 x 4/2 = 180 pairs, each written both ways.
        assert!(edges.len() <= 360 && edges.len() > 300, "{}", edges.len());
        assert_eq!(edges.len() % 2, 0);
        assert_eq!((edges[0].from, edges[0].to), (edges[1].to, edges[1].from));
        let again = tempfile::tempdir().unwrap();
        let (_, r2) = p.write(again.path()).unwrap();
        assert_eq!(std::fs::read(&r).unwrap(), std::fs::read(r2).unwrap());
    }
}

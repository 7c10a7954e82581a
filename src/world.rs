//! Building the world from data: users, items and their components, and the shared resources.

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_ecs::entity::Entity;
use bevy_ecs::resource::Resource;
use bevy_ecs::world::World;

use crate::catalog::{Catalog, GenreSet};
use crate::components::{
    Contact, Engagement, FeatureSet, Histories, Memory, Profile, Relationships, Taste,
};
use crate::ids::{ItemId, UserId};
use crate::io::data::{EdgeRecord, UserRecord};

/// User entities in id order, with their ids (for binary search).
#[derive(Resource, Clone, Debug, Default)]
pub struct Roster {
    /// Entities, ascending user id.
    pub entities: Vec<Entity>,
    /// Ids, ascending.
    pub ids: Vec<UserId>,
}

impl Roster {
    /// Roster position (dense user index) of an id.
    pub fn index_of(&self, id: UserId) -> Option<u32> {
        crate::ids::sorted_position(&self.ids, id).map(|i| i as u32)
    }
    /// Entity of an id.
    pub fn entity(&self, id: UserId) -> Option<Entity> {
        self.index_of(id).map(|i| self.entities[i as usize])
    }
    /// Number of agents.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// True when there are no agents.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Item entities by catalogue index.
#[derive(Resource, Clone, Debug, Default)]
pub struct ItemEntities(pub Vec<Entity>);

/// Relationship labels; [`Contact::label`] indexes this list.
#[derive(Resource, Clone, Debug, Default)]
pub struct RelationLabels(pub Vec<String>);

/// What loading did with the data, for the manifest and the log.
#[derive(Resource, Clone, Debug, Default, serde::Serialize)]
pub struct LoadReport {
    /// Items in the catalogue.
    pub items: usize,
    /// Users in the user file.
    pub users_in_file: usize,
    /// Agents created (`agent_num`).
    pub agents: usize,
    /// Directed edges kept.
    pub edges: usize,
    /// Directed edges dropped because an end is beyond `agent_num`.
    pub dropped_edges: usize,
    /// Agents with no contacts.
    pub agents_without_contacts: usize,
    /// Directed edges listed more than once (the last row's label and closeness are kept).
    pub duplicate_edges: usize,
    /// Edges added by `social_random_k` rewiring (directed), if it ran.
    pub rewired_edges: Option<usize>,
}

/// Keywords in interests and observations → genre names (MovieLens genre vocabulary).
/// RecAgent's eight interest phrases (spec §5.2) map as follows; `classic` has no genre of its own
/// and maps to the genres of older catalogues.
const TASTE_KEYWORDS: [(&str, &[&str]); 22] = [
    ("action", &["Action", "Adventure"]),
    ("adventure", &["Adventure"]),
    ("classic", &["Drama", "Film-Noir", "Western", "War"]),
    ("romantic", &["Romance"]),
    ("romance", &["Romance"]),
    ("love", &["Romance"]),
    ("sci-fi", &["Sci-Fi"]),
    ("science fiction", &["Sci-Fi"]),
    ("documentar", &["Documentary"]),
    ("family", &["Children's", "Animation", "Musical"]),
    ("comed", &["Comedy"]),
    ("thriller", &["Thriller", "Crime", "Mystery"]),
    ("suspense", &["Thriller", "Mystery"]),
    ("mystery", &["Mystery"]),
    ("horror", &["Horror"]),
    ("drama", &["Drama"]),
    ("animat", &["Animation"]),
    ("fantasy", &["Fantasy"]),
    ("war ", &["War"]),
    ("western", &["Western"]),
    ("musical", &["Musical"]),
    ("crime", &["Crime"]),
];

/// Liked genres from a user's interest and observation text (keyword match, case-insensitive).
pub fn taste_of(catalog: &Catalog, interest: &str, observations: &str) -> Taste {
    let text = format!(
        "{} {} ",
        interest.to_lowercase(),
        observations.to_lowercase()
    );
    let mut liked = GenreSet::default();
    for (kw, genres) in TASTE_KEYWORDS {
        if text.contains(kw) {
            liked = liked.union(catalog.genre_set(genres));
        }
    }
    Taste { liked }
}

/// `social_random_k` rewiring (spec §4.6, intent not bug): drop every edge, then for each agent in
/// id order link it to later agents, both directions, as `friend` with closeness 0.5, while both
/// have fewer than |k| links; `k > 0` links agents with different interest strings, `k < 0` equal ones.
pub fn rewire(users: &[UserRecord], k: i32) -> Vec<EdgeRecord> {
    let want = k.unsigned_abs() as usize;
    let n = users.len();
    let mut degree = vec![0usize; n];
    let mut edges = Vec::new();
    // Groups of agents by interest, for the homophilous case.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, u) in users.iter().enumerate() {
        groups.entry(u.interest.as_str()).or_default().push(i);
    }
    for i in 0..n {
        if degree[i] >= want {
            continue;
        }
        let candidates: Box<dyn Iterator<Item = usize>> = if k < 0 {
            let g = &groups[users[i].interest.as_str()];
            let start = g.partition_point(|&j| j <= i);
            Box::new(g[start..].iter().copied())
        } else {
            Box::new((i + 1..n).filter(|&j| users[j].interest != users[i].interest))
        };
        for j in candidates {
            if degree[i] >= want {
                break;
            }
            if degree[j] >= want {
                continue;
            }
            degree[i] += 1;
            degree[j] += 1;
            for (a, b) in [(i, j), (j, i)] {
                edges.push(EdgeRecord {
                    from: users[a].id,
                    to: users[b].id,
                    label: "friend".into(),
                    closeness: 0.5,
                    line: 0,
                });
            }
        }
    }
    edges
}

/// Interns strings so equal profile fields share one allocation. A hash map: its order never
/// reaches an output, and at a million agents the ordered map's string comparisons were a tenth
/// of the load.
#[derive(Default)]
struct Interner(std::collections::HashMap<Box<str>, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.0.insert(s.into(), a.clone());
        a
    }
}

/// Contact lists per agent (`ids` sorted), sorted by contact id, from `edges` in file order:
/// `(lists, labels, kept, dropped, duplicates)`. An edge with an end outside `ids` is dropped;
/// of a pair listed more than once, the last row is kept. Labels are numbered in order of first
/// appearance (at most 256 kept apart; later ones share the last number).
///
/// A counting sort by agent (two passes over the edges, one scatter), then each agent's few
/// contacts sorted stably on the rayon pool: at ten million edges a comparison sort of all of
/// them was a fifth of the load.
fn contact_lists(
    ids: &[UserId],
    edges: &[EdgeRecord],
) -> (Vec<Vec<Contact>>, Vec<String>, usize, usize, usize) {
    let mut labels: Vec<String> = Vec::new();
    let mut last_label: Option<(&str, u8)> = None;
    // Per edge: (agent, contact, label) positions, u32::MAX for a dropped edge.
    let mut ends: Vec<(u32, u32, u8)> = Vec::with_capacity(edges.len());
    let mut count = vec![0u32; ids.len() + 1];
    let mut dropped = 0usize;
    for e in edges {
        let (Some(a), Some(b)) = (
            crate::ids::sorted_position(ids, UserId(e.from)),
            crate::ids::sorted_position(ids, UserId(e.to)),
        ) else {
            dropped += 1;
            ends.push((u32::MAX, 0, 0));
            continue;
        };
        let label = match last_label {
            Some((l, i)) if l == &*e.label => i,
            _ => {
                let p = match labels.iter().position(|l| **l == *e.label) {
                    Some(p) => p,
                    None => {
                        labels.push(e.label.to_string());
                        labels.len() - 1
                    }
                };
                let i = u8::try_from(p).unwrap_or(u8::MAX);
                last_label = Some((&e.label, i));
                i
            }
        };
        count[a + 1] += 1;
        ends.push((a as u32, b as u32, label));
    }
    for i in 1..count.len() {
        count[i] += count[i - 1];
    }
    // Each agent's contacts in file order, agents one after another.
    let mut flat = vec![
        Contact {
            user: UserId(0),
            label: 0,
            closeness: 0.0
        };
        edges.len() - dropped
    ];
    let mut next = count.clone();
    for (&(a, b, label), e) in ends.iter().zip(edges) {
        if a == u32::MAX {
            continue;
        }
        let at = &mut next[a as usize];
        flat[*at as usize] = Contact {
            user: ids[b as usize],
            label,
            closeness: e.closeness,
        };
        *at += 1;
    }
    drop(ends);
    use rayon::prelude::*;
    let (lists, repeats): (Vec<Vec<Contact>>, Vec<usize>) = count
        .par_windows(2)
        .map(|w| {
            let mut list = flat[w[0] as usize..w[1] as usize].to_vec();
            // Stable, so of a repeated pair the last row comes last; it replaces the others.
            list.sort_by_key(|c| c.user);
            let mut kept = 0;
            for r in 0..list.len() {
                if kept > 0 && list[kept - 1].user == list[r].user {
                    list[kept - 1] = list[r];
                } else {
                    list[kept] = list[r];
                    kept += 1;
                }
            }
            let repeats = list.len() - kept;
            list.truncate(kept);
            (list, repeats)
        })
        .unzip();
    drop(flat);
    let duplicates = repeats.iter().sum();
    let kept = lists.iter().map(Vec::len).sum();
    (lists, labels, kept, dropped, duplicates)
}

/// Spawns agents (with the core components: id, profile, taste, relationships, memory,
/// histories, engagement, and the components plugins add with
/// [`crate::plugin::SimApp::add_agent_component`]) and items into `world`, and inserts
/// [`Roster`], [`ItemEntities`], [`RelationLabels`] and [`LoadReport`]. `users` must already
/// be limited to the agents (sorted by id); `edges` may reference users outside them (dropped
/// and counted).
pub fn populate(
    world: &mut World,
    catalog: &Catalog,
    users: &[UserRecord],
    users_in_file: usize,
    edges: &[EdgeRecord],
    rewired: bool,
) -> LoadReport {
    let ids: Vec<UserId> = users.iter().map(|u| UserId(u.id)).collect();
    let (contacts, labels, kept, dropped, duplicates) = contact_lists(&ids, edges);
    if duplicates > 0 {
        tracing::warn!(
            duplicates,
            "relationship edges listed more than once: the last row of each pair is kept"
        );
    }
    if dropped > 0 {
        tracing::info!(
            dropped,
            "relationship edges dropped: an end is beyond agent_num"
        );
    }
    let no_contacts = contacts.iter().filter(|c| c.is_empty()).count();
    // Profiles and tastes on the rayon pool, one part per thread, each with its own interner
    // (a few copies of each distinct string rather than threads sharing reference counts).
    // Profiles repeat (a population drawn from a few personas): each distinct
    // (interest, observations) pair is matched against the keywords once per part.
    let parts: Vec<Vec<(Profile, Taste)>> = {
        use rayon::prelude::*;
        let per = users
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        users
            .par_chunks(per)
            .map(|part| {
                let mut interner = Interner::default();
                let mut tastes: std::collections::HashMap<(&str, &str), Taste> =
                    std::collections::HashMap::new();
                part.iter()
                    .map(|u| {
                        let features = FeatureSet(
                            u.features
                                .iter()
                                .filter_map(|f| FeatureSet::code(f))
                                .fold(0, |a, b| a | b),
                        );
                        let profile = Profile {
                            name: interner.get(&u.name),
                            gender: interner.get(&u.gender),
                            age: u.age,
                            traits: interner.get(&u.traits),
                            status: interner.get(&u.status),
                            interest: interner.get(&u.interest),
                            features,
                            observations: interner.get(&u.observations),
                        };
                        let taste = *tastes
                            .entry((u.interest.as_str(), u.observations.as_str()))
                            .or_insert_with(|| taste_of(catalog, &u.interest, &u.observations));
                        (profile, taste)
                    })
                    .collect()
            })
            .collect()
    };
    // One batch: every agent lands in one table sized once, with the plugins' components
    // (required by `UserId`, see [`crate::plugin::SimApp::add_agent_component`]) in the same
    // row, instead of a spawn, plugin inserts and a bundle insert moving each agent between
    // tables.
    let bundles = users
        .iter()
        .zip(parts.into_iter().flatten())
        .zip(contacts)
        .map(|((u, (profile, taste)), c)| {
            (
                UserId(u.id),
                profile,
                taste,
                Relationships(c),
                Memory::default(),
                Histories::default(),
                Engagement::default(),
            )
        });
    let entities: Vec<Entity> = world.spawn_batch(bundles).collect();
    let items: Vec<Entity> = world
        .spawn_batch(catalog.items().iter().map(|it| ItemId(it.id.0)))
        .collect();
    world.insert_resource(Roster { entities, ids });
    world.insert_resource(ItemEntities(items));
    world.insert_resource(RelationLabels(labels));
    let report = LoadReport {
        items: catalog.len(),
        users_in_file,
        agents: users.len(),
        edges: kept,
        dropped_edges: dropped,
        agents_without_contacts: no_contacts,
        duplicate_edges: duplicates,
        rewired_edges: rewired.then_some(kept),
    };
    world.insert_resource(report.clone());
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u32, interest: &str) -> UserRecord {
        UserRecord {
            id,
            name: format!("U{id}"),
            gender: String::new(),
            age: 30,
            traits: String::new(),
            status: String::new(),
            interest: interest.into(),
            features: vec![],
            observations: String::new(),
        }
    }

    fn edge(from: u32, to: u32, label: &str, closeness: f32) -> EdgeRecord {
        EdgeRecord {
            from,
            to,
            label: label.into(),
            closeness,
            line: 0,
        }
    }

    #[test]
    fn populate_sorts_contacts_keeps_the_last_of_a_repeated_pair_and_drops_outsiders() {
        // Sparse ids (the guess of `sorted_position` misses) and an edge to an unknown user.
        let users: Vec<UserRecord> = [2, 5, 9].iter().map(|&i| user(i, "comedy")).collect();
        let edges = vec![
            edge(5, 9, "friend", 0.1),
            edge(5, 2, "colleague", 0.2),
            edge(2, 5, "friend", 0.3),
            edge(5, 9, "colleague", 0.4),
            edge(9, 7, "friend", 0.5),
            edge(5, 9, "friend", 0.6),
        ];
        let mut world = World::new();
        let catalog = crate::testing::drama_catalog(2);
        let report = populate(&mut world, &catalog, &users, 3, &edges, false);
        assert_eq!(
            (report.edges, report.duplicate_edges, report.dropped_edges),
            (3, 2, 1)
        );
        assert_eq!(report.agents_without_contacts, 1);
        let labels = world.resource::<RelationLabels>().0.clone();
        assert_eq!(labels, ["friend", "colleague"]);
        let roster = world.resource::<Roster>().clone();
        let of = |world: &World, id: u32| -> Vec<(u32, &str, f32)> {
            world
                .get::<Relationships>(roster.entity(UserId(id)).unwrap())
                .unwrap()
                .0
                .iter()
                .map(|c| (c.user.0, labels[c.label as usize].as_str(), c.closeness))
                .collect()
        };
        assert_eq!(of(&world, 5), [(2, "colleague", 0.2), (9, "friend", 0.6)]);
        assert_eq!(of(&world, 2), [(5, "friend", 0.3)]);
        assert_eq!(of(&world, 9), []);
    }

    #[test]
    fn rewiring_respects_k_and_homophily() {
        let users: Vec<UserRecord> = (0..8)
            .map(|i| user(i, if i % 2 == 0 { "comedy" } else { "drama" }))
            .collect();
        let e = rewire(&users, -2);
        // Homophily: only equal interests, each agent at most 2 links.
        assert!(e.iter().all(|x| x.from % 2 == x.to % 2));
        let mut deg = [0; 8];
        for x in &e {
            deg[x.from as usize] += 1;
        }
        assert!(deg.iter().all(|&d| d <= 2), "{deg:?}");
        // Links only go to later agents (as in RecAgent), so the last of each group stays alone.
        assert_eq!(deg, [2, 2, 2, 2, 2, 2, 0, 0]);
        let e = rewire(&users, 1);
        assert!(e.iter().all(|x| x.from % 2 != x.to % 2));
        assert_eq!(e.len(), 8);
    }
}

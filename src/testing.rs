//! Shared set-up of the phase systems' unit tests (`systems/*.rs`): a tiny simulation built by
//! [`SimBuilder`] on data written to a temporary folder (N agents `U0..U<N-1>`, the given
//! friendships, the three-item catalogue [`ITEMS`]), answered by a
//! [`ScriptedBackend`], and helpers to set components, run one system on the world and read
//! what it did.
//!
//! A test sets up the state a system reads directly in the world, runs just that system
//! ([`TestSim::run`]: bevy's `run_system_once`, deferred commands applied), and asserts on the
//! world; the world has every resource and component a built simulation has, so the system sees
//! what it sees in a run.

use std::sync::Arc;

use bevy_ecs::component::Component;
use bevy_ecs::entity::Entity;
use bevy_ecs::system::{IntoSystem, RunSystemOnce};
use bevy_ecs::world::World;

use crate::behaviour::scripted::ScriptedBackend;
use crate::behaviour::BehaviourStats;
use crate::clock::SimClock;
use crate::components::MemoryRecord;
use crate::config::SimConfig;
use crate::decision::Script;
use crate::ids::{ItemId, UserId};
use crate::io::output::OutputPaths;
use crate::sim::{ActiveAgents, PendingObservations, RecState, RoundLog, Sim, SimBuilder};
use crate::world::Roster;

/// The catalogue: item 0 "Toy Story", 1 "The Matrix", 2 "Heat" (ids = catalogue indices).
pub(crate) const ITEMS: &str = "id,title,genre,description\n\
    0,Toy Story,Animation|Comedy,Toys come alive when nobody looks.\n\
    1,The Matrix,Action|Sci-Fi,A hacker learns the world is a simulation.\n\
    2,Heat,Action|Crime,A detective hunts a crew of thieves.\n";

/// The item ids of [`ITEMS`].
pub(crate) const TOY_STORY: ItemId = ItemId(0);
/// See [`TOY_STORY`].
pub(crate) const MATRIX: ItemId = ItemId(1);
/// See [`TOY_STORY`].
pub(crate) const HEAT: ItemId = ItemId(2);

/// A built tiny simulation and the folder holding its data and outputs.
pub(crate) struct TestSim {
    /// The simulation.
    pub sim: Sim,
    _dir: tempfile::TempDir,
}

/// A simulation of `n` agents (ids `0..n`, names `U<id>`), with each pair of `edges` as a
/// friendship both ways (closeness 0.5), the catalogue [`ITEMS`], the configuration lines
/// `extra` (YAML, added to the defaults) and `script` answering every decision. The item index
/// is off (searches use the word ranking) and the recommender is `Popularity`, so with no watches
/// it ranks the items by id.
pub(crate) fn tiny(n: u32, edges: &[(u32, u32)], extra: &str, script: Script) -> TestSim {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut users = String::from("id,name,gender,age,traits,status,interest,feature\n");
    for i in 0..n {
        users.push_str(&format!(
            "{i},U{i},female,30,calm,Nurse,action movies,Watcher\n"
        ));
    }
    let mut rel = String::from("user_1,user_2,relationship,closeness\n");
    for &(a, b) in edges {
        rel.push_str(&format!("{a},{b},friend,0.5\n{b},{a},friend,0.5\n"));
    }
    let d = dir.path();
    std::fs::write(d.join("item.csv"), ITEMS).expect("write items");
    std::fs::write(d.join("users.csv"), users).expect("write users");
    std::fs::write(d.join("rel.csv"), rel).expect("write relationships");
    // The settings the unit tests were computed with (every agent active, no cap, no random
    // items), unless the test sets them.
    let harness: String = [
        ("active_prob", "1"),
        ("active_agent_threshold", ""),
        ("rec_random_k", "0"),
        ("rec_model", "Popularity"),
    ]
    .iter()
    .filter(|(k, _)| !extra.lines().any(|l| l.starts_with(&format!("{k}:"))))
    .map(|(k, v)| format!("{k}: {v}\n"))
    .collect();
    let text = format!(
        "item_path: item.csv\nuser_path: users.csv\nrelationship_path: rel.csv\n\
         memory:\n  item_index: false\n{harness}{extra}"
    );
    let cfg = SimConfig::from_yaml(&text, "test", d.to_path_buf()).expect("test config");
    let out = d.join("out");
    let sim = SimBuilder::new(cfg)
        .outputs(OutputPaths::in_dir(&out))
        .backend(Box::new(ScriptedBackend::new(script)))
        .build()
        .expect("tiny simulation");
    TestSim { sim, _dir: dir }
}

impl TestSim {
    /// The world.
    pub fn world(&self) -> &World {
        self.sim.world()
    }

    /// The world, mutably.
    pub fn world_mut(&mut self) -> &mut World {
        self.sim.world_mut()
    }

    /// The entity of agent `u`.
    pub fn entity(&self, u: u32) -> Entity {
        self.world()
            .resource::<Roster>()
            .entity(UserId(u))
            .unwrap_or_else(|| panic!("no agent {u}"))
    }

    /// Agent `u`'s component `C`.
    pub fn get<C: Component + Clone>(&self, u: u32) -> C {
        let e = self.entity(u);
        self.world()
            .get::<C>(e)
            .unwrap_or_else(|| panic!("agent {u} has no {}", std::any::type_name::<C>()))
            .clone()
    }

    /// Replaces agent `u`'s component `C`.
    pub fn set<C: Component>(&mut self, u: u32, c: C) {
        let e = self.entity(u);
        self.world_mut().entity_mut(e).insert(c);
    }

    /// Starts round `r` (what the engine's begin system does: the clock's round).
    pub fn at_round(&mut self, r: u32) {
        self.world_mut().resource_mut::<SimClock>().round = r;
    }

    /// Simulated minutes from the clock's start to the current round's start (what systems
    /// call "now").
    pub fn now_minutes(&self) -> i64 {
        let c = self.world().resource::<SimClock>();
        (c.now() - c.start).num_minutes()
    }

    /// Makes agents `ids` (ascending) this round's active agents.
    pub fn activate(&mut self, ids: &[u32]) {
        let e: Vec<Entity> = ids.iter().map(|&u| self.entity(u)).collect();
        self.world_mut().resource_mut::<ActiveAgents>().0 = e;
    }

    /// This round's active agents, by id.
    pub fn active_ids(&self) -> Vec<u32> {
        let w = self.world();
        w.resource::<ActiveAgents>()
            .0
            .iter()
            .map(|&e| w.get::<UserId>(e).expect("an agent").0)
            .collect()
    }

    /// Runs `system` once on the world (its commands applied).
    pub fn run<M>(&mut self, system: impl IntoSystem<(), (), M>) {
        self.world_mut()
            .run_system_once(system)
            .expect("the system runs");
    }

    /// The round's messages so far, as `(agent, action, content)`.
    pub fn messages(&self) -> Vec<(i64, &'static str, String)> {
        self.world()
            .resource::<RoundLog>()
            .messages
            .iter()
            .map(|m| (m.agent_id, m.action, m.content.clone()))
            .collect()
    }

    /// The messages of agent `u`, in order, as `(action, content)`.
    pub fn messages_of(&self, u: u32) -> Vec<(&'static str, String)> {
        self.messages()
            .into_iter()
            .filter(|m| m.0 == i64::from(u))
            .map(|m| (m.1, m.2))
            .collect()
    }

    /// The round's interactions so far, as `(user, item, label, rating)`.
    pub fn interactions(&self) -> Vec<(u32, u32, u8, u8)> {
        // A copy settles its records; the world's log stays as the phases left it.
        self.world()
            .resource::<RoundLog>()
            .clone()
            .interactions()
            .iter()
            .map(|r| (r.user, r.item, r.label, r.rating))
            .collect()
    }

    /// The counter named `name`.
    pub fn counter(&self, name: &str) -> u64 {
        self.sim.counters().get(name)
    }

    /// The observations queued for the remember phase, in order.
    pub fn pending(&self) -> Vec<(UserId, MemoryRecord)> {
        self.world().resource::<PendingObservations>().0.clone()
    }

    /// Requests and fallbacks of decision kind `kind` so far.
    pub fn requests_and_fallbacks(&self, kind: &str) -> (u64, u64) {
        let s = self.world().resource::<BehaviourStats>();
        (s.requests_of(kind), s.fallbacks_of(kind))
    }

    /// The recommender's state, mutably.
    pub fn rec_mut(&mut self) -> bevy_ecs::world::Mut<'_, RecState> {
        self.world_mut().resource_mut::<RecState>()
    }

    /// The recommender's state.
    pub fn rec(&self) -> &RecState {
        self.world().resource::<RecState>()
    }
}

/// An observation as systems queue it (no text).
pub(crate) fn obs(
    user: u32,
    round: u32,
    kind: crate::components::ObservationKind,
    item: Option<ItemId>,
    other: Option<u32>,
    value: u8,
) -> (UserId, MemoryRecord) {
    (
        UserId(user),
        MemoryRecord {
            round,
            item,
            other: other.map(UserId),
            kind,
            value,
            text: None,
        },
    )
}

/// [`obs`] with a text.
pub(crate) fn obs_text(
    user: u32,
    round: u32,
    kind: crate::components::ObservationKind,
    item: Option<ItemId>,
    other: Option<u32>,
    text: &str,
) -> (UserId, MemoryRecord) {
    let (u, mut r) = obs(user, round, kind, item, other, 0);
    r.text = Some(Arc::from(text));
    (u, r)
}

/// A catalogue of `n` Drama items `T0..T{n-1}` with ids `0..n`, for decision tests.
pub fn drama_catalog(n: u32) -> crate::catalog::Catalog {
    crate::catalog::Catalog::new(
        (0..n)
            .map(|i| crate::io::data::ItemRecord {
                id: i,
                title: format!("T{i}"),
                genres: vec!["Drama".into()],
                description: String::new(),
            })
            .collect(),
    )
    .unwrap()
}

/// A profile named "A", 30 years old, with no traits, interests or features.
pub fn plain_profile() -> crate::components::Profile {
    crate::components::Profile {
        name: "A".into(),
        gender: "".into(),
        age: 30,
        traits: "".into(),
        status: "".into(),
        interest: "".into(),
        features: crate::domain::FeatureSet(0),
        observations: "".into(),
    }
}

/// A clock starting 2023-06-01 08:00 with hour-long rounds.
pub fn hourly_clock() -> SimClock {
    let start = chrono::NaiveDate::from_ymd_opt(2023, 6, 1)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    SimClock::new(start, crate::clock::Interval::Seconds(3600))
}

use std::collections::{BTreeMap, BTreeSet};

use recagent::config::SimConfig;
use recagent::ids::UserId;
use recagent::io::data::{load_items, load_relationships, load_users, Source};
use recagent::systems::activate::activity_levels;

use crate::common::{messages, recagent_config, run, shared};

/// Titles inside `[<a>, <b>, ...]` of a page message.
fn page_titles(content: &str) -> Vec<String> {
    let open = content.find("[<").unwrap();
    let inner = &content[open + 2..content.rfind(">]").unwrap()];
    inner.split(">, <").map(str::to_string).collect()
}

#[test]
fn three_rounds_of_fifty_agents_keep_their_invariants() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = recagent_config(&dir, 50, 3);
    let page_size = cfg
        .extra
        .get("page_size")
        .and_then(|v| v.as_u64())
        .unwrap_or(5) as usize;
    let out = run(cfg, tmp.path());
    let users = load_users(Source::Path(&dir.join("user_1000.csv"))).unwrap();
    let edges =
        load_relationships(Source::Path(&dir.join("relationship_1000.csv")), &users).unwrap();
    let related: BTreeSet<(u32, u32)> = edges.iter().map(|e| (e.from, e.to)).collect();
    let degree_within = |u: u32| edges.iter().filter(|e| e.from == u && e.to < 50).count();
    let items = load_items(Source::Path(&dir.join("item.csv"))).unwrap();
    let title_of: BTreeMap<u32, &str> = items.iter().map(|i| (i.id, i.title.as_str())).collect();

    let msgs = messages(&out.messages);
    assert!(!msgs.is_empty());
    // Per (round, agent): titles shown so far this round; watched titles must be among them.
    let mut shown: BTreeMap<(u32, i64), BTreeSet<String>> = BTreeMap::new();
    // Recommended (not searched) titles per agent across rounds: never repeated, unless the
    // catalogue itself has two items with that title (42 titles are duplicated).
    let mut recommended: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut title_count: BTreeMap<&str, usize> = BTreeMap::new();
    for it in &items {
        *title_count.entry(it.title.as_str()).or_default() += 1;
    }
    let (mut watches, mut chats, mut posts) = (0, 0, 0);
    let mut last_key = (0u32, -1i64);
    for (round, agent, action, content) in &msgs {
        assert!((0..50).contains(agent), "agent {agent}");
        assert!((1..=3).contains(round));
        assert!(
            (*round, *agent) >= last_key,
            "messages grouped by round then agent id"
        );
        last_key = (*round, *agent);
        if content.contains(" is recommended [<") || content.contains(" search results for ") {
            let t = page_titles(content);
            assert!(!t.is_empty() && t.len() <= page_size, "{content}");
            if content.contains(" is recommended [<") {
                for x in &t {
                    let fresh = recommended.entry(*agent).or_default().insert(x.clone());
                    assert!(
                        fresh || title_count[x.as_str()] > 1,
                        "{x:?} recommended twice to {agent}"
                    );
                }
            }
            shown.entry((*round, *agent)).or_default().extend(t);
        }
        if let Some(rest) = content
            .strip_suffix(">.")
            .and_then(|c| c.split_once(" watches <"))
            .map(|x| x.1)
        {
            watches += 1;
            assert!(
                shown
                    .get(&(*round, *agent))
                    .is_some_and(|s| s.contains(rest)),
                "watched {rest:?} was not on a page"
            );
            assert_eq!(action, "RECOMMENDER");
        }
        if action == "CHAT" && content.contains(" is chatting with ") {
            chats += 1;
            let id: u32 = content
                .rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(").")
                .parse()
                .unwrap();
            assert!(
                related.contains(&(*agent as u32, id)),
                "chat {agent} -> {id} between unrelated agents"
            );
            assert!(id < 50);
        }
        if let Some(n) = content.strip_suffix(" contacts get this post.") {
            posts += 1;
            assert_eq!(
                n.parse::<usize>().unwrap(),
                degree_within(*agent as u32),
                "post reaches exactly the contacts"
            );
        }
    }
    assert_eq!(watches as u64, out.stats["watches"]);
    assert_eq!(chats as u64, out.stats["chats"]);
    assert_eq!(posts as u64, out.stats["posts"]);
    assert!(watches > 0, "some agent watched something");

    // Interactions: ratings 1..=5 on watches; one row per (user, item) and round.
    let mut seen = BTreeSet::new();
    let mut watched_rows = 0;
    let mut watched_pairs = BTreeSet::new();
    for line in out.interactions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (user, item, label): (u32, u32, u8) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        assert!(user < 50 && title_of.contains_key(&item));
        let round: u32 = f[4].parse().unwrap();
        assert!(
            seen.insert((user, item, round)),
            "item {item} has two rows for user {user} in round {round}"
        );
        if label == 1 {
            watched_rows += 1;
            assert!(
                watched_pairs.insert((user, item)),
                "user {user} watched item {item} twice"
            );
            let r: u8 = f[3].parse().unwrap();
            assert!((1..=5).contains(&r));
        } else {
            assert_eq!(f[3], "");
        }
    }
    assert_eq!(watched_rows, out.stats["watches"]);
    let m = out.stats["rating_sum"] as f64 / out.stats["ratings"] as f64;
    assert!((1.0..=5.0).contains(&m));
    assert_eq!(out.manifest["rounds_completed"], 3);
    assert_eq!(out.manifest["data"]["agents"], 50);
    // Of 20,846 directed edges, 42 lie within the first 50 users (spec §5.3: 21 pairs).
    assert_eq!(out.manifest["data"]["edges"], 42);
    assert_eq!(out.manifest["data"]["dropped_edges"], 20_846 - 42);
}

fn activity_run(
    dir: &std::path::Path,
    extra: &str,
    agents: u32,
    rounds: u32,
) -> (u64, Vec<(u32, i64, String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "item_path: {d}/item.csv\nuser_path: {d}/user_1000.csv\nrelationship_path: {d}/relationship_1000.csv\n\
         agent_num: {agents}\nround: {rounds}\nseed: 11\n{extra}",
        d = dir.display()
    );
    let cfg = SimConfig::from_yaml(&text, "test", "/".into()).unwrap();
    let out = run(cfg, tmp.path());
    (out.stats["active_agents"], messages(&out.messages))
}

#[test]
fn activation_statistics() {
    let Some(dir) = shared("recagent") else {
        return;
    };
    // random: each agent acts with p = 0.3, independently per round. 1000 agents x 10 rounds:
    // mean 3000, sd sqrt(10000 * 0.3 * 0.7) = 45.8; allow 4 sd. (Watching agents sit a round
    // out, so the count is slightly lower; see the bound below.)
    // No cap (the default caps each round at 100 active agents).
    let (n, _) = activity_run(
        &dir,
        "active_method: random\nactive_prob: 0.3\nactive_agent_threshold: 0\n",
        1000,
        10,
    );
    assert!((2700..=3190).contains(&n), "{n}");

    // threshold: with everyone a candidate, exactly the 100 lowest ids act in round 1.
    let (n, msgs) = activity_run(
        &dir,
        "active_prob: 1.0\nactive_agent_threshold: 100\n",
        300,
        1,
    );
    assert_eq!(n, 100);
    let idle: BTreeSet<i64> = msgs
        .iter()
        .filter(|m| m.2 == "NO_ACTION")
        .map(|m| m.1)
        .collect();
    assert_eq!(idle, (100..300).collect());

    // sample: agent i acts with its Pareto level l_i; expected total = rounds * Σ l_i.
    let ids: Vec<UserId> = (0..1000).map(UserId).collect();
    let levels = activity_levels(11, &ids, 10.0);
    let expected: f64 = levels.iter().map(|&l| f64::from(l)).sum::<f64>() * 5.0;
    let var: f64 = levels
        .iter()
        .map(|&l| f64::from(l) * (1.0 - f64::from(l)))
        .sum::<f64>()
        * 5.0;
    let (n, _) = activity_run(
        &dir,
        "active_method: sample\nactive_prob: 1.0\nactive_agent_threshold: 0\n",
        1000,
        5,
    );
    assert!(
        (n as f64 - expected).abs() < 4.0 * var.sqrt() + 5.0,
        "{n} vs {expected:.1}"
    );

    // marginal: probability grows with idle rounds, so more activity than sample.
    let (m, _) = activity_run(
        &dir,
        "active_method: marginal\nactive_prob: 1.0\nactive_agent_threshold: 0\n",
        1000,
        5,
    );
    assert!(
        m as f64 > expected * 1.3,
        "marginal {m} vs sample {expected:.1}"
    );
}

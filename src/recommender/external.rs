//! External recommender: asks an HTTP endpoint for each slate (JSON in, JSON out), so a model
//! written in another language can serve the simulation.
//!
//! Request (`POST <url>`, `Content-Type: application/json`):
//! `{"user": 3, "k": 5, "exclude": [0, 7], "history": [7]}` — dense user index, slate length,
//! items that must not come back (already shown), and the user's watched items (initial data and
//! the run so far), all as dense catalogue indices (see the module docs of `recommender`).
//! Reply: `{"items": [4, 1, 9], "scores": [0.9, 0.5, 0.1]}` (`scores` optional), best first.
//!
//! Invalid entries in a reply (out of range, excluded, repeated) are dropped and counted. A failed
//! request (connection, timeout, HTTP status ≥ 400, bad JSON) is logged and counted, and the slate
//! comes from the popularity fallback instead, so a flaky endpoint never stops a run. Only plain
//! `http://` URLs are supported (no TLS in the build).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::train::Positives;
use super::{InteractionLog, Popularity, Recommender, Slate};

/// Per-request timeout (connect + send + read), seconds.
pub const TIMEOUT_SECS: u64 = 10;

/// Body sent to the endpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct SlateRequest {
    /// Dense user index.
    pub user: u32,
    /// Items wanted.
    pub k: usize,
    /// Items that must not be returned, ascending.
    pub exclude: Vec<u32>,
    /// Items the user watched, ascending.
    pub history: Vec<u32>,
}

/// Body expected back.
#[derive(Debug, Serialize, Deserialize)]
pub struct SlateReply {
    /// Items, best first.
    pub items: Vec<u32>,
    /// Optional scores, same length as `items`.
    #[serde(default)]
    pub scores: Vec<f32>,
}

/// HTTP-backed recommender (see the module docs).
pub struct External {
    url: String,
    agent: ureq::Agent,
    fallback: Popularity,
    pos: Positives,
    n_items: usize,
    /// Requests that failed (fallback used).
    pub failures: AtomicU64,
    /// Reply entries dropped as invalid.
    pub dropped: AtomicU64,
}

impl External {
    /// A client for `url` (`http://host:port/path`).
    pub fn new(url: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(TIMEOUT_SECS)))
            .build()
            .into();
        Self {
            url: url.to_string(),
            agent,
            fallback: Popularity::default(),
            pos: Positives::default(),
            n_items: 0,
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn ask(&self, req: &SlateRequest) -> Result<SlateReply, ureq::Error> {
        let body = self
            .agent
            .post(&self.url)
            .send_json(req)?
            .body_mut()
            .read_to_vec()?;
        parse_reply(&body).map_err(ureq::Error::Json)
    }
}

/// Parses a reply body (`{"items": [...], "scores": [...]}`, see the module docs).
///
/// # Errors
/// The JSON error for a body that is not such an object (ids must be integers in
/// `0..=4294967295`, scores numbers).
pub fn parse_reply(body: &[u8]) -> Result<SlateReply, serde_json::Error> {
    serde_json::from_slice(body)
}

/// The slate of at most `k` items that `reply` gives for a catalogue of `n_items` items, and the
/// number of entries dropped as invalid (out of range, excluded or repeated); an item without a
/// score gets 0. Stops reading at the `k`-th kept item.
pub fn slate_from_reply(
    reply: &SlateReply,
    k: usize,
    n_items: usize,
    exclude: &dyn Fn(u32) -> bool,
) -> (Slate, u64) {
    let mut s = Slate::default();
    let mut dropped = 0;
    for (n, &i) in reply.items.iter().enumerate() {
        if s.items.len() == k {
            break;
        }
        if (i as usize) >= n_items || exclude(i) || s.items.contains(&i) {
            dropped += 1;
            continue;
        }
        s.items.push(i);
        s.scores.push(reply.scores.get(n).copied().unwrap_or(0.0));
    }
    (s, dropped)
}

impl Recommender for External {
    fn name(&self) -> &'static str {
        "External"
    }

    fn fit(&mut self, log: &InteractionLog) {
        self.fallback.fit(log);
        self.pos = Positives::from_log(log);
        self.n_items = log.n_items();
    }

    fn recommend(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Slate {
        let req = SlateRequest {
            user,
            k,
            exclude: (0..self.n_items as u32).filter(|&i| exclude(i)).collect(),
            history: self.pos.items_of(user).to_vec(),
        };
        match self.ask(&req) {
            Ok(reply) => {
                let (s, dropped) = slate_from_reply(&reply, k, self.n_items, exclude);
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
                s
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.url, user, error = %e, "external recommender failed; using popularity");
                self.fallback.recommend(user, k, exclude, rng)
            }
        }
    }
}

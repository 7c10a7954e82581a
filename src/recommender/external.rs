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
//! comes from the popularity fallback instead (the counts reach the run's counters,
//! `external_failed_requests` and `external_dropped_items`, through [`Recommender::take_counts`]), so a flaky endpoint never stops a run. Only plain
//! `http://` URLs are supported (no TLS in the build).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::train::Positives;
use super::{InteractionLog, ModelCount, Popularity, Recommender, Slate};

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
    /// Requests that failed (fallback used) since the last [`Recommender::take_counts`].
    pub failures: AtomicU64,
    /// Reply entries dropped as invalid since the last [`Recommender::take_counts`].
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

    fn ask(&self, req: &SlateRequest) -> Result<Vec<u8>, ureq::Error> {
        self.agent
            .post(&self.url)
            .send_json(req)?
            .body_mut()
            .read_to_vec()
    }
}

/// What [`parse_slate_reply`] found wrong with a reply body.
#[derive(Debug, thiserror::Error)]
#[error("reply is not {{\"items\": [...], \"scores\": [...]}}: {0}")]
pub struct ReplyError(String);

/// Reads a reply body (see the module docs): at most `k` items, best first, each below
/// `n_items`, not excluded and not repeated, with its score (0 when `scores` is shorter).
/// Returns the slate and the number of entries dropped as invalid. Never panics, on any bytes.
///
/// # Errors
/// [`ReplyError`] when the body is not JSON of the reply's shape (wrong types, ids beyond
/// `u32`, not UTF-8, truncated).
pub fn parse_slate_reply(
    body: &[u8],
    k: usize,
    n_items: usize,
    exclude: &dyn Fn(u32) -> bool,
) -> Result<(Slate, u64), ReplyError> {
    let reply: SlateReply = serde_json::from_slice(body).map_err(|e| ReplyError(e.to_string()))?;
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
    Ok((s, dropped))
}

/// Counter name of [`External`]'s failed requests (see [`Recommender::take_counts`]).
pub const EXTERNAL_FAILED: &str = "external_failed_requests";
/// Counter name of the reply entries [`External`] dropped as invalid.
pub const EXTERNAL_DROPPED: &str = "external_dropped_items";

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
        let reply = self.ask(&req).map_err(|e| e.to_string()).and_then(|body| {
            parse_slate_reply(&body, k, self.n_items, exclude).map_err(|e| e.to_string())
        });
        match reply {
            Ok((slate, dropped)) => {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
                slate
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.url, user, error = %e, "external recommender failed; using popularity");
                self.fallback.recommend(user, k, exclude, rng)
            }
        }
    }

    fn take_counts(&self) -> Vec<ModelCount> {
        vec![
            ModelCount {
                name: EXTERNAL_FAILED,
                label: "External requests failed (Popularity answered)",
                n: self.failures.swap(0, Ordering::Relaxed),
            },
            ModelCount {
                name: EXTERNAL_DROPPED,
                label: "External reply items dropped as invalid",
                n: self.dropped.swap(0, Ordering::Relaxed),
            },
        ]
    }
}

//! [`PyModel`]: a recommender written in Python, behind the engine's [`Recommender`] trait.
//!
//! The protocol: any object with `recommend(user, k, exclude, history) -> list of item ids`
//! (ids as in the data files; `exclude`: the items already shown to `user`, ascending;
//! `history`: the items `user` watched, in watch order) and optionally `fit(interactions)`,
//! called at the start and at every retraining with every watch so far as a list of dicts
//! `{user_id, item_id, rating, round}` (rating 0 = not rated yet; warm-start background users
//! have negative ids -1, -2, ...).
//!
//! The engine asks for pages one at a time on its own thread, with the GIL released; each call
//! attaches to the interpreter ([`Python::attach`]). The first exception (or unusable answer)
//! is kept in the shared error slot and every later call of the round answers an empty page
//! without calling Python; the wrapper then rolls the round back and raises it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rand_chacha::ChaCha8Rng;
use recagent::recommender::{InteractionLog, Recommender, Slate};

use crate::errors::RecommenderError;

/// The error slot a [`PyModel`] shares with its simulation.
pub type ErrorSlot = Arc<Mutex<Option<PyErr>>>;

/// `recommend` calls made and the nanoseconds they took end to end (attaching to the
/// interpreter, building the arguments, the call, reading the answer), for the overhead figure.
#[derive(Default)]
pub struct CallStats {
    /// Calls.
    pub calls: AtomicU64,
    /// Nanoseconds.
    pub nanos: AtomicU64,
}

/// A Python object as the simulation's recommender.
pub struct PyModel {
    obj: Py<PyAny>,
    has_fit: bool,
    /// The object has `recommend_batch(users, k, excludes, histories)`: a round's first pages
    /// are asked in one call.
    has_batch: bool,
    /// Item id of each dense item index (ascending: the catalogue is in id order).
    items: Vec<u32>,
    /// User id of each dense agent index.
    users: Vec<u32>,
    error: ErrorSlot,
    stats: Arc<CallStats>,
}

impl PyModel {
    /// Wraps `obj`, checking it has a callable `recommend`.
    ///
    /// # Errors
    /// `TypeError` when `obj` has no `recommend` method.
    pub fn new(obj: &Bound<'_, PyAny>, error: ErrorSlot, stats: Arc<CallStats>) -> PyResult<Self> {
        let callable = |name: &str| obj.getattr(name).map(|m| m.is_callable()).unwrap_or(false);
        if !callable("recommend") {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "rec_model: expected a model name (\"MF\", ...) or an object with a recommend(user, k, exclude, history) method, got {}",
                obj.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
            )));
        }
        Ok(Self {
            obj: obj.clone().unbind(),
            has_fit: callable("fit"),
            has_batch: callable("recommend_batch"),
            items: Vec::new(),
            users: Vec::new(),
            error,
            stats,
        })
    }

    fn failed(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }

    fn fail(
        &self,
        py: Python<'_>,
        method: &str,
        user: Option<u32>,
        k: Option<usize>,
        msg: String,
        cause: Option<PyErr>,
    ) {
        let e = RecommenderError::new_err(msg);
        let v = e.value(py);
        let _ = v.setattr("method", method);
        let _ = v.setattr("user", user);
        let _ = v.setattr("k", k);
        if let Some(c) = cause {
            e.set_cause(py, Some(c));
        }
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn user_id(&self, u: u32) -> i64 {
        match self.users.get(u as usize) {
            Some(&id) => i64::from(id),
            None => -1 - (i64::from(u) - self.users.len() as i64),
        }
    }

    fn ask(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        shown: Vec<u32>,
        history: Vec<u32>,
    ) -> Slate {
        if self.failed() {
            return Slate::default();
        }
        let t = std::time::Instant::now();
        let slate = self.call(user, k, exclude, shown, history);
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        slate
    }

    fn call(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        shown: Vec<u32>,
        history: Vec<u32>,
    ) -> Slate {
        Python::attach(|py| {
            let uid = self.user_id(user);
            let call = format!("rec_model.recommend(user={uid}, k={k})");
            let res = self
                .obj
                .bind(py)
                .call_method1("recommend", (uid, k, shown, history));
            let got = match res {
                Ok(v) => v,
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
                    // Ctrl-C while Python ran: the round is rolled back and the interrupt raised.
                    if let Ok(mut slot) = self.error.lock() {
                        slot.get_or_insert(e);
                    }
                    return Slate::default();
                }
                Err(e) => {
                    let kind = e
                        .get_type(py)
                        .name()
                        .map_or_else(|_| "Exception".into(), |n| n.to_string());
                    let text = e.value(py).to_string();
                    let msg = format!("{call} raised {kind}: {text}");
                    self.fail(
                        py,
                        "recommend",
                        u32::try_from(uid).ok(),
                        Some(k),
                        msg,
                        Some(e),
                    );
                    return Slate::default();
                }
            };
            self.slate_from(py, &got, &call, uid, k, exclude)
        })
    }

    /// The page `got` (a Python model's answer to `call`) names: catalogue item ids, those
    /// shown before skipped, at most `k`; anything else fails the round (empty slate).
    fn slate_from(
        &self,
        py: Python<'_>,
        got: &Bound<'_, PyAny>,
        call: &str,
        uid: i64,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
    ) -> Slate {
        let iter = match got.try_iter() {
            Ok(i) => i,
            Err(_) => {
                let t = got
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string());
                self.fail(
                    py,
                    "recommend",
                    u32::try_from(uid).ok(),
                    Some(k),
                    format!("{call} returned a {t}, not a list of item ids"),
                    None,
                );
                return Slate::default();
            }
        };
        let mut items = Vec::with_capacity(k);
        for x in iter {
            let id = match x.and_then(|x| x.extract::<i64>()) {
                Ok(id) => id,
                Err(e) => {
                    self.fail(
                        py,
                        "recommend",
                        u32::try_from(uid).ok(),
                        Some(k),
                        format!(
                            "{call} returned something that is not an item id (an int): {}",
                            e.value(py)
                        ),
                        None,
                    );
                    return Slate::default();
                }
            };
            let Some(ix) = u32::try_from(id)
                .ok()
                .and_then(|id| self.items.binary_search(&id).ok())
            else {
                self.fail(
                    py,
                    "recommend",
                    u32::try_from(uid).ok(),
                    Some(k),
                    format!("{call} returned item {id}, which is not in the catalogue"),
                    None,
                );
                return Slate::default();
            };
            let ix = ix as u32;
            // Items shown before are never shown again, whatever the model says.
            if exclude(ix) || items.contains(&ix) {
                continue;
            }
            items.push(ix);
            if items.len() == k {
                break;
            }
        }
        let scores = (0..items.len()).map(|r| -(r as f32)).collect();
        Slate { items, scores }
    }
}

impl Recommender for PyModel {
    fn name(&self) -> &'static str {
        "Python"
    }

    /// With `recommend_batch(users, k, excludes, histories) -> list of pages` on the object,
    /// one call for the whole batch (a round's first pages); otherwise one `recommend` each.
    fn recommend_batch_in(
        &self,
        users: &[u32],
        k: usize,
        log: &InteractionLog,
        rngs: &mut [ChaCha8Rng],
    ) -> Vec<Slate> {
        let n = users.len();
        if !self.has_batch || n < 2 {
            return users
                .iter()
                .zip(rngs.iter_mut())
                .map(|(&u, rng)| {
                    let exclude = |i: u32| log.is_exposed(u, i);
                    self.recommend_in(u, k, log, &exclude, rng)
                })
                .collect();
        }
        let empty = || (0..n).map(|_| Slate::default()).collect::<Vec<_>>();
        if self.failed() {
            return empty();
        }
        let t = std::time::Instant::now();
        let id = |i: u32| self.items.get(i as usize).copied().unwrap_or(i);
        let shown: Vec<Vec<u32>> = users
            .iter()
            .map(|&u| log.exposed(u).iter().map(|&i| id(i)).collect())
            .collect();
        // Every user's watches in one scan of the log.
        let at: std::collections::BTreeMap<u32, usize> =
            users.iter().enumerate().map(|(j, &u)| (u, j)).collect();
        let mut history: Vec<Vec<u32>> = vec![Vec::new(); n];
        for w in log.watches() {
            if let Some(&j) = at.get(&w.0) {
                history[j].push(id(w.1));
            }
        }
        let uids: Vec<i64> = users.iter().map(|&u| self.user_id(u)).collect();
        let out = Python::attach(|py| {
            let call = format!("rec_model.recommend_batch(users=<{n} users>, k={k})");
            let res = self
                .obj
                .bind(py)
                .call_method1("recommend_batch", (uids.clone(), k, shown, history));
            let got = match res {
                Ok(v) => v,
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
                    if let Ok(mut slot) = self.error.lock() {
                        slot.get_or_insert(e);
                    }
                    return empty();
                }
                Err(e) => {
                    let kind = e
                        .get_type(py)
                        .name()
                        .map_or_else(|_| "Exception".into(), |n| n.to_string());
                    let msg = format!("{call} raised {kind}: {}", e.value(py));
                    self.fail(py, "recommend_batch", None, Some(k), msg, Some(e));
                    return empty();
                }
            };
            let pages: Vec<Bound<'_, PyAny>> = match got.try_iter() {
                Ok(it) => it.filter_map(Result::ok).collect(),
                Err(_) => Vec::new(),
            };
            if pages.len() != n {
                let msg = format!(
                    "{call} returned {} pages for {n} users: expected one list of item ids per user, in order",
                    pages.len()
                );
                self.fail(py, "recommend_batch", None, Some(k), msg, None);
                return empty();
            }
            pages
                .iter()
                .zip(users.iter().zip(&uids))
                .map(|(page, (&u, &uid))| {
                    let exclude = |i: u32| log.is_exposed(u, i);
                    let one = format!("{call}, the page of user {uid},");
                    self.slate_from(py, page, &one, uid, k, &exclude)
                })
                .collect()
        });
        self.stats.calls.fetch_add(n as u64, Ordering::Relaxed);
        self.stats
            .nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    fn bind_ids(&mut self, items: &[u32], users: &[u32]) {
        self.items = items.to_vec();
        self.users = users.to_vec();
    }

    fn fit(&mut self, log: &InteractionLog) {
        if !self.has_fit || self.failed() {
            return;
        }
        Python::attach(|py| {
            let n = log.watches().len();
            let rows = (|| -> PyResult<Bound<'_, PyList>> {
                let list = PyList::empty(py);
                for &(u, i, r, round) in log.watches() {
                    let d = PyDict::new(py);
                    d.set_item("user_id", self.user_id(u))?;
                    d.set_item("item_id", self.items.get(i as usize).copied().unwrap_or(i))?;
                    d.set_item("rating", r)?;
                    d.set_item("round", round)?;
                    list.append(d)?;
                }
                Ok(list)
            })();
            let res = rows.and_then(|rows| self.obj.bind(py).call_method1("fit", (rows,)));
            if let Err(e) = res {
                let kind = e
                    .get_type(py)
                    .name()
                    .map_or_else(|_| "Exception".into(), |n| n.to_string());
                let msg = format!(
                    "rec_model.fit(<{n} interactions>) raised {kind}: {}",
                    e.value(py)
                );
                self.fail(py, "fit", None, None, msg, Some(e));
            }
        });
    }

    fn recommend(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        _rng: &mut ChaCha8Rng,
    ) -> Slate {
        // Without the log (not how pages are built): the excluded items are found by asking.
        let shown: Vec<u32> = (0..self.items.len() as u32)
            .filter(|&i| exclude(i))
            .map(|i| self.items[i as usize])
            .collect();
        self.ask(user, k, exclude, shown, Vec::new())
    }

    fn recommend_in(
        &self,
        user: u32,
        k: usize,
        log: &InteractionLog,
        exclude: &dyn Fn(u32) -> bool,
        _rng: &mut ChaCha8Rng,
    ) -> Slate {
        let id = |i: u32| self.items.get(i as usize).copied().unwrap_or(i);
        let shown = log.exposed(user).iter().map(|&i| id(i)).collect();
        let history = log
            .watches()
            .iter()
            .filter(|w| w.0 == user)
            .map(|w| id(w.1))
            .collect();
        self.ask(user, k, exclude, shown, history)
    }
}

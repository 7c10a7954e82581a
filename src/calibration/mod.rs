//! The calibrated offline user model (`offline.model: calibrated`): item preference, choice and
//! rating fitted on real MovieLens-1M users (Agent4Rec's data) by `recagent calibrate`
//! ([`fit`]), saved in a versioned, checksummed file and loaded by a run or by `recagent
//! fidelity`. The heuristic model of [`crate::decision::offline`] stays the default
//! (`offline.model: heuristic`): the fitted file is derived from MovieLens data, which its
//! licence forbids redistributing, so it is made on each machine from `../shared`.
//!
//! # The model, for an agent `u` and item `i`
//! - **Preference** (FISM, Kabbur et al., "FISM: factored item similarity models for top-N
//!   recommender systems", KDD 2013, eq. 3, trained with the BPR loss of Rendle et al., UAI
//!   2009): `s(u,i) = b_i + q_i · x_u`, `x_u = |H_u|^(−α) Σ_{j ∈ H_u} y_j`, where `H_u` is the
//!   agent's watched history (items of this catalogue). Folding the user in from the history,
//!   rather than keeping a fitted vector per user, makes the model depend on nothing but what
//!   the agent holds: a simulated agent's taste moves as it watches, and no per-user parameter
//!   can carry a held-out item. `α` = [`ALPHA`].
//! - **Cold start** (an agent with no history in the catalogue, such as RecAgent's users):
//!   `x_u` is the mean of the genre centroids `c_g` of the agent's liked genres, `c_g` being
//!   the mean `x_u` of the fitted users whose 3 most frequent genres include `g`; with no liked
//!   genre, `x_u = 0` and only the popularity term `b_i` remains.
//! - **Standardised preference** `z(u,i) = (s(u,i) − μ_u) / σ_u`, with `μ_u` and `σ_u` the exact
//!   mean and standard deviation of `s(u,·)` over the whole catalogue, from the stored item
//!   moments: `μ_u = b̄ + q̄·x_u`, `σ_u² = Var(b) + 2 x_u·Cov(q,b) + x_uᵀ Cov(q) x_u`
//!   (O(d²) per agent instead of O(items·d)), so one threshold serves agents whose scores have
//!   different scales.
//! - **Choice** on a page: the agent considers its best item `i*` (highest `z`, not yet
//!   watched, plus `heard_weight·h(u,i)` of the heuristic model for social influence) and
//!   watches it with probability `σ((z(u,i*) − θ_u) / τ)`, `θ_u = θ + δ·[Watcher]`; otherwise it
//!   turns the page (the session ends at the list's end or at `max_session_steps`).
//! - **Rating**: `stars = clamp(round(m_u + c·(w_b·b^r_i + w_z·(z(u,i) − z̄_u) + w_0) + κ·sd_u·ε), 1, 5)`,
//!   `z̄_u` the agent's mean `z` over its watched history (how much more it likes this item than
//!   what it usually watches; relative, so an agent that only watches items it scores high does
//!   not drift to 5 stars as its own ratings feed `m_u`),
//!   `m_u` the agent's damped mean rating (`(Σ r + λ_u·μ_u⁰) / (n + λ_u)`, the prior
//!   `μ_u⁰ = μ + σ_b·ζ_u` a fixed per-agent draw around the mean rating `μ`, `σ_b` the spread of
//!   the real users' means), `b^r_i` the damped item
//!   bias of the training ratings (Koren, TKDD 2010, eq. 2), `sd_u` the agent's damped rating
//!   spread, `ε ~ N(0,1)`; `w` by least squares, then the spread `c` and the noise `κ` chosen so
//!   the histogram of stars matches the real one (Jensen–Shannon divergence ≤ 0.02) at the
//!   least RMSE.
//! - **Top level**: the heuristic model's utilities, with the Watcher term replaced by
//!   `ln(a_t)`, `a_t` the mean training interactions of the agent's activity tier over the mean
//!   of all users (tier 3 for Watchers, else tier 2).

pub mod fit;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::catalog::Catalog;
use crate::decision::AgentView;
use crate::domain::FeatureSet;

/// First line's `format` of a calibration file.
pub const FORMAT: &str = "recagent-calibration";
/// Version of the file layout; a file of another version is refused with a clear error.
pub const VERSION: u32 = 1;
/// History exponent `α` of the fold-in `x_u = |H_u|^(−α) Σ y_j` (FISM's best value on
/// MovieLens, Kabbur et al. 2013, §6.3).
pub const ALPHA: f64 = 0.5;

/// Which catalogue a model was fitted for: its size and a SHA-256 over every item's id, title
/// and genres in catalogue order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueStamp {
    /// Items.
    pub items: usize,
    /// Hex SHA-256 of `id \t title \t genre|genre \n` per item.
    pub fingerprint: String,
    /// Where the catalogue came from (a file path as given), for messages.
    pub source: String,
}

impl CatalogueStamp {
    /// The stamp of `catalog`, read from `source`.
    pub fn of(catalog: &Catalog, source: &str) -> Self {
        let names = catalog.genre_names();
        let mut h = sha2::Sha256::new();
        for it in catalog.items() {
            let genres: Vec<&str> = it.genres.iter().map(|g| names[g].as_str()).collect();
            h.update(format!("{}\t{}\t{}\n", it.id.0, it.title, genres.join("|")).as_bytes());
        }
        Self {
            items: catalog.len(),
            fingerprint: hex(&h.finalize()),
            source: source.to_string(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Page-choice parameters (module docs, "Choice").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChoiceParams {
    /// `θ`, in standard deviations of the agent's preference over the catalogue.
    pub threshold: f64,
    /// `δ`: threshold shift of Watchers (activity tier 3).
    pub watcher_shift: f64,
    /// `τ` > 0 of the watch probability.
    pub temperature: f64,
}

/// Rating parameters (module docs, "Rating").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatingParams {
    /// `μ`: mean training rating, 1..=5.
    pub global_mean: f64,
    /// Spread of all training ratings (standard deviation).
    pub global_sd: f64,
    /// `λ_u`: pseudo-ratings at the agent's prior mean `μ_u⁰` in its mean and spread.
    pub user_damping: f64,
    /// `σ_b`: spread of the users' mean ratings; an agent's prior mean is
    /// `μ_u⁰ = μ + σ_b·ζ_u`, `ζ_u` a fixed per-(seed, agent) draw with mean 0 and variance 1, so
    /// agents without ratings (cold start) do not all rate alike.
    pub user_spread: f64,
    /// `w_b`: weight of the item bias.
    pub w_bias: f64,
    /// `w_z`: weight of the relative preference `z(u,i) − z̄_u`.
    pub w_pref: f64,
    /// `z̄` of an agent with no history: the mean `z` its cold-start vector gives the items the
    /// fitted users watched (their train items), averaged over users.
    pub z_ref: f64,
    /// `w_0`.
    pub intercept: f64,
    /// `c`: spread of the deviation from the agent's mean.
    pub spread: f64,
    /// `κ`: noise, in units of the agent's own spread.
    pub noise: f64,
    /// `b^r_i` per catalogue index (0 for items no training rating covers).
    pub item_bias: Vec<f32>,
}

/// Mean and covariance of the item parameters over the catalogue (module docs,
/// "Standardised preference").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// `q̄` (d).
    pub q_mean: Vec<f64>,
    /// `Cov(q)` (d × d, row-major).
    pub q_cov: Vec<f64>,
    /// `Cov(q, b)` (d).
    pub qb_cov: Vec<f64>,
    /// `b̄`.
    pub b_mean: f64,
    /// `Var(b)`.
    pub b_var: f64,
}

impl Moments {
    /// The moments of `target` (n × d) and `bias` (n).
    pub fn of(target: &[f32], bias: &[f32], d: usize) -> Self {
        let n = bias.len().max(1) as f64;
        let mut q_mean = vec![0.0; d];
        let mut b_mean = 0.0;
        for (row, &b) in target.chunks_exact(d).zip(bias) {
            for (m, &v) in q_mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
            b_mean += f64::from(b);
        }
        q_mean.iter_mut().for_each(|m| *m /= n);
        b_mean /= n;
        let mut q_cov = vec![0.0; d * d];
        let mut qb_cov = vec![0.0; d];
        let mut b_var = 0.0;
        for (row, &b) in target.chunks_exact(d).zip(bias) {
            let db = f64::from(b) - b_mean;
            b_var += db * db;
            for a in 0..d {
                let da = f64::from(row[a]) - q_mean[a];
                qb_cov[a] += da * db;
                for c in 0..d {
                    q_cov[a * d + c] += da * (f64::from(row[c]) - q_mean[c]);
                }
            }
        }
        q_cov.iter_mut().for_each(|v| *v /= n);
        qb_cov.iter_mut().for_each(|v| *v /= n);
        Self {
            q_mean,
            q_cov,
            qb_cov,
            b_mean,
            b_var: b_var / n,
        }
    }
}

/// How the model was fitted: the data, the seed of the held-out ratings, what was tried on the
/// valid split and what won.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitRecord {
    /// The data folder as given.
    pub data: String,
    /// Seed of the fit and of the held-out ratings it never saw (`recagent fidelity --seed`
    /// must be the same to score against them).
    pub seed: u64,
    /// Users and training interactions fitted.
    pub users: usize,
    /// Training interactions.
    pub interactions: usize,
    /// Training ratings.
    pub ratings: usize,
    /// Embedding size of the chosen preference model.
    pub dim: usize,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// L2 weight.
    pub reg: f64,
    /// Every setting tried, one line each, with its validation score.
    pub tried: Vec<String>,
    /// Validation scores of the chosen model: accuracy at 1:1, F1 at 1:9, rating RMSE and JS.
    pub valid: [f64; 4],
    /// Catalogue items of the fitted catalogue mapped onto this one (`--items`), and not.
    pub mapped_items: Option<(usize, usize)>,
}

/// The fitted model (module docs). Vectors are per catalogue index (`Catalog::get(idx)`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibratedModel {
    /// The catalogue it is for.
    pub catalogue: CatalogueStamp,
    /// How it was fitted.
    pub fit: FitRecord,
    /// Embedding size `d`.
    pub dim: usize,
    /// `y_j`: history embeddings (items × d, row-major).
    pub history: Vec<f32>,
    /// `q_i`: target embeddings (items × d).
    pub target: Vec<f32>,
    /// `b_i`: item bias (popularity), per item.
    pub bias: Vec<f32>,
    /// Genre names of the centroids, in order.
    pub genres: Vec<String>,
    /// `c_g`: cold-start centroid per genre (genres × d).
    pub centroids: Vec<f32>,
    /// Item moments.
    pub moments: Moments,
    /// Page choice.
    pub choice: ChoiceParams,
    /// Ratings.
    pub rating: RatingParams,
    /// `a_t` for activity tiers 1..=3.
    pub activity: [f64; 3],
}

impl std::fmt::Debug for CalibratedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalibratedModel")
            .field("catalogue", &self.catalogue)
            .field("dim", &self.dim)
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

/// Reading, checking or writing a calibration file failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a calibration file of this version, or it is damaged.
    #[error("{path}: {why}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The file was fitted for another catalogue.
    #[error("{path} was fitted for the catalogue {fitted} ({fitted_items} items), not for this run's {here} ({here_items} items): {hint}")]
    Catalogue {
        /// The file.
        path: String,
        /// The catalogue it was fitted for.
        fitted: String,
        /// Its items.
        fitted_items: usize,
        /// This run's catalogue.
        here: String,
        /// Its items.
        here_items: usize,
        /// How to get a file for it.
        hint: String,
    },
}

/// The first line of the file.
#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    catalogue: CatalogueStamp,
    /// Hex SHA-256 of the body (the bytes after the first line).
    body_sha256: String,
}

impl CalibratedModel {
    /// Writes the model to `path`: a JSON header line (format, version, catalogue stamp, the
    /// body's SHA-256) then the body, MessagePack. Written to a temporary file and renamed, so
    /// a failed write never leaves half a file.
    ///
    /// # Errors
    /// [`CalibrationError::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), CalibrationError> {
        let io = |error| CalibrationError::Io {
            path: path.display().to_string(),
            error,
        };
        let body = rmp_serde::to_vec_named(self).map_err(|e| CalibrationError::Format {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            catalogue: self.catalogue.clone(),
            body_sha256: hex(&sha2::Sha256::digest(&body)),
        };
        let mut bytes = serde_json::to_vec(&header).expect("invariant: the header serialises");
        bytes.push(b'\n');
        bytes.extend_from_slice(&body);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a model from `path`.
    ///
    /// # Errors
    /// [`CalibrationError::Io`] for an unreadable file; [`CalibrationError::Format`] for a file
    /// that is not a calibration file, of another version, with a checksum that does not match
    /// (damaged or edited) or a body of the wrong shape.
    pub fn load(path: &Path) -> Result<Self, CalibrationError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| CalibrationError::Io {
            path: p.clone(),
            error,
        })?;
        let bad = |why: String| CalibrationError::Format {
            path: p.clone(),
            why,
        };
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("not a calibration file (no header line)".into()))?;
        let header: Header = serde_json::from_slice(&bytes[..nl]).map_err(|_| {
            bad("not a calibration file (made by `recagent calibrate`): its first line is not a calibration header".into())
        })?;
        if header.format != FORMAT {
            return Err(bad(format!(
                "not a calibration file: format {:?}",
                header.format
            )));
        }
        if header.version != VERSION {
            return Err(bad(format!(
                "calibration file version {} (this recagent reads version {VERSION}): fit it again with `recagent calibrate`",
                header.version
            )));
        }
        let body = &bytes[nl + 1..];
        if hex(&sha2::Sha256::digest(body)) != header.body_sha256 {
            return Err(bad(
                "the checksum does not match: the file is damaged or was edited; fit it again with `recagent calibrate`".into(),
            ));
        }
        let m: Self = rmp_serde::from_slice(body).map_err(|e| {
            bad(format!(
                "its body does not read as a calibrated model ({e}): fit it again with `recagent calibrate`"
            ))
        })?;
        if m.catalogue != header.catalogue {
            return Err(bad(
                "its header and body name different catalogues: the file was edited; fit it again with `recagent calibrate`".into(),
            ));
        }
        let n = m.catalogue.items;
        let d = m.dim;
        if d == 0
            || m.history.len() != n * d
            || m.target.len() != n * d
            || m.bias.len() != n
            || m.rating.item_bias.len() != n
            || m.centroids.len() != m.genres.len() * d
            || m.moments.q_mean.len() != d
            || m.moments.q_cov.len() != d * d
        {
            return Err(bad(
                "the body's sizes do not agree with its catalogue".into()
            ));
        }
        Ok(m)
    }

    /// Checks that the model was fitted for `catalog`.
    ///
    /// # Errors
    /// [`CalibrationError::Catalogue`] naming both catalogues.
    pub fn check_catalogue(
        &self,
        catalog: &Catalog,
        source: &str,
        path: &Path,
    ) -> Result<(), CalibrationError> {
        let here = CatalogueStamp::of(catalog, source);
        if here.fingerprint == self.catalogue.fingerprint {
            return Ok(());
        }
        Err(CalibrationError::Catalogue {
            path: path.display().to_string(),
            fitted: self.catalogue.source.clone(),
            fitted_items: self.catalogue.items,
            here: source.to_string(),
            here_items: here.items,
            hint: if source.ends_with("movie_detail.csv") {
                "fit one for it with `recagent calibrate` (without --items: Agent4Rec's catalogue is the default)".into()
            } else {
                format!("fit one for it with `recagent calibrate --items {source}`")
            },
        })
    }

    /// `x_u` of `agent` (module docs, "Preference" and "Cold start"), d values.
    pub fn user_vector(&self, agent: &AgentView<'_>, catalog: &Catalog) -> Vec<f64> {
        let d = self.dim;
        let mut x = vec![0.0; d];
        let mut n = 0usize;
        for w in &agent.histories.watched {
            if let Some(ix) = catalog.index_of(w.0) {
                let row = &self.history[ix as usize * d..(ix as usize + 1) * d];
                x.iter_mut().zip(row).for_each(|(a, &v)| *a += f64::from(v));
                n += 1;
            }
        }
        if n > 0 {
            let s = (n as f64).powf(-ALPHA);
            x.iter_mut().for_each(|a| *a *= s);
            return x;
        }
        let names = catalog.genre_names();
        let mut k = 0usize;
        for g in agent.taste.liked.iter() {
            let Some(c) = names
                .get(g)
                .and_then(|name| self.genres.iter().position(|m| m == name))
            else {
                continue;
            };
            let row = &self.centroids[c * d..(c + 1) * d];
            x.iter_mut().zip(row).for_each(|(a, &v)| *a += f64::from(v));
            k += 1;
        }
        if k > 0 {
            x.iter_mut().for_each(|a| *a /= k as f64);
        }
        x
    }

    /// `(μ_u, σ_u)`: mean and standard deviation of `s(u,·)` over the catalogue for `x`.
    pub fn user_moments(&self, x: &[f64]) -> (f64, f64) {
        let (m, d) = (&self.moments, self.dim);
        let mu = m.b_mean + dot(&m.q_mean, x);
        let mut var = m.b_var + 2.0 * dot(&m.qb_cov, x);
        for a in 0..d {
            var += x[a] * dot(&m.q_cov[a * d..(a + 1) * d], x);
        }
        (mu, var.max(1e-12).sqrt())
    }

    /// `s(u,i)` for catalogue index `ix`.
    pub fn preference(&self, x: &[f64], ix: u32) -> f64 {
        let d = self.dim;
        let row = &self.target[ix as usize * d..(ix as usize + 1) * d];
        f64::from(self.bias[ix as usize])
            + row
                .iter()
                .zip(x)
                .map(|(&q, &v)| f64::from(q) * v)
                .sum::<f64>()
    }

    /// The agent's damped mean rating and spread over its rated history (module docs,
    /// "Rating").
    pub fn user_rating(&self, agent: &AgentView<'_>, seed: u64) -> (f64, f64) {
        let r = &self.rating;
        let rated: Vec<f64> = agent
            .histories
            .watched
            .iter()
            .filter(|w| w.1 > 0)
            .map(|w| f64::from(w.1))
            .collect();
        damped_mean_sd(
            &rated,
            self.prior_mean(seed, agent.id.0),
            r.global_sd,
            r.user_damping,
        )
    }

    /// `μ_u⁰ = μ + σ_b·ζ_u` ("Rating").
    pub fn prior_mean(&self, seed: u64, user: u32) -> f64 {
        let zeta =
            (crate::rng::unit_hash(seed, crate::rng::Stream::Taste, &[u64::from(user), 1 << 40])
                - 0.5)
                * 2.0
                * 3f64.sqrt();
        self.rating.global_mean + self.rating.user_spread * zeta
    }

    /// `z(u,i) − z̄_u` for catalogue index `ix` ("Rating"): `z̄_u` over the agent's watched
    /// history, [`RatingParams::z_ref`] when it has none.
    pub fn relative_preference(&self, agent: &AgentView<'_>, catalog: &Catalog, ix: u32) -> f64 {
        let x = self.user_vector(agent, catalog);
        let (mu, sigma) = self.user_moments(&x);
        let z = |i: u32| (self.preference(&x, i) - mu) / sigma;
        let seen: Vec<f64> = agent
            .histories
            .watched
            .iter()
            .filter_map(|w| catalog.index_of(w.0))
            .map(z)
            .collect();
        let zbar = if seen.is_empty() {
            self.rating.z_ref
        } else {
            seen.iter().sum::<f64>() / seen.len() as f64
        };
        z(ix) - zbar
    }

    /// `θ_u`.
    pub fn threshold(&self, agent: &AgentView<'_>) -> f64 {
        let c = &self.choice;
        c.threshold
            + if agent.profile.features.has(FeatureSet::WATCHER) {
                c.watcher_shift
            } else {
                0.0
            }
    }
}

/// `params` with the calibrated model of `params.calibration` loaded (`resolve` turns the
/// configured path into a file path) and checked against `catalog` (read from `source`);
/// `params` unchanged for the heuristic model.
///
/// # Errors
/// [`CalibrationError`] for a missing, damaged or foreign file.
pub fn load_for(
    params: &crate::decision::offline::OfflineParams,
    resolve: impl Fn(&str) -> std::path::PathBuf,
    catalog: &Catalog,
    source: &str,
) -> Result<crate::decision::offline::OfflineParams, CalibrationError> {
    let mut p = params.clone();
    if p.model != crate::decision::offline::OfflineModel::Calibrated {
        return Ok(p);
    }
    let Some(file) = &p.calibration else {
        return Err(CalibrationError::Format {
            path: "offline.calibration".into(),
            why: "`offline.model: calibrated` needs `offline.calibration: <file>`, made by `recagent calibrate`".into(),
        });
    };
    let path = resolve(file);
    let model = CalibratedModel::load(&path)?;
    model.check_catalogue(catalog, source, &path)?;
    p.loaded = Some(std::sync::Arc::new(model));
    Ok(p)
}

/// `(Σr + λμ)/(n + λ)` and the spread `sqrt((Σ(r − m)² + λ·sd₀²)/(n + λ))`.
pub fn damped_mean_sd(r: &[f64], mu: f64, sd0: f64, lambda: f64) -> (f64, f64) {
    let n = r.len() as f64;
    let m = (r.iter().sum::<f64>() + lambda * mu) / (n + lambda);
    let ss: f64 = r.iter().map(|x| (x - m).powi(2)).sum();
    (m, ((ss + lambda * sd0 * sd0) / (n + lambda)).sqrt())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_give_the_catalogue_mean_and_spread_of_a_user() {
        // Three items, d = 2: s(i) = b_i + q_i·x with x = (1, -2).
        let target = [1.0f32, 0.0, 0.0, 1.0, 2.0, 2.0];
        let bias = [0.5f32, -0.5, 1.0];
        let x = [1.0, -2.0];
        // s = 0.5 + 1 = 1.5; −0.5 − 2 = −2.5; 1 + 2 − 4 = −1.
        let s = [1.5, -2.5, -1.0];
        let mean = s.iter().sum::<f64>() / 3.0;
        let sd = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        let m = Moments::of(&target, &bias, 2);
        let model = tiny(m, target.to_vec(), bias.to_vec());
        let (mu, sigma) = model.user_moments(&x);
        assert!((mu - mean).abs() < 1e-9, "{mu} {mean}");
        assert!((sigma - sd).abs() < 1e-9, "{sigma} {sd}");
        assert!((model.preference(&x, 2) - (-1.0)).abs() < 1e-9);
    }

    #[test]
    fn damped_mean_and_spread_by_hand() {
        // Ratings 5 and 3 with λ = 2 pseudo-ratings at μ = 4, sd₀ = 1:
        // m = (8 + 8) / 4 = 4; spread = sqrt((1 + 1 + 2) / 4) = 1.
        let (m, sd) = damped_mean_sd(&[5.0, 3.0], 4.0, 1.0, 2.0);
        assert!(
            (m - 4.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12,
            "{m} {sd}"
        );
        // No rating: the prior.
        assert_eq!(damped_mean_sd(&[], 3.5, 0.9, 3.0), (3.5, 0.9));
    }

    /// The page decision by hand: one watched item (y_0 = 1, so x = 1), targets q = (0, 2, −2),
    /// no bias: s = (0, 2, −2), μ = 0, σ = √(8/3), so z(item 1) = 2/√(8/3) ≈ 1.2247.
    #[test]
    fn the_page_decision_watches_the_best_item_above_the_threshold() {
        use crate::components::{Histories, Memory, Relationships, Taste};
        use crate::decision::offline::{Offline, OfflineModel, OfflineParams};
        use crate::decision::page::{Page, PageAction, PageAsk, WATCH};
        use crate::decision::{Context, Decision, Request, RequestKey};
        use crate::ids::{ItemId, UserId};
        let cat = crate::testing::drama_catalog(3);
        let target = vec![0.0f32, 2.0, -2.0];
        let bias = vec![0.0f32; 3];
        let mut model = tiny(Moments::of(&target, &bias, 1), target, bias);
        model.history = vec![1.0, 0.0, 0.0];
        let profile = crate::testing::plain_profile();
        let (taste, contacts, memory) = (
            Taste::default(),
            Relationships::default(),
            Memory::default(),
        );
        let histories = Histories {
            watched: vec![(ItemId(0), 4)],
            heard: vec![],
        };
        let agent = AgentView {
            id: UserId(1),
            profile: &profile,
            taste: &taste,
            histories: &histories,
            contacts: &contacts,
            memory: &memory,
        };
        let clock = crate::testing::hourly_clock();
        let ctx = Context {
            catalog: &cat,
            clock: &clock,
            seed: 5,
        };
        let share = |threshold: f64, temperature: f64, page: &[ItemId], n: u16| {
            let mut m = model.clone();
            m.choice = ChoiceParams {
                threshold,
                watcher_shift: 0.0,
                temperature,
            };
            let params = OfflineParams {
                model: OfflineModel::Calibrated,
                calibration: Some("test".into()),
                loaded: Some(std::sync::Arc::new(m)),
                ..OfflineParams::default()
            };
            let mut watched = 0u32;
            for step in 0..n {
                let req: Request<'_, Page> = Request {
                    key: RequestKey {
                        round: 0,
                        phase: WATCH,
                        user: UserId(1),
                        step,
                    },
                    agent,
                    ask: PageAsk {
                        items: std::borrow::Cow::Borrowed(page),
                        page: 0,
                        steps: 0,
                        search: None,
                        can_search: false,
                    },
                };
                match Page::offline(&req, &mut Offline::for_key(&ctx, &params, &req.key)) {
                    PageAction::Watch(s) => {
                        assert_eq!(
                            s,
                            vec![page.iter().position(|&i| i == ItemId(1)).unwrap() as u32]
                        );
                        watched += 1;
                    }
                    PageAction::Next => {}
                    other => panic!("{other:?}"),
                }
            }
            f64::from(watched) / f64::from(n)
        };
        let z: f64 = 2.0 / (8.0f64 / 3.0).sqrt();
        assert!((z - 1.2247).abs() < 1e-4);
        let page = [ItemId(2), ItemId(1)];
        // Far below and far above the threshold at a tiny temperature.
        assert_eq!(share(1.0, 0.001, &page, 200), 1.0);
        assert_eq!(share(1.5, 0.001, &page, 200), 0.0);
        // The watched item 0 is never considered: its page's best is item 2 (z ≈ −1.22).
        assert_eq!(share(-5.0, 0.001, &[ItemId(0)], 50), 0.0);
        // τ = 0.5, θ = 1: P = σ((z − 1) / 0.5).
        let want = sigmoid((z - 1.0) / 0.5);
        let n = 20_000u16;
        let got = share(1.0, 0.5, &page, n);
        let sd = (want * (1.0 - want) / f64::from(n)).sqrt();
        assert!((got - want).abs() < 4.0 * sd, "{got} vs {want}");
    }

    fn tiny(moments: Moments, target: Vec<f32>, bias: Vec<f32>) -> CalibratedModel {
        let n = bias.len();
        let d = moments.q_mean.len();
        CalibratedModel {
            catalogue: CatalogueStamp {
                items: n,
                fingerprint: String::new(),
                source: "test".into(),
            },
            fit: FitRecord {
                data: String::new(),
                seed: 0,
                users: 0,
                interactions: 0,
                ratings: 0,
                dim: d,
                epochs: 0,
                lr: 0.0,
                reg: 0.0,
                tried: Vec::new(),
                valid: [0.0; 4],
                mapped_items: None,
            },
            dim: d,
            history: target.clone(),
            target,
            bias,
            genres: Vec::new(),
            centroids: Vec::new(),
            moments,
            choice: ChoiceParams {
                threshold: 1.0,
                watcher_shift: 0.0,
                temperature: 0.1,
            },
            rating: RatingParams {
                global_mean: 3.5,
                global_sd: 1.0,
                user_damping: 3.0,
                user_spread: 0.0,
                w_bias: 0.0,
                w_pref: 0.0,
                z_ref: 0.0,
                intercept: 0.0,
                spread: 1.0,
                noise: 0.0,
                item_bias: vec![0.0; n],
            },
            activity: [1.0; 3],
        }
    }
}

//! Mult-VAE: a variational autoencoder of each user's interaction vector with a multinomial
//! likelihood (Liang, Krishnan, Hoffman & Jebara 2018, "Variational Autoencoders for
//! Collaborative Filtering", WWW; eq. 3–6, §2.2.2 for the annealing), optimised with Adam.
//!
//! # Network (the paper's architecture, `[I → 600 → 200 → 600 → I]`, tanh)
//! For a user's binary row `x ∈ {0,1}^I`: `x̂ = dropout(x / ‖x‖₂)` (input dropout, rate
//! `dropout`, kept entries scaled by `1 / (1 − dropout)`; none when scoring),
//! `h = tanh(x̂ W₁ + b₁)` (`H`), `[μ, log σ²] = h W₂ + b₂` (`2L`),
//! `z = μ + ε ⊙ exp(½ log σ²)` with `ε ~ N(0, I)` (`z = μ` when scoring),
//! `g = tanh(z W₃ + b₃)` (`H`), logits `π = g W₄ + b₄` (`I`); items are ranked by `π`.
//!
//! # Loss (per batch, the mean over its users, eq. 6 with the KL weighted by β)
//! `−Σᵢ xᵢ log softmax(π)ᵢ + β · ½ Σₗ (−log σ²ₗ + σ²ₗ + μₗ² − 1)`.
//! β grows linearly from 0 to `beta_cap` over the first `anneal_epochs` epochs (counted over all
//! fits) and then stays there: the paper's "partially regularized" annealing to β = 0.2.
//!
//! Weights start Xavier-uniform and biases N(0, 0.001²), as in the authors' code; no weight
//! decay (their Mult-VAE uses `lam = 0`).
//!
//! # Determinism
//! Initialisation, the user order, the dropout masks and `ε` come from ChaCha8 streams derived
//! from `seed`, the number of completed fits and the epoch. The dense products use ndarray's
//! `dot` (matrixmultiply, one thread), whose kernel depends on the CPU's features: results are
//! identical run to run on one machine, not necessarily bit for bit across machines.

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::train::{normal_init, top_k, Adam, Positives};
use super::{InteractionLog, Recommender, Slate};
use crate::rng::{stream_rng, Stream};

/// Model tag in the training stream ids.
const MULTVAE_TAG: u64 = 3;

/// Above this many `users × items` scores the model scores users on demand instead of keeping
/// every score after a fit (2²⁵ floats = 128 MiB).
const SCORE_CACHE_MAX: usize = 1 << 25;

/// Hyper-parameters of [`MultVae`]. Defaults: the paper's (hidden 600, latent 200, dropout 0.5,
/// β → 0.2, Adam lr 1e-3), batch 100 users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultVaeParams {
    /// Hidden width `H` of the encoder and the decoder; ≥ 1. The paper uses 600.
    pub hidden: usize,
    /// Latent dimension `L`; ≥ 1. The paper uses 200.
    pub latent: usize,
    /// Adam learning rate; > 0. The paper uses 1e-3.
    pub lr: f32,
    /// Passes over the users per `fit`; 0 = no training.
    pub epochs: u32,
    /// Users per Adam step; ≥ 1. The paper uses 500 on ML-20M (136k users); smaller batches
    /// give a 1,000-user data set more steps per epoch.
    pub batch: usize,
    /// Input dropout rate in [0, 1). The paper uses 0.5.
    pub dropout: f32,
    /// Final KL weight β, in [0, 1]. The paper's best is 0.2.
    pub beta_cap: f32,
    /// Epochs (over all fits) over which β rises linearly from 0 to `beta_cap`; 0 = `beta_cap`
    /// from the start. Raising it regularises less during early training.
    pub anneal_epochs: u32,
    /// Root seed.
    pub seed: u64,
}

impl super::ConfiguredParams for MultVaeParams {
    fn keep_configured(&self, restored: &mut Self) -> Result<(), String> {
        if (self.hidden, self.latent) != (restored.hidden, restored.latent) {
            return Err(format!(
                "MultVAE's hidden / latent sizes are {} / {} in the checkpoint and {} / {} now",
                restored.hidden, restored.latent, self.hidden, self.latent
            ));
        }
        *restored = self.clone();
        Ok(())
    }
}

impl Default for MultVaeParams {
    fn default() -> Self {
        Self {
            hidden: 600,
            latent: 200,
            lr: 1e-3,
            epochs: 10,
            batch: 100,
            dropout: 0.5,
            beta_cap: 0.2,
            anneal_epochs: 10,
            seed: 2023,
        }
    }
}

/// The network's parameters (shapes in the module docs; biases are `1 × n`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaeNet {
    /// Encoder input layer, `I × H`.
    pub w1: Array2<f32>,
    /// Its bias, `1 × H`.
    pub b1: Array2<f32>,
    /// Encoder output layer, `H × 2L` (columns `0..L` give μ, `L..2L` log σ²).
    pub w2: Array2<f32>,
    /// Its bias, `1 × 2L`.
    pub b2: Array2<f32>,
    /// Decoder input layer, `L × H`.
    pub w3: Array2<f32>,
    /// Its bias, `1 × H`.
    pub b3: Array2<f32>,
    /// Decoder output layer, `H × I`.
    pub w4: Array2<f32>,
    /// Its bias, `1 × I`.
    pub b4: Array2<f32>,
}

impl VaeNet {
    /// All-zero parameters for `items` items, hidden width `hidden` and latent size `latent`.
    pub fn zeros(items: usize, hidden: usize, latent: usize) -> Self {
        Self {
            w1: Array2::zeros((items, hidden)),
            b1: Array2::zeros((1, hidden)),
            w2: Array2::zeros((hidden, 2 * latent)),
            b2: Array2::zeros((1, 2 * latent)),
            w3: Array2::zeros((latent, hidden)),
            b3: Array2::zeros((1, hidden)),
            w4: Array2::zeros((hidden, items)),
            b4: Array2::zeros((1, items)),
        }
    }

    /// Xavier-uniform weights (`±√(6 / (fan_in + fan_out))`, Glorot & Bengio 2010) and
    /// N(0, 0.001²) biases, drawn in field order from `rng`.
    pub fn init(items: usize, hidden: usize, latent: usize, rng: &mut ChaCha8Rng) -> Self {
        let xavier = |r: usize, c: usize, rng: &mut ChaCha8Rng| {
            let a = (6.0 / (r + c) as f32).sqrt();
            Array2::from_shape_fn((r, c), |_| rng.random_range(-a..a))
        };
        let w1 = xavier(items, hidden, rng);
        let b1 = normal_init(1, hidden, 0.001, rng);
        let w2 = xavier(hidden, 2 * latent, rng);
        let b2 = normal_init(1, 2 * latent, 0.001, rng);
        let w3 = xavier(latent, hidden, rng);
        let b3 = normal_init(1, hidden, 0.001, rng);
        let w4 = xavier(hidden, items, rng);
        let b4 = normal_init(1, items, 0.001, rng);
        Self {
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
            w4,
            b4,
        }
    }

    /// Number of items `I`.
    pub fn items(&self) -> usize {
        self.w1.nrows()
    }
    /// Hidden width `H`.
    pub fn hidden(&self) -> usize {
        self.w1.ncols()
    }
    /// Latent size `L`.
    pub fn latent(&self) -> usize {
        self.w3.nrows()
    }

    /// The eight parameters, in field order.
    pub fn params(&self) -> [&Array2<f32>; 8] {
        [
            &self.w1, &self.b1, &self.w2, &self.b2, &self.w3, &self.b3, &self.w4, &self.b4,
        ]
    }

    /// The eight parameters, mutable, in field order.
    pub fn params_mut(&mut self) -> [&mut Array2<f32>; 8] {
        [
            &mut self.w1,
            &mut self.b1,
            &mut self.w2,
            &mut self.b2,
            &mut self.w3,
            &mut self.b3,
            &mut self.w4,
            &mut self.b4,
        ]
    }

    /// `x̂ W₁ + b₁` for sparse rows `x̂` (per row: (item, value), items < `I`), `B × H`.
    fn encode_input(&self, rows: &[Vec<(u32, f32)>]) -> Array2<f32> {
        let mut a = Array2::zeros((rows.len(), self.hidden()));
        for (b, row) in rows.iter().enumerate() {
            let mut out = a.row_mut(b);
            out += &self.b1.row(0);
            for &(i, v) in row {
                out.scaled_add(v, &self.w1.row(i as usize));
            }
        }
        a
    }

    /// μ for sparse input rows (no dropout, no sampling): `B × L`.
    fn mean(&self, rows: &[Vec<(u32, f32)>]) -> Array2<f32> {
        let h = self.encode_input(rows).mapv(f32::tanh);
        let l = self.latent();
        h.dot(&self.w2.slice_axis(Axis(1), Slice::from(..l)))
            + self.b2.slice_axis(Axis(1), Slice::from(..l))
    }

    /// Logits `π` of the decoder for latent rows `z` (`B × L`): `B × I`.
    fn decode(&self, z: ArrayView2<'_, f32>) -> (Array2<f32>, Array2<f32>) {
        let g = (z.dot(&self.w3) + &self.b3).mapv(f32::tanh);
        let logits = g.dot(&self.w4) + &self.b4;
        (g, logits)
    }

    /// Ranking scores (logits with `z = μ`) of users whose interactions are `items[b]`.
    pub fn score_rows(&self, items: &[&[u32]]) -> Array2<f32> {
        let rows: Vec<Vec<(u32, f32)>> =
            items.iter().map(|l| normalised(l, self.items())).collect();
        self.decode(self.mean(&rows).view()).1
    }

    /// Loss and gradients of one batch.
    ///
    /// `inputs[b]`: the encoder's sparse input `x̂` of user `b` (after normalisation and any
    /// dropout); `targets[b]`: the user's items (the binary `x` of the likelihood; ascending,
    /// unique, < `I`); `eps`: `B × L` standard-normal draws; `beta`: the KL weight.
    /// Returns (loss, mean negative log-likelihood, mean KL, gradients of the loss), the loss
    /// being `nll + beta · kl` (module docs).
    pub fn loss_and_grad(
        &self,
        inputs: &[Vec<(u32, f32)>],
        targets: &[&[u32]],
        eps: &Array2<f32>,
        beta: f32,
    ) -> (f32, f32, f32, VaeNet) {
        let bsz = inputs.len();
        let scale = 1.0 / bsz.max(1) as f32;
        let l = self.latent();
        // Forward.
        let h1 = self.encode_input(inputs).mapv(f32::tanh);
        let q = h1.dot(&self.w2) + &self.b2;
        let mu = q.slice_axis(Axis(1), Slice::from(..l)).to_owned();
        let logvar = q.slice_axis(Axis(1), Slice::from(l..)).to_owned();
        let std = logvar.mapv(|v| (0.5 * v).exp());
        let z = &mu + &(eps * &std);
        let (h3, logits) = self.decode(z.view());
        // Log-softmax per row, with the max subtracted for stability.
        let mut dlogits = Array2::<f32>::zeros(logits.raw_dim());
        let mut nll = 0.0f64;
        for (b, target) in targets.iter().enumerate() {
            let row = logits.row(b);
            let m = row.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let lse = m + row.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
            let n = target.len() as f32;
            let mut d = dlogits.row_mut(b);
            for (dj, &v) in d.iter_mut().zip(row.iter()) {
                *dj = n * (v - lse).exp() * scale;
            }
            for &i in *target {
                nll -= f64::from(row[i as usize] - lse);
                d[i as usize] -= scale;
            }
        }
        let kl_terms = (&logvar.mapv(|v| -v) + &logvar.mapv(f32::exp) + &mu.mapv(|v| v * v))
            .mapv(|v| 0.5 * (v - 1.0));
        let kl = f64::from(kl_terms.sum()) * f64::from(scale);
        let nll = nll * f64::from(scale);
        // Backward.
        let mut g = VaeNet::zeros(self.items(), self.hidden(), l);
        g.w4 = h3.t().dot(&dlogits);
        g.b4 = dlogits.sum_axis(Axis(0)).insert_axis(Axis(0));
        let da3 = dlogits.dot(&self.w4.t()) * &h3.mapv(|v| 1.0 - v * v);
        g.w3 = z.t().dot(&da3);
        g.b3 = da3.sum_axis(Axis(0)).insert_axis(Axis(0));
        let dz = da3.dot(&self.w3.t());
        let bs = beta * scale;
        let dmu = &dz + &mu.mapv(|v| bs * v);
        let dlogvar =
            &(&dz * eps) * &std.mapv(|v| 0.5 * v) + &logvar.mapv(|v| 0.5 * bs * (v.exp() - 1.0));
        let mut dq = Array2::<f32>::zeros(q.raw_dim());
        dq.slice_axis_mut(Axis(1), Slice::from(..l)).assign(&dmu);
        dq.slice_axis_mut(Axis(1), Slice::from(l..))
            .assign(&dlogvar);
        g.w2 = h1.t().dot(&dq);
        g.b2 = dq.sum_axis(Axis(0)).insert_axis(Axis(0));
        let da1 = dq.dot(&self.w2.t()) * &h1.mapv(|v| 1.0 - v * v);
        g.b1 = da1.sum_axis(Axis(0)).insert_axis(Axis(0));
        for (b, row) in inputs.iter().enumerate() {
            for &(i, v) in row {
                g.w1.row_mut(i as usize).scaled_add(v, &da1.row(b));
            }
        }
        let loss = nll + f64::from(beta) * kl;
        (loss as f32, nll as f32, kl as f32, g)
    }
}

/// The sparse row `x / ‖x‖₂` of a binary interaction list (items ≥ `n_items` dropped).
fn normalised(items: &[u32], n_items: usize) -> Vec<(u32, f32)> {
    let kept: Vec<u32> = items
        .iter()
        .copied()
        .filter(|&i| (i as usize) < n_items)
        .collect();
    let v = 1.0 / (kept.len().max(1) as f32).sqrt();
    kept.into_iter().map(|i| (i, v)).collect()
}

/// Mult-VAE recommender (module docs). `fit` continues from the current weights when the
/// catalogue size is unchanged (incremental retraining; the network has no per-user
/// parameters, so new users need nothing), else initialises them afresh.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MultVae {
    /// Hyper-parameters.
    pub params: MultVaeParams,
    net: VaeNet,
    adam: Vec<Adam>,
    /// Adam steps taken over all fits (drives the β annealing).
    steps: u64,
    /// Epochs completed over all fits (drives the β annealing).
    epochs_done: u64,
    /// Number of completed fits (keys the sampling streams).
    fits: u64,
    /// Each user's items at the last fit: the input the scores are computed from.
    inputs: Positives,
    /// Mean loss (negative log-likelihood + β · KL) of each epoch of the last fit.
    pub epoch_loss: Vec<f32>,
    /// Scores of every (user, item) after the last fit, when small enough (`SCORE_CACHE_MAX`);
    /// rebuilt from `inputs` when a state is loaded, so never checkpointed.
    #[serde(skip)]
    cache: Option<Array2<f32>>,
}

impl MultVae {
    /// An unfitted model.
    pub fn new(params: MultVaeParams) -> Self {
        Self {
            params,
            net: VaeNet::zeros(0, 0, 0),
            adam: Vec::new(),
            steps: 0,
            epochs_done: 0,
            fits: 0,
            inputs: Positives::default(),
            epoch_loss: Vec::new(),
            cache: None,
        }
    }

    /// The network.
    pub fn net(&self) -> &VaeNet {
        &self.net
    }

    /// β after `epochs` epochs (annealing schedule of the module docs).
    pub fn beta_at(&self, epochs: f64) -> f32 {
        let p = &self.params;
        if p.anneal_epochs == 0 {
            return p.beta_cap;
        }
        (f64::from(p.beta_cap) * (epochs / f64::from(p.anneal_epochs)).min(1.0)) as f32
    }

    /// Trains on `pos` for `params.epochs` epochs (see the type's docs).
    pub fn fit_positives(&mut self, pos: &Positives) {
        let p = self.params.clone();
        let (hidden, latent) = (p.hidden.max(1), p.latent.max(1));
        let ni = pos.n_items();
        let net = &self.net;
        if (net.items(), net.hidden(), net.latent()) != (ni, hidden, latent) {
            let mut rng = stream_rng(p.seed, Stream::Training, &[MULTVAE_TAG]);
            self.net = VaeNet::init(ni, hidden, latent, &mut rng);
            self.adam = self
                .net
                .params()
                .iter()
                .map(|w| Adam::new(w.nrows(), w.ncols()))
                .collect();
        }
        let users: Vec<u32> = (0..pos.n_users() as u32)
            .filter(|&u| !pos.items_of(u).is_empty())
            .collect();
        let batch = p.batch.max(1);
        let keep = 1.0 - p.dropout.clamp(0.0, 0.999);
        let per_epoch = users.len().div_ceil(batch).max(1);
        self.epoch_loss.clear();
        for epoch in 0..p.epochs {
            let mut rng = stream_rng(
                p.seed,
                Stream::Training,
                &[MULTVAE_TAG, self.fits, u64::from(epoch)],
            );
            let mut order = users.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let (mut loss_sum, mut n) = (0.0f64, 0usize);
            for (step, chunk) in order.chunks(batch).enumerate() {
                let targets: Vec<&[u32]> = chunk.iter().map(|&u| pos.items_of(u)).collect();
                let inputs: Vec<Vec<(u32, f32)>> = targets
                    .iter()
                    .map(|t| {
                        normalised(t, ni)
                            .into_iter()
                            .filter(|_| rng.random::<f32>() < keep)
                            .map(|(i, v)| (i, v / keep))
                            .collect()
                    })
                    .collect();
                let eps = Array2::from_shape_fn((chunk.len(), latent), |_| {
                    StandardNormal.sample(&mut rng)
                });
                let done = self.epochs_done as f64 + step as f64 / per_epoch as f64;
                let beta = self.beta_at(done);
                let (loss, _, _, g) = self.net.loss_and_grad(&inputs, &targets, &eps, beta);
                loss_sum += f64::from(loss) * chunk.len() as f64;
                n += chunk.len();
                for ((w, gw), adam) in self
                    .net
                    .params_mut()
                    .into_iter()
                    .zip(g.params())
                    .zip(&mut self.adam)
                {
                    adam.step_dense(w, gw, p.lr);
                }
                self.steps += 1;
            }
            self.epochs_done += 1;
            self.epoch_loss.push((loss_sum / n.max(1) as f64) as f32);
        }
        self.fits += 1;
        self.inputs = pos.clone();
        self.rebuild_cache();
    }

    /// Recomputes every user's scores when `users × items` is at most `SCORE_CACHE_MAX`.
    fn rebuild_cache(&mut self) {
        let (nu, ni) = (self.inputs.n_users(), self.net.items());
        if ni == 0 || nu * ni > SCORE_CACHE_MAX {
            self.cache = None;
            return;
        }
        let mut all = Array2::zeros((nu, ni));
        for start in (0..nu).step_by(256) {
            let end = (start + 256).min(nu);
            let rows: Vec<&[u32]> = (start..end)
                .map(|u| self.inputs.items_of(u as u32))
                .collect();
            all.slice_axis_mut(Axis(0), Slice::from(start..end))
                .assign(&self.net.score_rows(&rows));
        }
        self.cache = Some(all);
    }

    /// Scores of every item for `user` (the decoder's logits); empty for an unfitted model or
    /// an unknown user.
    pub fn scores(&self, user: u32) -> Array1<f32> {
        if self.net.items() == 0 || user as usize >= self.inputs.n_users() {
            return Array1::zeros(0);
        }
        match &self.cache {
            Some(c) => c.row(user as usize).to_owned(),
            None => self
                .net
                .score_rows(&[self.inputs.items_of(user)])
                .row(0)
                .to_owned(),
        }
    }
}

impl Recommender for MultVae {
    fn name(&self) -> &'static str {
        "MultVAE"
    }

    fn fit(&mut self, log: &InteractionLog) {
        self.fit_positives(&Positives::from_log(log));
    }

    fn recommend(
        &self,
        user: u32,
        k: usize,
        exclude: &dyn Fn(u32) -> bool,
        _rng: &mut ChaCha8Rng,
    ) -> Slate {
        top_k(self.scores(user).as_slice().unwrap_or(&[]), k, exclude)
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        rmp_serde::to_vec_named(self).ok()
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut restored: Self = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
        super::ConfiguredParams::keep_configured(&self.params, &mut restored.params)?;
        *self = restored;
        self.rebuild_cache();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_net(seed: u64) -> VaeNet {
        let mut rng = stream_rng(seed, Stream::Training, &[99]);
        let mut net = VaeNet::init(5, 3, 2, &mut rng);
        // Larger biases than the init's, so every term of the gradient is exercised.
        for b in [&mut net.b1, &mut net.b2, &mut net.b3, &mut net.b4] {
            let n = normal_init(1, b.ncols(), 0.3, &mut rng);
            *b = n;
        }
        net
    }

    #[test]
    fn shapes_follow_the_architecture() {
        let net = VaeNet::zeros(7, 6, 4);
        let shapes: Vec<(usize, usize)> = net.params().iter().map(|w| w.dim()).collect();
        assert_eq!(
            shapes,
            vec![
                (7, 6),
                (1, 6),
                (6, 8),
                (1, 8),
                (4, 6),
                (1, 6),
                (6, 7),
                (1, 7)
            ]
        );
        assert_eq!(net.score_rows(&[&[0, 3], &[]]).dim(), (2, 7));
        let mut m = MultVae::new(MultVaeParams {
            hidden: 6,
            latent: 4,
            epochs: 1,
            batch: 2,
            ..MultVaeParams::default()
        });
        m.fit_positives(&Positives::from_lists(&[vec![0, 1], vec![2], vec![]], 7));
        assert_eq!(m.scores(0).len(), 7);
        assert_eq!(m.scores(3).len(), 0, "unknown user");
        assert_eq!(m.epoch_loss.len(), 1);
    }

    #[test]
    fn loss_of_a_zero_network_by_hand() {
        // All weights and biases 0: logits 0, so softmax = 1/4 over I = 4 items, and the
        // negative log-likelihood of a user with 2 items is 2 ln 4 = 2.7725887. μ = 0 and
        // log σ² = 0 give KL = ½ Σ (−0 + 1 + 0 − 1) = 0.
        let mut net = VaeNet::zeros(4, 3, 2);
        let x: &[u32] = &[1, 3];
        let input = vec![normalised(x, 4)];
        let eps = Array2::zeros((1, 2));
        let (loss, nll, kl, _) = net.loss_and_grad(&input, &[x], &eps, 0.2);
        assert!((nll - 2.0 * 4f32.ln()).abs() < 1e-6, "{nll}");
        assert_eq!(kl, 0.0);
        assert!((loss - nll).abs() < 1e-6);
        // log σ² bias ln 2 (σ² = 2) on both latent dims, μ = 0: KL per dim
        // ½ (−ln 2 + 2 + 0 − 1) = 0.1534264, so KL = 0.3068528; with β = 0.2 the loss gains
        // 0.0613706. ε = 0 keeps z = μ = 0, so the likelihood is unchanged.
        net.b2[[0, 2]] = 2f32.ln();
        net.b2[[0, 3]] = 2f32.ln();
        let (loss, nll, kl, _) = net.loss_and_grad(&input, &[x], &eps, 0.2);
        assert!((kl - (1.0 - 2f32.ln())).abs() < 1e-6, "{kl}");
        assert!((nll - 2.0 * 4f32.ln()).abs() < 1e-6);
        assert!((loss - (nll + 0.2 * kl)).abs() < 1e-6);
        // Gradient of the logits' bias with a uniform softmax: n·(1/4) − x_j for one user:
        // 2/4 − [0, 1, 0, 1] = [0.5, −0.5, 0.5, −0.5].
        let (_, _, _, g) = net.loss_and_grad(&input, &[x], &eps, 0.2);
        assert_eq!(g.b4.row(0).to_vec(), vec![0.5, -0.5, 0.5, -0.5]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Two users, dropout-free inputs, fixed ε; central differences in f64 would be exact to
        // O(h²), in f32 they are good to ~1e-3 relative at h = 1e-2.
        let net = tiny_net(5);
        let t0: &[u32] = &[0, 2, 4];
        let t1: &[u32] = &[1];
        let inputs = vec![normalised(t0, 5), normalised(t1, 5)];
        let eps = Array2::from_shape_vec((2, 2), vec![0.3, -1.1, 0.7, 0.2]).unwrap();
        let beta = 0.2;
        let (_, _, _, g) = net.loss_and_grad(&inputs, &[t0, t1], &eps, beta);
        let h = 1e-2f32;
        let mut checked = 0;
        for p in 0..8 {
            let (rows, cols) = net.params()[p].dim();
            for r in 0..rows {
                for c in 0..cols {
                    let mut plus = net.clone();
                    plus.params_mut()[p][[r, c]] += h;
                    let mut minus = net.clone();
                    minus.params_mut()[p][[r, c]] -= h;
                    let lp = plus.loss_and_grad(&inputs, &[t0, t1], &eps, beta).0;
                    let lm = minus.loss_and_grad(&inputs, &[t0, t1], &eps, beta).0;
                    let numeric = (lp - lm) / (2.0 * h);
                    let analytic = g.params()[p][[r, c]];
                    assert!(
                        (numeric - analytic).abs() <= 2e-3 + 2e-2 * analytic.abs(),
                        "param {p} [{r},{c}]: numeric {numeric} vs analytic {analytic}"
                    );
                    checked += 1;
                }
            }
        }
        // 5·3 + 3 + 3·4 + 4 + 2·3 + 3 + 3·5 + 5 parameters.
        assert_eq!(checked, 63);
    }

    #[test]
    fn learns_a_two_block_structure_and_beats_popularity() {
        // `two_block_positives`: users 0..4 hold 3 of items 0..4, users 4..8 3 of items 4..8;
        // the hit is the item of its own block a user misses. Popularity: every item has 3
        // watches, so ties rank by index: users 0..4 get their missing item (it is the lowest
        // unwatched index), users 4..8 get item 0: 4 hits of 8. The lowest possible loss is
        // 3 ln 3 = 3.30 (all mass on the 3 positives) against 3 ln 8 = 6.24 at a uniform start.
        let pos = crate::recommender::train::two_block_positives();
        let log = crate::recommender::eval::log_from_lists(
            &(0..8).map(|u| pos.items_of(u).to_vec()).collect::<Vec<_>>(),
            8,
        );
        let hits = |m: &dyn Recommender| {
            let mut rng = stream_rng(0, Stream::Recommender, &[]);
            (0..8u32)
                .filter(|&u| {
                    let s = m.recommend(u, 1, &|i| pos.contains(u, i), &mut rng);
                    s.items == vec![(u / 4) * 4 + u % 4]
                })
                .count()
        };
        let mut pop = crate::recommender::Popularity::default();
        pop.fit(&log);
        assert_eq!(hits(&pop), 4);
        let mut m = MultVae::new(MultVaeParams {
            hidden: 16,
            latent: 4,
            lr: 0.01,
            epochs: 150,
            batch: 4,
            dropout: 0.5,
            anneal_epochs: 50,
            ..MultVaeParams::default()
        });
        m.fit(&log);
        // Dropout (3 inputs at rate 0.5) keeps the per-epoch loss noisy: compare means.
        let loss = &m.epoch_loss;
        let mean = |l: &[f32]| l.iter().sum::<f32>() / l.len() as f32;
        assert!(mean(&loss[..10]) > 5.8, "{loss:?}");
        assert!(mean(&loss[loss.len() - 20..]) < 5.2, "{loss:?}");
        assert_eq!(hits(&m), 8);
    }

    #[test]
    fn same_seed_same_model_and_state_round_trips() {
        let pos = crate::recommender::train::two_block_positives();
        let params = MultVaeParams {
            hidden: 8,
            latent: 3,
            epochs: 3,
            batch: 3,
            ..MultVaeParams::default()
        };
        let mut a = MultVae::new(params.clone());
        a.fit_positives(&pos);
        let mut b = MultVae::new(params.clone());
        b.fit_positives(&pos);
        assert_eq!(a.net(), b.net());
        let mut c = MultVae::new(params);
        c.load_state(&a.save_state().unwrap()).unwrap();
        assert_eq!(c.scores(2), a.scores(2), "restored scores are rebuilt");
        // A second fit continues from the weights (same shapes): the weights change, the
        // annealing clock goes on.
        a.fit_positives(&pos);
        assert_ne!(a.net(), c.net());
        assert_eq!(a.epochs_done, 6);
    }

    #[test]
    fn beta_anneals_linearly_to_its_cap() {
        let m = MultVae::new(MultVaeParams {
            beta_cap: 0.2,
            anneal_epochs: 10,
            ..MultVaeParams::default()
        });
        // β = 0.2 · min(1, e / 10).
        assert_eq!(m.beta_at(0.0), 0.0);
        assert!((m.beta_at(5.0) - 0.1).abs() < 1e-7);
        assert_eq!(m.beta_at(10.0), 0.2);
        assert_eq!(m.beta_at(30.0), 0.2);
    }
}

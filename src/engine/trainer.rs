//! [`Trainer`]: a `Network<f32>` plus a Caffe-style solver and learning-rate policy.
//!
//! Per step (iteration `it`, starting at 0): `lr = policy(base_lr, it)`; gradients of the
//! mean batch loss are computed; then for every parameter with multipliers
//! (`lr_mult`, `decay_mult`) and `g = ∇ + weight_decay·decay_mult·W`, `α = lr·lr_mult`:
//! * SGD: `V ← μV + α·g; W ← W − V`
//! * Nesterov: `V' ← μV + α·g; W ← W − ((1 + μ)V' − μV)`
//! * Adam: `m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
//!   W ← W − α·sqrt(1−β2^t)/(1−β1^t) · m/(sqrt(v) + ε)` with `t = it + 1`.
//!
//! Learning-rate policies (Caffe): fixed `lr`; step `lr·γ^⌊it/stepsize⌋`; multistep
//! `lr·γ^k` with k = number of steps `≤ it` (steps ascending); exp `lr·γ^it`;
//! inv `lr·(1 + γ·it)^(−power)`; poly `lr·(1 − it/max_iter)^power` (0 past max_iter);
//! sigmoid `lr/(1 + exp(−γ·(it − stepsize)))`.

use super::error::EngineError;
use super::network::{Backend, MemoryReport, NetOptions, Network};
use super::plan::Plan;

#[derive(Clone, Debug, PartialEq)]
pub enum Solver {
    Sgd { momentum: f32 },
    Nesterov { momentum: f32 },
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum LrPolicy {
    Fixed,
    Step { gamma: f32, stepsize: usize },
    MultiStep { gamma: f32, steps: Vec<usize> },
    Exp { gamma: f32 },
    Inv { gamma: f32, power: f32 },
    Poly { power: f32, max_iter: usize },
    Sigmoid { gamma: f32, stepsize: usize },
}

impl LrPolicy {
    /// Learning rate at iteration `it`.
    pub fn rate(&self, base: f32, it: usize) -> f32 {
        let b = base as f64;
        let i = it as f64;
        let r = match self {
            LrPolicy::Fixed => b,
            LrPolicy::Step { gamma, stepsize } => b * (*gamma as f64).powi((it / (*stepsize).max(1)) as i32),
            LrPolicy::MultiStep { gamma, steps } => b * (*gamma as f64).powi(steps.iter().filter(|&&s| it >= s).count() as i32),
            LrPolicy::Exp { gamma } => b * (*gamma as f64).powf(i),
            LrPolicy::Inv { gamma, power } => b * (1.0 + *gamma as f64 * i).powf(-(*power as f64)),
            LrPolicy::Poly { power, max_iter } => {
                let f = (1.0 - i / (*max_iter).max(1) as f64).max(0.0);
                b * f.powf(*power as f64)
            }
            LrPolicy::Sigmoid { gamma, stepsize } => b / (1.0 + (-(*gamma as f64) * (i - *stepsize as f64)).exp()),
        };
        r as f32
    }
}

#[derive(Clone, Debug)]
pub struct TrainerConfig {
    pub base_lr: f32,
    pub weight_decay: f32,
    pub solver: Solver,
    pub lr_policy: LrPolicy,
    pub max_batch: usize,
    pub threads: usize,
    /// Micro-batch size for nets without batch norm (0 = automatic, the default).
    pub micro_batch: usize,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            base_lr: 0.01,
            weight_decay: 0.0,
            solver: Solver::Sgd { momentum: 0.9 },
            lr_policy: LrPolicy::Fixed,
            max_batch: 256,
            threads: 1,
            micro_batch: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean loss of the batch (before the update).
    pub loss: f32,
    /// Correct top-1 predictions in the batch (before the update).
    pub correct: usize,
    pub batch: usize,
    /// Learning rate used for this step.
    pub lr: f32,
    /// Iteration number of this step (0-based).
    pub iter: usize,
}

pub struct Trainer {
    net: Network<f32>,
    cfg: TrainerConfig,
    iter: usize,
    hist: Vec<f32>,
    hist2: Vec<f32>,
}

impl Trainer {
    pub fn new(plan: &Plan, seed: u64, cfg: TrainerConfig) -> Result<Self, EngineError> {
        if !(cfg.base_lr.is_finite() && cfg.base_lr >= 0.0 && cfg.weight_decay.is_finite()) {
            return Err(EngineError::Solver("base_lr and weight_decay must be finite, base_lr ≥ 0".into()));
        }
        match &cfg.solver {
            Solver::Sgd { momentum } | Solver::Nesterov { momentum } if !(0.0..1.0).contains(momentum) => {
                return Err(EngineError::Solver("momentum must be in [0, 1)".into()))
            }
            Solver::Adam { beta1, beta2, eps } if !((0.0..1.0).contains(beta1) && (0.0..1.0).contains(beta2) && *eps > 0.0) => {
                return Err(EngineError::Solver("adam needs β1, β2 in [0,1) and eps > 0".into()))
            }
            _ => {}
        }
        match &cfg.lr_policy {
            LrPolicy::MultiStep { steps, .. } if steps.windows(2).any(|w| w[0] >= w[1]) => {
                return Err(EngineError::Solver("multistep steps must be strictly ascending".into()))
            }
            LrPolicy::Step { stepsize: 0, .. } | LrPolicy::Poly { max_iter: 0, .. } => {
                return Err(EngineError::Solver("stepsize / max_iter must be > 0".into()))
            }
            _ => {}
        }
        let net = Network::with_options(
            plan,
            seed,
            NetOptions { backend: Backend::Cpu { threads: cfg.threads }, max_batch: cfg.max_batch, micro_batch: cfg.micro_batch },
        )?;
        let np = net.params().len();
        let hist2 = if matches!(cfg.solver, Solver::Adam { .. }) { vec![0.0; np] } else { vec![] };
        Ok(Trainer { net, cfg, iter: 0, hist: vec![0.0; np], hist2 })
    }

    pub fn network(&self) -> &Network<f32> {
        &self.net
    }
    pub fn network_mut(&mut self) -> &mut Network<f32> {
        &mut self.net
    }
    pub fn iter(&self) -> usize {
        self.iter
    }
    pub fn config(&self) -> &TrainerConfig {
        &self.cfg
    }

    /// One solver iteration on a batch (`labels.len()` samples, `1..=max_batch`).
    pub fn train_step(&mut self, inputs: &[f32], labels: &[u32]) -> Result<StepStats, EngineError> {
        let lr = self.cfg.lr_policy.rate(self.cfg.base_lr, self.iter);
        self.net.set_step(self.iter as u64);
        let st = self.net.forward_backward(inputs, labels)?;
        self.update(lr);
        let out = StepStats { loss: st.loss as f32, correct: st.correct, batch: st.batch, lr, iter: self.iter };
        self.iter += 1;
        Ok(out)
    }

    fn update(&mut self, lr: f32) {
        let wd = self.cfg.weight_decay;
        let t = (self.iter + 1) as i32;
        let net = &mut self.net;
        let (infos, params, grad) = (&net.comp.params, &mut net.params, &net.grad);
        for p in infos {
            let a = lr * p.lr_mult;
            let dec = wd * p.decay_mult;
            let r = p.offset..p.offset + p.len;
            let (w, g, h) = (&mut params[r.clone()], &grad[r.clone()], &mut self.hist[r.clone()]);
            match self.cfg.solver {
                Solver::Sgd { momentum } => {
                    for ((w, g), v) in w.iter_mut().zip(g).zip(h.iter_mut()) {
                        *v = momentum * *v + a * (*g + dec * *w);
                        *w -= *v;
                    }
                }
                Solver::Nesterov { momentum } => {
                    for ((w, g), v) in w.iter_mut().zip(g).zip(h.iter_mut()) {
                        let old = *v;
                        *v = momentum * *v + a * (*g + dec * *w);
                        *w -= (1.0 + momentum) * *v - momentum * old;
                    }
                }
                Solver::Adam { beta1, beta2, eps } => {
                    let corr = ((1.0 - (beta2 as f64).powi(t)).sqrt() / (1.0 - (beta1 as f64).powi(t))) as f32;
                    let h2 = &mut self.hist2[r.clone()];
                    for (((w, g), m), v) in w.iter_mut().zip(g).zip(h.iter_mut()).zip(h2.iter_mut()) {
                        let gg = *g + dec * *w;
                        *m = beta1 * *m + (1.0 - beta1) * gg;
                        *v = beta2 * *v + (1.0 - beta2) * gg * gg;
                        *w -= a * corr * *m / (v.sqrt() + eps);
                    }
                }
            }
        }
    }

    /// Evaluation-mode loss and number correct over any number of samples (processed in
    /// chunks of `max_batch`). Returns (mean loss, correct).
    pub fn evaluate(&mut self, inputs: &[f32], labels: &[u32]) -> Result<(f32, usize), EngineError> {
        let n = labels.len();
        let il = self.net.input_len();
        if n == 0 || inputs.len() != n * il {
            return Err(EngineError::Input(format!("evaluate: {} inputs for {n} labels of length {il}", inputs.len())));
        }
        let (mut loss, mut correct) = (0.0f64, 0usize);
        let mb = self.cfg.max_batch;
        let mut s = 0;
        while s < n {
            let e = (s + mb).min(n);
            let st = self.net.forward(&inputs[s * il..e * il], &labels[s..e], false)?;
            loss += st.loss * (e - s) as f64;
            correct += st.correct;
            s = e;
        }
        Ok(((loss / n as f64) as f32, correct))
    }

    /// Network memory plus solver history.
    pub fn memory_bytes(&self) -> MemoryReport {
        let mut m = self.net.memory_bytes();
        m.optimizer_state = (self.hist.len() + self.hist2.len()) * 4;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn lr_policies() {
        let b = 0.1;
        assert_eq!(LrPolicy::Fixed.rate(b, 100), 0.1);
        assert!((LrPolicy::Step { gamma: 0.5, stepsize: 10 }.rate(b, 25) - 0.025).abs() < 1e-7);
        let ms = LrPolicy::MultiStep { gamma: 0.1, steps: vec![5, 10] };
        assert!((ms.rate(b, 4) - 0.1).abs() < 1e-7);
        assert!((ms.rate(b, 5) - 0.01).abs() < 1e-7);
        assert!((ms.rate(b, 12) - 0.001).abs() < 1e-8);
        assert!((LrPolicy::Exp { gamma: 0.9 }.rate(b, 2) - 0.081).abs() < 1e-7);
        assert!((LrPolicy::Inv { gamma: 1e-4, power: 0.75 }.rate(b, 1000) - 0.1 * 1.1f32.powf(-0.75)).abs() < 1e-7);
        assert!((LrPolicy::Poly { power: 2.0, max_iter: 100 }.rate(b, 50) - 0.025).abs() < 1e-7);
        assert!((LrPolicy::Sigmoid { gamma: 0.1, stepsize: 10 }.rate(b, 10) - 0.05).abs() < 1e-7);
    }
}

/// Explicit control for training runs: the run loop owns the schedule and the checkpoints.
impl Trainer {
    /// One solver iteration as iteration `iter` at learning rate `lr` (the run loop computes the
    /// rate from the spec's policy). Dropout masks and Adam's bias correction follow `iter`, so a
    /// resumed run repeats an uninterrupted one exactly.
    pub fn train_step_at(&mut self, inputs: &[f32], labels: &[u32], iter: usize, lr: f32) -> Result<StepStats, EngineError> {
        self.iter = iter;
        self.net.set_step(iter as u64);
        let st = self.net.forward_backward(inputs, labels)?;
        if st.loss.is_finite() && self.net.grads_finite() {
            self.update(lr);
        }
        let out = StepStats { loss: st.loss as f32, correct: st.correct, batch: st.batch, lr, iter };
        self.iter = iter + 1;
        Ok(out)
    }

    /// The solver's history: momentum (SGD, Nesterov) or first moments (Adam), and Adam's second moments.
    pub fn solver_state(&self) -> (&[f32], &[f32]) {
        (&self.hist, &self.hist2)
    }

    /// Restores the solver history saved by [`Trainer::solver_state`].
    pub fn set_solver_state(&mut self, first: &[f32], second: &[f32]) -> Result<(), EngineError> {
        if first.len() != self.hist.len() || second.len() != self.hist2.len() {
            return Err(EngineError::Input(format!(
                "solver state has {}+{} values, expected {}+{}",
                first.len(),
                second.len(),
                self.hist.len(),
                self.hist2.len()
            )));
        }
        self.hist.copy_from_slice(first);
        self.hist2.copy_from_slice(second);
        Ok(())
    }
}

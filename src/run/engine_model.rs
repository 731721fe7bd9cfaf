//! The bridge from the run loop to the CPU engine: lowering, solver settings, checkpoint names.
//!
//! Checkpoint tensor names are PyTorch's for the same modules: `conv1.weight`, `conv1.bias`;
//! batch norm `bn.weight`, `bn.bias` (the engine's γ, β), `bn.running_mean`, `bn.running_var`;
//! recurrent layers `rnn.weight_ih_l0`, `rnn.weight_hh_l0`, `rnn.bias_ih_l0` and a zero
//! `rnn.bias_hh_l0` (PyTorch keeps two bias vectors where the engine keeps their sum).

use super::checkpoint::Tensors;
use super::driver::Model;
use super::error::RunError;
use crate::data::Batch;
use crate::engine::{Inputs, Trainer, TrainerConfig};
use crate::lower::Plan;
use crate::ops::Op;
use crate::spec::Experiment;

pub trait EngineModel: Model {
    /// Bytes the engine holds for training (parameters, gradients, solver state, activations, workspace).
    fn engine_bytes(&self) -> u64;
}

pub struct CpuModel {
    trainer: Trainer,
    /// (parameter id, checkpoint name).
    names: Vec<(usize, String)>,
    /// (plan layer index, layer name) of batch-norm layers.
    batch_norms: Vec<(usize, String)>,
    /// Zero second biases of recurrent layers (name, length), exported for PyTorch.
    extra_zero: Vec<(String, usize)>,
}

fn engine_err(e: impl std::fmt::Display) -> RunError {
    RunError::new("E0534", format!("engine: {e}"))
}

/// The checkpoint name of a plan parameter: PyTorch's for the same module (`nn.RNN`/`nn.LSTM`
/// suffix their tensors with the layer index `_l0` and keep two biases where the engine keeps one).
pub fn checkpoint_name(op: &Op, layer: &str, param: &str) -> String {
    match (op, param) {
        (Op::Rnn(_) | Op::Lstm(_), "bias") => format!("{layer}.bias_ih_l0"),
        (Op::Rnn(_) | Op::Lstm(_), p) => format!("{layer}.{p}_l0"),
        (_, p) => format!("{layer}.{p}"),
    }
}

/// Builds a trainer for a lowered plan with the spec's solver; `micro_batch` 0 is automatic (the
/// engine's choice, the same the benchmarks use).
pub fn build(plan: &Plan, exp: &Experiment, threads: usize, micro_batch: usize) -> Result<Box<dyn EngineModel>, RunError> {
    let trainer = Trainer::new(plan, exp.train.seed, trainer_config(exp, threads, micro_batch)).map_err(engine_err)?;
    let mut names = vec![];
    let mut extra_zero = vec![];
    for (id, p) in trainer.network().param_info().iter().enumerate() {
        let op = &plan.layers[p.layer_index].op;
        if matches!(op, Op::Rnn(_) | Op::Lstm(_)) && p.name == "bias" {
            extra_zero.push((format!("{}.bias_hh_l0", p.layer), p.len));
        }
        names.push((id, checkpoint_name(op, &p.layer, &p.name)));
    }
    let batch_norms = plan.layers.iter().enumerate().filter(|(_, l)| matches!(l.op, Op::BatchNorm(_))).map(|(i, l)| (i, l.name.clone())).collect();
    Ok(Box::new(CpuModel { trainer, names, batch_norms, extra_zero }))
}

/// The batch's inputs for the engine: its values, or (deferred writing) its writer, which the
/// engine's workers call for the samples they compute.
fn with_inputs<R>(batch: &Batch, f: impl FnOnce(Inputs) -> R) -> R {
    if batch.is_deferred() {
        let write = |k: usize, out: &mut [f32]| batch.write_sample(k, out);
        f(Inputs::Written { first: 0, write: &write })
    } else {
        f(Inputs::Values(&batch.inputs))
    }
}

impl Model for CpuModel {
    fn train_step(&mut self, batch: &Batch, lr: f64, it: u64) -> Result<f64, RunError> {
        let trainer = &mut self.trainer;
        let st = with_inputs(batch, |x| trainer.train_step_at(x, &batch.labels, it as usize, lr as f32)).map_err(engine_err)?;
        // A finite loss with non-finite gradients, or an update that overflowed the weights,
        // is divergence too: report it before anything is checkpointed.
        let net = self.trainer.network();
        let running_finite = self.batch_norms.iter().all(|(l, _)| net.running_stats(*l).is_none_or(|(m, v)| m.iter().chain(v).all(|x| x.is_finite())));
        if st.loss.is_finite() && (!net.grads_finite() || !crate::kernels::all_finite(net.params()) || !running_finite) {
            return Ok(f64::NAN);
        }
        Ok(st.loss as f64)
    }

    fn evaluate(&mut self, batch: &Batch) -> Result<(f64, u64), RunError> {
        let trainer = &mut self.trainer;
        let (loss, correct) = with_inputs(batch, |x| trainer.evaluate(x, &batch.labels)).map_err(engine_err)?;
        Ok((loss as f64 * batch.n as f64, correct as u64))
    }

    fn params(&self) -> Tensors {
        let net = self.trainer.network();
        let mut t = Tensors::default();
        for (id, name) in &self.names {
            let info = &net.param_info()[*id];
            t.insert(name.clone(), info.shape.clone(), net.param_f32(*id).unwrap_or_default());
        }
        for (name, len) in &self.extra_zero {
            t.insert(name.clone(), vec![*len], vec![0.0; *len]);
        }
        for (layer, name) in &self.batch_norms {
            if let Some((m, v)) = net.running_stats(*layer) {
                t.insert(format!("{name}.running_mean"), vec![m.len()], m.iter().map(|&x| x as f32).collect());
                t.insert(format!("{name}.running_var"), vec![v.len()], v.iter().map(|&x| x as f32).collect());
            }
        }
        t
    }

    fn train_state(&self) -> Tensors {
        let (a, b) = self.trainer.solver_state();
        let mut t = Tensors::default();
        t.insert("solver.history", vec![a.len()], a.to_vec());
        t.insert("solver.history2", vec![b.len()], b.to_vec());
        // Running statistics bit-exactly (the model file keeps f32 for PyTorch).
        let net = self.trainer.network();
        for (layer, name) in &self.batch_norms {
            if let Some((m, v)) = net.running_stats(*layer) {
                t.insert(format!("{name}.running_mean.f64bits"), vec![2 * m.len()], f64_bits(m));
                t.insert(format!("{name}.running_var.f64bits"), vec![2 * v.len()], f64_bits(v));
            }
        }
        t
    }

    fn scores(&mut self, batch: &Batch) -> Result<(f64, u64, Vec<f32>), RunError> {
        let trainer = &mut self.trainer;
        let (loss, correct, scores) = with_inputs(batch, |x| trainer.predict(x, &batch.labels)).map_err(engine_err)?;
        Ok((loss as f64 * batch.n as f64, correct as u64, scores))
    }

    fn load_weights(&mut self, params: &Tensors) -> Result<(), RunError> {
        self.restore_tensors(params, &Tensors::default())
    }

    fn restore(&mut self, params: &Tensors, state: &Tensors) -> Result<(), RunError> {
        self.restore_tensors(params, state)?;
        let missing =
            |n: &str| RunError::new("E0503", format!("the checkpoint has no tensor `{n}`")).help("was it written by a run of a different experiment?");
        let a = state.get("solver.history").ok_or_else(|| missing("solver.history"))?;
        let b = state.get("solver.history2").ok_or_else(|| missing("solver.history2"))?;
        self.trainer.set_solver_state(&a.1, &b.1).map_err(engine_err)
    }

    fn first_nonfinite(&self) -> Option<String> {
        let net = self.trainer.network();
        net.first_nonfinite().or_else(|| net.first_nonfinite_grad())
    }
}

impl CpuModel {
    /// Weights and running statistics (bit-exact ones from the state file when present).
    fn restore_tensors(&mut self, params: &Tensors, state: &Tensors) -> Result<(), RunError> {
        let missing =
            |n: &str| RunError::new("E0503", format!("the checkpoint has no tensor `{n}`")).help("was it written by a run of a different experiment?");
        let net = self.trainer.network_mut();
        for (id, name) in &self.names {
            let (_, mut values) = params.get(name).cloned().ok_or_else(|| missing(name))?;
            if let Some(zero) = name.strip_suffix(".bias_ih_l0").map(|l| format!("{l}.bias_hh_l0")) {
                if let Some((_, second)) = params.get(&zero) {
                    values.iter_mut().zip(second).for_each(|(a, b)| *a += b);
                }
            }
            net.set_param_f32(*id, &values).map_err(engine_err)?;
        }
        for (layer, name) in &self.batch_norms {
            let stat = |what: &str| -> Result<Vec<f64>, RunError> {
                if let Some((_, bits)) = state.get(&format!("{name}.{what}.f64bits")) {
                    return Ok(from_f64_bits(bits));
                }
                let key = format!("{name}.{what}");
                params.get(&key).map(|(_, v)| v.iter().map(|&x| x as f64).collect()).ok_or_else(|| missing(&key))
            };
            net.set_running_stats(*layer, &stat("running_mean")?, &stat("running_var")?).map_err(engine_err)?;
        }
        Ok(())
    }
}

impl EngineModel for CpuModel {
    fn engine_bytes(&self) -> u64 {
        self.trainer.memory_bytes().total() as u64
    }
}

/// The trainer [`build`] makes: sized for the training batch (evaluations run in chunks).
fn trainer_config(exp: &Experiment, threads: usize, micro_batch: usize) -> TrainerConfig {
    TrainerConfig {
        weight_decay: exp.train.weight_decay as f32,
        solver: exp.train.solver,
        clip_gradients: exp.train.clip_gradients,
        max_batch: exp.data.batch as usize,
        threads: threads.max(1),
        micro_batch,
    }
}

/// What [`build`] would allocate with `threads` threads and a training batch of `batch` (the
/// automatic micro-batch), computed without allocating: the engine's memory model, which
/// `compile --report` prints and `run` checks against the machine's free memory.
pub fn engine_memory(plan: &Plan, exp: &Experiment, batch: u64, threads: usize) -> Result<crate::engine::MemoryReport, RunError> {
    let cfg = TrainerConfig { max_batch: batch as usize, ..trainer_config(exp, threads, 0) };
    Trainer::memory_estimate(plan, &cfg).map_err(engine_err)
}

/// Memory the machine can still give a process (Linux: `MemAvailable` of /proc/meminfo); `None`
/// where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of pixels the data pipeline keeps in memory for the built-in data sets (an image
/// folder's size is unknown before it is read: 0).
fn dataset_bytes(exp: &Experiment) -> u64 {
    use crate::spec::Dataset;
    match &exp.data.dataset {
        Dataset::Cifar10 => 60_000 * 3 * 32 * 32,
        Dataset::Mnist => 70_000 * 28 * 28,
        d @ Dataset::Synthetic { train, test, .. } => (train + test) * d.sample_shape().iter().product::<u64>(),
        Dataset::Folder { .. } => 0,
    }
}

/// Refuses, before a run folder exists, a run whose engine (its memory model at the training
/// batch) and data set need more memory than `available` (E0535). `None`: nothing to check.
pub fn check_memory_fits(plan: &Plan, exp: &Experiment, threads: usize, available: Option<u64>) -> Result<(), RunError> {
    let Some(available) = available else { return Ok(()) };
    let engine = engine_memory(plan, exp, exp.data.batch, threads)?;
    let (e, d) = (engine.total() as u64, dataset_bytes(exp));
    if e.saturating_add(d) <= available {
        return Ok(());
    }
    let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64);
    Err(RunError::new(
        "E0535",
        format!(
            "`{}` needs about {} to train ({} for the engine at batch {} with {threads} threads, of which activations {}; {} for the data set) but this machine has {} available",
            exp.name,
            gib(e.saturating_add(d)),
            gib(e),
            exp.data.batch,
            gib(engine.activations as u64),
            gib(d),
            gib(available)
        ),
    )
    .help("lower `batch` (activations grow with it), run with fewer `--threads`, or free memory; `expc compile --report` shows the breakdown"))
}

/// f64 values stored losslessly in an f32 tensor: each value's bits as two f32 bit patterns.
fn f64_bits(v: &[f64]) -> Vec<f32> {
    v.iter()
        .flat_map(|x| {
            let b = x.to_bits();
            [f32::from_bits(b as u32), f32::from_bits((b >> 32) as u32)]
        })
        .collect()
}

fn from_f64_bits(v: &[f32]) -> Vec<f64> {
    v.chunks_exact(2).map(|c| f64::from_bits(c[0].to_bits() as u64 | (c[1].to_bits() as u64) << 32)).collect()
}

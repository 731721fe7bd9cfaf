//! Batch streams: seeded per-epoch shuffling, batch assembly, and a background prefetch thread feeding a
//! bounded channel.
//!
//! Invariants: training batch `k` (global iteration, 0-based) is a pure function of (data, config, k): its
//! epoch is `k / steps_per_epoch`, its samples are positions `step * B ..` of the epoch's permutation (drawn
//! from `sample_rng(seed ^ SHUFFLE, epoch, u64::MAX)`), and each sample's augmentation depends only on (seed,
//! epoch, sample index). Hence a stream started at iteration `k` equals an uninterrupted stream from `k` on,
//! and the number of prefetch or worker threads changes timing only. Test batches come in data-set order,
//! unrandomised. Dropping a stream stops and joins its thread. A consumer may hand a used batch back
//! ([`BatchStream::recycle`]): its input buffer is written over (every value of a sample is written) instead of
//! a fresh one being allocated and zeroed for every batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rand::seq::SliceRandom;

use super::augment::{sample_rng, write_sample};
use super::Pipeline;

/// Upper bound on the prefetch depth (the channel allocates its slots up front).
pub const MAX_PREFETCH: usize = 64;

const SHUFFLE: u64 = 0x5368_7566_666c_6521;

/// One batch of preprocessed samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `n` samples one after another, each in the pipeline's `sample_shape()` layout; empty when
    /// the stream leaves the writing to the consumer ([`Pipeline::deferred_writing`]): then
    /// `writer` writes them ([`Batch::write_sample`]).
    pub inputs: Vec<f32>,
    pub labels: Vec<u32>,
    /// Number of samples (the last batch of an epoch may be smaller than the batch size).
    pub n: usize,
    /// Epoch (training) or 0 (test).
    pub epoch: u64,
    /// Global iteration (training) or batch number (test).
    pub iteration: u64,
    /// Batch number within the epoch.
    pub step: u64,
    /// Positions of the samples in their data set.
    pub indices: Vec<u32>,
    /// What writes the samples when `inputs` is empty (deferred writing); `None` otherwise.
    pub writer: Option<SampleWriter>,
}

/// Writes the samples of a batch whose inputs the stream did not write: the pipeline that made
/// the batch and the batch's view of its data (training epoch for augmentation, or evaluation).
#[derive(Clone)]
pub struct SampleWriter {
    pipeline: Arc<Pipeline>,
    train_epoch: Option<u64>,
    from_train: bool,
}

impl std::fmt::Debug for SampleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleWriter").field("train_epoch", &self.train_epoch).field("from_train", &self.from_train).finish_non_exhaustive()
    }
}

impl PartialEq for SampleWriter {
    /// The same pipeline (the same object) and the same view of it.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.pipeline, &other.pipeline) && self.train_epoch == other.train_epoch && self.from_train == other.from_train
    }
}

impl Batch {
    /// Writes sample `k` of the batch (`k < n`) into `out` (the pipeline's `sample_len()` values):
    /// copied from `inputs` when the stream wrote them, else written by `writer` exactly as the
    /// stream would have (the same function of data, configuration, epoch and index). A batch
    /// with neither leaves `out` as it is.
    pub fn write_sample(&self, k: usize, out: &mut [f32]) {
        let per = out.len();
        if let Some(src) = self.inputs.get(k * per..(k + 1) * per) {
            out.copy_from_slice(src);
        } else if let (Some(w), Some(&i)) = (&self.writer, self.indices.get(k)) {
            let p = &w.pipeline;
            let ds = if w.from_train { &p.train } else { &p.test };
            write_sample(ds, i as usize, &p.prep, &p.augment, w.train_epoch.map(|e| (p.config.seed, e)), p.config.sequence_rows, out);
        }
    }

    /// Whether the samples are to be written by [`Batch::write_sample`] (deferred writing).
    pub fn is_deferred(&self) -> bool {
        self.inputs.is_empty() && self.writer.is_some()
    }
}

/// Counters of a stream, for measuring whether loading keeps up with training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamStats {
    /// Batches handed to the consumer.
    pub batches: u64,
    /// Total time the consumer spent blocked in `next()` waiting for a batch.
    pub wait_ns: u64,
    /// Calls to `next()` that found no batch ready (had to wait).
    pub stalls: u64,
    /// Total time the producer spent assembling batches (all batches produced so far, including prefetched).
    pub produce_ns: u64,
}

/// Training batches per epoch for `n` samples in batches of `batch`.
pub fn steps_per_epoch(n: usize, batch: usize, drop_last: bool) -> u64 {
    let batch = batch.max(1);
    if drop_last {
        (n / batch) as u64
    } else {
        n.div_ceil(batch) as u64
    }
}

/// The order in which epoch `epoch` visits the training samples.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut sample_rng(seed ^ SHUFFLE, epoch, u64::MAX));
    order
}

enum Plan {
    Train {
        next: u64,
    },
    /// Fixed order, unrandomised, over the test set or (`train`) the training set.
    Eval {
        next: u64,
        count: u64,
        train: bool,
    },
}

/// Assembles a batch into `inputs` (a recycled buffer, written over) or a new one; with deferred
/// writing, only its labels and indices (the consumer writes the samples).
fn assemble(p: &Arc<Pipeline>, indices: Vec<u32>, train_epoch: Option<u64>, from_train: bool, iteration: u64, step: u64, inputs: Option<Vec<f32>>) -> Batch {
    let ds = if from_train { &p.train } else { &p.test };
    let per = p.sample_len();
    let n = indices.len();
    let (epoch, labels) = (train_epoch.unwrap_or(0), indices.iter().map(|&i| ds.labels[i as usize]).collect());
    if p.deferred {
        let writer = Some(SampleWriter { pipeline: p.clone(), train_epoch, from_train });
        return Batch { inputs: vec![], labels, n, epoch, iteration, step, indices, writer };
    }
    let mut inputs = match inputs {
        Some(v) if v.len() == n * per => v,
        _ => vec![0f32; n * per],
    };
    let rand = train_epoch.map(|e| (p.config.seed, e));
    let seq = p.config.sequence_rows;
    let fill = |chunk: &mut [f32], idx: &[u32]| {
        for (out, &i) in chunk.chunks_exact_mut(per).zip(idx) {
            write_sample(ds, i as usize, &p.prep, &p.augment, rand, seq, out);
        }
    };
    let workers = p.config.workers.clamp(1, 64).min(n.max(1));
    if workers <= 1 {
        fill(&mut inputs, &indices);
    } else {
        let chunk = n.div_ceil(workers);
        std::thread::scope(|s| {
            for (out, idx) in inputs.chunks_mut(chunk * per).zip(indices.chunks(chunk)) {
                s.spawn(move || fill(out, idx));
            }
        });
    }
    Batch { inputs, labels, n, epoch, iteration, step, indices, writer: None }
}

/// Training batch at global iteration `iteration`, computed directly (no thread), into `inputs` when given
/// (written over). `order` caches the epoch permutation between calls.
pub(crate) fn train_batch(p: &Arc<Pipeline>, iteration: u64, order: &mut Option<(u64, Vec<u32>)>, inputs: Option<Vec<f32>>) -> Batch {
    let steps = p.steps_per_epoch().max(1);
    let (epoch, step) = (iteration / steps, iteration % steps);
    if !matches!(order, Some((e, _)) if *e == epoch) {
        let perm = if p.config.shuffle { epoch_order(p.train.len(), p.config.seed, epoch) } else { (0..p.train.len() as u32).collect() };
        *order = Some((epoch, perm));
    }
    let perm: &[u32] = order.as_ref().map(|o| o.1.as_slice()).unwrap_or(&[]);
    let b = p.config.train_batch;
    let start = (step as usize * b).min(perm.len());
    let end = start.saturating_add(b).min(perm.len());
    assemble(p, perm[start..end].to_vec(), Some(epoch), true, iteration, step, inputs)
}

fn eval_batch(p: &Arc<Pipeline>, k: u64, train: bool, inputs: Option<Vec<f32>>) -> Batch {
    let len = if train { p.train.len() } else { p.test.len() };
    let b = p.config.test_batch;
    let start = (k as usize * b).min(len);
    let end = start.saturating_add(b).min(len);
    assemble(p, (start as u32..end as u32).collect(), None, train, k, k, inputs)
}

/// An iterator of batches produced ahead of time by a background thread.
pub struct BatchStream {
    rx: Option<Receiver<Batch>>,
    /// Used input buffers on their way back to the producer.
    spare: SyncSender<Vec<f32>>,
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    produce_ns: Arc<AtomicU64>,
    stats: StreamStats,
}

impl BatchStream {
    /// Endless training batches from global iteration `start_iter` on.
    pub fn train(p: Pipeline, start_iter: u64) -> BatchStream {
        BatchStream::spawn(p, Plan::Train { next: start_iter })
    }

    /// One pass over the test set in order.
    pub fn test(p: Pipeline) -> BatchStream {
        let count = p.test.len().div_ceil(p.config.test_batch.max(1)) as u64;
        BatchStream::spawn(p, Plan::Eval { next: 0, count, train: false })
    }

    /// One pass over the training set in order, unrandomised like test batches (for training accuracy).
    pub fn eval_train(p: Pipeline) -> BatchStream {
        let count = p.train.len().div_ceil(p.config.test_batch.max(1)) as u64;
        BatchStream::spawn(p, Plan::Eval { next: 0, count, train: true })
    }

    fn spawn(p: Pipeline, mut plan: Plan) -> BatchStream {
        let p = Arc::new(p);
        let depth = p.config.prefetch.clamp(1, MAX_PREFETCH);
        let (tx, rx) = sync_channel(depth);
        // room for every buffer in flight: the prefetched ones, the producer's and the consumer's
        let (spare, spare_rx) = sync_channel::<Vec<f32>>(depth + 2);
        let stop = Arc::new(AtomicBool::new(false));
        let produce_ns = Arc::new(AtomicU64::new(0));
        let (stop2, ns2) = (stop.clone(), produce_ns.clone());
        let handle = std::thread::Builder::new().name("expc-data".into()).spawn(move || {
            let mut order = None;
            while !stop2.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let inputs = spare_rx.try_recv().ok();
                let batch = match &mut plan {
                    Plan::Train { next } => {
                        *next += 1;
                        train_batch(&p, *next - 1, &mut order, inputs)
                    }
                    Plan::Eval { next, count, train } => {
                        if *next >= *count {
                            break;
                        }
                        *next += 1;
                        eval_batch(&p, *next - 1, *train, inputs)
                    }
                };
                ns2.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        // If the OS refuses a thread the stream is simply empty; `spawn` failing is not a user-input problem.
        let handle = handle.ok();
        BatchStream { rx: Some(rx), spare, handle, stop, produce_ns, stats: StreamStats::default() }
    }

    /// Hands a used batch back: a later batch is assembled into its input buffer. Never blocks; a buffer
    /// with no room to wait in is dropped.
    pub fn recycle(&self, batch: Batch) {
        let _ = self.spare.try_send(batch.inputs);
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        StreamStats { produce_ns: self.produce_ns.load(Ordering::Relaxed), ..self.stats }
    }
}

impl Iterator for BatchStream {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let rx = self.rx.as_ref()?;
        let got = match rx.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => {
                self.stats.stalls += 1;
                let t0 = Instant::now();
                let b = rx.recv().ok();
                self.stats.wait_ns += t0.elapsed().as_nanos() as u64;
                b
            }
        };
        if got.is_some() {
            self.stats.batches += 1;
        }
        got
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

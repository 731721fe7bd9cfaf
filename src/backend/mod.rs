//! Backends that consume the lowered [`crate::lower::Plan`] besides the native engine.
//!
//! `torch`: the plan (with the spec's data and training recipe) becomes readable PyTorch source,
//! `model.py` and `train.py`, run with `python` or `torchrun` (docs/backends.md).

//!
//! `onnx`: the inference graph with trained weights as an ONNX model (docs/backends.md).

pub mod onnx;
pub mod torch;

//! Element-wise activations: `relu`, `leaky_relu [slope]`, `tanh`, `sigmoid`, `gelu`, `silu`.
//!
//! relu(x) = max(x, 0); leaky_relu(x) = x if x > 0 else slope·x (default slope 0.01);
//! tanh; sigmoid(x) = 1/(1 + e^{−x}); gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)) (the exact form,
//! PyTorch's default); silu(x) = x·σ(x) (swish). Shape-preserving, no parameters; one element
//! operation per element.

use crate::args::Args;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fn", rename_all = "snake_case")]
pub enum Activation {
    Relu,
    LeakyRelu { slope: f64 },
    Tanh,
    Sigmoid,
    Gelu,
    Silu,
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
        }
    }

    /// The heads of this op file.
    pub const HEADS: &'static [&'static str] = &["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu"];

    /// Reads the activation named by `head` (one of [`Activation::HEADS`]).
    pub fn parse(head: &str, a: &mut Args) -> Option<Activation> {
        match head {
            "relu" => Some(Activation::Relu),
            "leaky_relu" => Self::parse_leaky(a),
            "tanh" => Some(Activation::Tanh),
            "sigmoid" => Some(Activation::Sigmoid),
            "silu" => Some(Activation::Silu),
            _ => Some(Activation::Gelu),
        }
    }

    fn parse_leaky(a: &mut Args) -> Option<Activation> {
        let slope = match a.next_positional() {
            Some(v) => a.as_f64(v)?,
            None => a.kw_f64("slope").unwrap_or(0.01),
        };
        Some(Activation::LeakyRelu { slope })
    }
}

impl Activation {
    pub fn cost(&self, x: &[u64]) -> super::shape::Cost {
        let n = super::shape::count(x);
        super::shape::Cost { elementwise: n, kept: n, ..Default::default() }
    }
}

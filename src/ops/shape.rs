//! The shape vocabulary of the op files: per-sample dimensions (the batch `N` stays symbolic),
//! shape errors, parameter shapes and costs.
//!
//! Cost conventions (also in `docs/report.md`): one MAC is one multiply-add. Convolutions,
//! fully connected and recurrent layers are counted exactly in MACs, forward and backward
//! (input-gradient and weight-gradient work separately). Pooling, activations, batch norm,
//! dropout, `add`, and softmax do no multiply-adds and are counted as 0 MACs; their work is
//! reported separately as element operations (`elementwise`): pooling one per window element
//! read, activations and dropout one per element, batch norm 4 per element (normalise, scale,
//! shift, statistics), `add` one per element per extra input, softmax cross-entropy 3 per logit.

/// Per-sample dimensions: `[C, H, W]` images, `[T, F]` sequences, `[F]` vectors, `[]` scalars.
pub type Dims = Vec<u64>;

/// Why an op cannot take its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeError {
    /// Diagnostic code (`E021x`, see docs/errors.md).
    pub code: &'static str,
    pub message: String,
    /// Short text under the consumer's line.
    pub label: String,
    /// The input (by position) whose producer should be labelled too.
    pub input: Option<usize>,
    pub help: Option<String>,
}

impl ShapeError {
    pub fn new(message: impl Into<String>, label: impl Into<String>) -> ShapeError {
        ShapeError { code: "E0210", message: message.into(), label: label.into(), input: Some(0), help: None }
    }
    pub fn code(mut self, code: &'static str) -> ShapeError {
        self.code = code;
        self
    }
    pub fn help(mut self, h: impl Into<String>) -> ShapeError {
        self.help = Some(h.into());
        self
    }
    pub fn input(mut self, i: Option<usize>) -> ShapeError {
        self.input = i;
        self
    }
}

/// `3×32×32`, `N` omitted.
pub fn show(d: &[u64]) -> String {
    if d.is_empty() {
        "a scalar".to_string()
    } else {
        d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("×")
    }
}

/// `1234567` → `1,234,567`: counts in messages, hovers and reports.
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `16×6×6 = 576` for multi-axis shapes, `576` otherwise.
pub fn show_count(d: &[u64]) -> String {
    let n: u64 = d.iter().product();
    if d.len() > 1 {
        format!("{} = {n}", show(d))
    } else {
        n.to_string()
    }
}

/// Parameter tensors of a layer, weights and biases apart (PyTorch layouts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamShapes {
    pub weights: Vec<(&'static str, Dims)>,
    pub biases: Vec<(&'static str, Dims)>,
}

impl ParamShapes {
    pub fn weight_count(&self) -> u64 {
        self.weights.iter().map(|(_, d)| d.iter().product::<u64>()).sum()
    }
    pub fn bias_count(&self) -> u64 {
        self.biases.iter().map(|(_, d)| d.iter().product::<u64>()).sum()
    }
}

/// Work per sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub forward_macs: u64,
    /// Propagating the gradient to the layer's input (skipped when no producer needs it).
    pub backward_input_macs: u64,
    /// Gradient of the weights.
    pub backward_weight_macs: u64,
    /// Backpropagation through time inside a recurrent layer (h_t → h_{t−1}); needed whenever
    /// the layer has parameters, even without an input gradient.
    pub backward_recurrent_macs: u64,
    /// Element operations that are not multiply-adds (see the module header), forward.
    pub elementwise: u64,
    /// Elements this layer keeps from the forward pass for its backward pass.
    pub kept: u64,
}

pub fn count(d: &[u64]) -> u64 {
    d.iter().product()
}

/// Requires a rank; the error names what was expected.
pub fn need_rank(x: &[u64], ranks: &[usize], what: &str, op: &str) -> Result<(), ShapeError> {
    if ranks.contains(&x.len()) {
        return Ok(());
    }
    Err(ShapeError::new(format!("{op} expects {what}, found {}", show(x)), format!("expects {what}")))
}

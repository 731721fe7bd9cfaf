//! `softmax_loss` (alias `loss`): softmax cross-entropy against the integer labels.
//!
//! L = −(1/N) Σ_n log softmax(z_n)[y_n]; on a sequence [N, T, C] the mean is also over T
//! (every step predicts the sequence's label). Its input is the logits; the labels come from
//! the data. Output: a scalar.

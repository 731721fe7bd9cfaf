//! `add A B …`: element-wise sum of two or more tensors of the same shape (residual joins).
//!
//! y = Σ_k x_k. Cost: (k − 1) additions per element, counted as zero MACs.

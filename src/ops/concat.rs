//! `concat A B …`: concatenation along the channel axis (axis 1).
//!
//! All inputs must agree on every other axis. No parameters, no MACs (a copy).

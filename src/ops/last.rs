//! `last`: the last time step of a sequence, [N, T, H] → [N, H].

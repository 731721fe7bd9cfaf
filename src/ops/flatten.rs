//! `flatten`: [N, C, H, W] → [N, C·H·W]. No parameters, no cost (a view).

//! `last`: the last time step of a sequence, [N, T, H] → [N, H].

pub fn shape(x: &[u64]) -> Result<super::shape::Dims, super::shape::ShapeError> {
    super::shape::need_rank(x, &[2], "a sequence T×H", "last")?;
    Ok(vec![x[1]])
}

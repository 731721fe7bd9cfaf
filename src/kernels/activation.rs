//! Element-wise activations. Forward `y = f(x)`; backward `dx = dy · f'(·)`.
//! ReLU `max(x, 0)`, `f' = [x > 0]`; leaky ReLU `x` if `x > 0` else `slope·x`,
//! `f' = 1 or slope` (decided from the saved input `x`); tanh `f' = 1 − y²` and
//! sigmoid `f' = y(1 − y)` (from the saved output `y`); GELU `x·Φ(x)`,
//! `f' = Φ(x) + x·φ(x)` with `Φ(x) = ½(1 + erf(x/√2))`, `φ(x) = e^{−x²/2}/√(2π)` (from the saved
//! input, computed in f64); SiLU `x·σ(x)`, `f' = σ(x)(1 + x(1 − σ(x)))` (from the saved input).

use super::Float;
use crate::ops::activation::Activation;

pub fn forward<T: Float>(a: &Activation, x: &[T], y: &mut [T]) {
    match a {
        Activation::Relu => super::vectorised(
            #[inline(always)]
            || y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > T::ZERO { x } else { T::ZERO }),
        ),
        Activation::LeakyRelu { slope } => {
            let s = T::from_f64(*slope);
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > T::ZERO { x } else { s * x })
        }
        Activation::Tanh => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.tanh()),
        Activation::Sigmoid => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.sigmoid()),
        Activation::Gelu => y.iter_mut().zip(x).for_each(|(y, &x)| *y = T::from_f64(gelu(x.to_f64()))),
        Activation::Silu => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * x.sigmoid()),
    }
}

/// `x` is the forward input, `y` the forward output.
pub fn backward<T: Float>(a: &Activation, x: &[T], y: &[T], dy: &[T], dx: &mut [T]) {
    match a {
        Activation::Relu => super::vectorised(
            #[inline(always)]
            || {
                for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                    *d = if x > T::ZERO { g } else { T::ZERO };
                }
            },
        ),
        Activation::LeakyRelu { slope } => {
            let s = T::from_f64(*slope);
            for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                *d = if x > T::ZERO { g } else { s * g };
            }
        }
        Activation::Tanh => {
            for ((d, &g), &y) in dx.iter_mut().zip(dy).zip(y) {
                *d = g * (T::ONE - y * y);
            }
        }
        Activation::Sigmoid => {
            for ((d, &g), &y) in dx.iter_mut().zip(dy).zip(y) {
                *d = g * y * (T::ONE - y);
            }
        }
        Activation::Gelu => {
            for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                *d = g * T::from_f64(gelu_derivative(x.to_f64()));
            }
        }
        Activation::Silu => {
            for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                let s = x.sigmoid();
                *d = g * s * (T::ONE + x * (T::ONE - s));
            }
        }
    }
}

/// Φ(x), the standard normal distribution function.
fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

fn gelu(x: f64) -> f64 {
    x * normal_cdf(x)
}

fn gelu_derivative(x: f64) -> f64 {
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    normal_cdf(x) + x * pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_closed_form_values_and_finite_differences() {
        // Φ(1) = 0.841344746…, so gelu(1) = 0.841344746, gelu(−1) = −0.158655254.
        assert!((gelu(1.0) - 0.841_344_746_068_543).abs() < 1e-12);
        assert!((gelu(-1.0) + 0.158_655_253_931_457).abs() < 1e-12);
        assert_eq!(gelu(0.0), 0.0);
        for &x in &[-3.0, -0.7, 0.0, 0.2, 1.5, 4.0] {
            let h = 1e-6;
            let numeric = (gelu(x + h) - gelu(x - h)) / (2.0 * h);
            assert!((numeric - gelu_derivative(x)).abs() < 1e-8, "x = {x}");
        }
    }
}

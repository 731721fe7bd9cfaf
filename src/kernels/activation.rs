//! Element-wise activations. Forward `y = f(x)`; backward `dx = dy · f'(·)`.
//! ReLU `max(x, 0)`, `f' = [x > 0]`; leaky ReLU `x` if `x > 0` else `slope·x`,
//! `f' = 1 or slope` (decided from the saved input `x`); tanh `f' = 1 − y²` and
//! sigmoid `f' = y(1 − y)` (from the saved output `y`).

use super::Float;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Relu,
    LeakyRelu(f32),
    Tanh,
    Sigmoid,
}

pub fn forward<T: Float>(a: Act, x: &[T], y: &mut [T]) {
    match a {
        Act::Relu => y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > T::ZERO { x } else { T::ZERO }),
        Act::LeakyRelu(s) => {
            let s = T::from_f32(s);
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > T::ZERO { x } else { s * x })
        }
        Act::Tanh => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.tanh()),
        Act::Sigmoid => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.sigmoid()),
    }
}

/// `x` is the forward input, `y` the forward output.
pub fn backward<T: Float>(a: Act, x: &[T], y: &[T], dy: &[T], dx: &mut [T]) {
    match a {
        Act::Relu => {
            for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                *d = if x > T::ZERO { g } else { T::ZERO };
            }
        }
        Act::LeakyRelu(s) => {
            let s = T::from_f32(s);
            for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                *d = if x > T::ZERO { g } else { s * g };
            }
        }
        Act::Tanh => {
            for ((d, &g), &y) in dx.iter_mut().zip(dy).zip(y) {
                *d = g * (T::ONE - y * y);
            }
        }
        Act::Sigmoid => {
            for ((d, &g), &y) in dx.iter_mut().zip(dy).zip(y) {
                *d = g * y * (T::ONE - y);
            }
        }
    }
}

//! `conv OUT K×K [stride=S] [pad=P] [dilation=D] [groups=G] [bias=false]`: 2-D convolution.
//!
//! y[n,o,i,j] = b[o] + Σ_{c∈group(o), u<kh, v<kw} W[o,c,u,v] · x[n, c, i·s_h + u·d_h − p_h, j·s_w + v·d_w − p_w]
//! (zero outside the input). Output size per axis: ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1.
//! Weight shape [O, C/G, kh, kw], bias [O]. Forward MACs per sample: O·Ho·Wo·(C/G)·kh·kw.

use crate::args::Args;
use crate::param::{Init, ParamSpec, VarianceNorm};
use serde::Serialize;

/// Settings of the weights when the line sets none (`init=`, `lr_mult=`, `decay_mult=`).
pub const DEFAULT_WEIGHT: ParamSpec = ParamSpec { init: Init::Xavier { norm: VarianceNorm::FanIn }, lr_mult: 1.0, decay_mult: 1e+00 };
/// Settings of the bias when the line sets none (`bias_init=`, `bias_lr_mult=`, `bias_decay_mult=`).
pub const DEFAULT_BIAS: ParamSpec = ParamSpec { init: Init::Constant { value: 0.0 }, lr_mult: 1.0, decay_mult: 0e+00 };

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conv {
    pub out_channels: u64,
    pub kernel: [u64; 2],
    pub stride: [u64; 2],
    pub padding: [u64; 2],
    pub dilation: [u64; 2],
    pub groups: u64,
    pub bias: bool,
}

impl Conv {
    pub fn parse(a: &mut Args) -> Option<Conv> {
        let out = a.required("number of output channels", "conv 16 5x5").and_then(|v| a.as_uint(v, 1));
        let kernel = a.required("kernel size", "conv 16 5x5").and_then(|v| a.as_pair(v, 1));
        let stride = a.kw_pair("stride", 1).unwrap_or([1, 1]);
        let padding = a.kw_pair("pad", 0).unwrap_or([0, 0]);
        let dilation = a.kw_pair("dilation", 1).unwrap_or([1, 1]);
        let groups = a.kw_uint("groups", 1).unwrap_or(1);
        let bias = a.kw_bool("bias").unwrap_or(true);
        Some(Conv { out_channels: out?, kernel: kernel?, stride, padding, dilation, groups, bias })
    }
}

use super::shape::{count, need_rank, show, Cost, Dims, ParamShapes, ShapeError};

impl Conv {
    pub fn shape(&self, x: &[u64]) -> Result<Dims, ShapeError> {
        need_rank(x, &[3], "a C×H×W input", "conv")?;
        let (c, g) = (x[0], self.groups);
        if !c.is_multiple_of(g) || !self.out_channels.is_multiple_of(g) {
            return Err(ShapeError::new(
                format!("groups={g} must divide the input channels ({c}) and the output channels ({})", self.out_channels),
                format!("{g} groups"),
            )
            .code("E0212")
            .help("choose groups dividing both channel counts"));
        }
        let mut out = vec![self.out_channels];
        for (axis, name) in [(0usize, "height"), (1, "width")] {
            let len = x[axis + 1];
            match crate::geometry::conv_out(
                len as usize,
                self.kernel[axis] as usize,
                self.stride[axis] as usize,
                self.padding[axis] as usize,
                self.dilation[axis] as usize,
            ) {
                Some(o) => out.push(o as u64),
                None => {
                    let span = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
                    return Err(ShapeError::new(
                        format!("the conv window ({span} along the {name}) is larger than its input {} padded to {}", show(x), len + 2 * self.padding[axis]),
                        "window larger than the input",
                    )
                    .code("E0211")
                    .help("use a smaller kernel, add padding (`pad=`), or remove a pooling layer before it"));
                }
            }
        }
        Ok(out)
    }

    pub fn params(&self, x: &[u64]) -> ParamShapes {
        let c = x.first().copied().unwrap_or(0) / self.groups.max(1);
        ParamShapes {
            weights: vec![("weight", vec![self.out_channels, c, self.kernel[0], self.kernel[1]])],
            biases: if self.bias { vec![("bias", vec![self.out_channels])] } else { vec![] },
        }
    }

    pub fn cost(&self, x: &[u64], out: &[u64]) -> Cost {
        let per_out = x[0] / self.groups.max(1) * self.kernel[0] * self.kernel[1];
        let macs = count(out) * per_out;
        Cost { forward_macs: macs, backward_input_macs: macs, backward_weight_macs: macs, kept: count(x), ..Cost::default() }
    }
}

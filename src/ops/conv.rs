//! `conv OUT K×K [stride=S] [pad=P] [dilation=D] [groups=G] [bias=false]`: 2-D convolution.
//!
//! y[n,o,i,j] = b[o] + Σ_{c∈group(o), u<kh, v<kw} W[o,c,u,v] · x[n, c, i·s_h + u·d_h − p_h, j·s_w + v·d_w − p_w]
//! (zero outside the input). Output size per axis: ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1.
//! Weight shape [O, C/G, kh, kw], bias [O]. Forward MACs per sample: O·Ho·Wo·(C/G)·kh·kw.

use crate::spec::args::Args;
use serde::Serialize;

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

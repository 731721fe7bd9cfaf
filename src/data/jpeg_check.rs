//! A structural check of a baseline JPEG's entropy-coded data.
//!
//! Decoders (like browsers and libjpeg) do not stop at damaged scan data: a bad Huffman code or
//! a scan that ends early becomes a warning and a grey or smeared block, and the image "decodes".
//! A training set must not silently hold such images, so before decoding, [`check`] walks every
//! scan of a baseline (sequential, Huffman) JPEG: every code must exist in its table, no block may
//! hold more than 64 coefficients, restart markers must come where the restart interval puts them,
//! and each scan must end exactly where its data ends (byte padding aside). Flipped bytes make
//! the walk lose step with the data, which one of these checks catches. Progressive and
//! arithmetic-coded files are not walked (the decoder's own checks apply).
//!
//! Invariant: no input makes this code panic or loop without consuming input.

/// Why a file is not a sound baseline JPEG, in words.
pub type Problem = String;

struct Huffman {
    /// Per code length 1..=16: (first code, number of codes, index of its first symbol).
    lengths: [(u32, u32, usize); 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn parse(counts: &[u8], symbols: &[u8]) -> Huffman {
        let mut lengths = [(0u32, 0u32, 0usize); 17];
        let (mut code, mut k) = (0u32, 0usize);
        for l in 1..=16 {
            let n = u32::from(counts[l - 1]);
            lengths[l] = (code, n, k);
            code = (code + n) << 1;
            k += n as usize;
        }
        Huffman { lengths, symbols: symbols.to_vec() }
    }
}

#[derive(Clone, Copy)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    n: u32,
    /// Set when a marker (not a stuffed 0xFF 0x00) was reached: no more data in this interval.
    at_marker: bool,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, Problem> {
        if self.n == 0 {
            if self.at_marker || self.pos >= self.data.len() {
                return Err("the scan data ends before its last block".into());
            }
            let b = self.data[self.pos];
            if b == 0xFF {
                match self.data.get(self.pos + 1) {
                    Some(0x00) => self.pos += 2,
                    _ => {
                        self.at_marker = true;
                        return Err("the scan data ends before its last block".into());
                    }
                }
            } else {
                self.pos += 1;
            }
            self.acc = u32::from(b);
            self.n = 8;
        }
        self.n -= 1;
        Ok((self.acc >> self.n) & 1)
    }

    fn skip(&mut self, count: u32) -> Result<(), Problem> {
        for _ in 0..count {
            self.bit()?;
        }
        Ok(())
    }

    fn decode(&mut self, t: &Huffman) -> Result<u8, Problem> {
        let mut code = 0u32;
        for l in 1..=16 {
            code = (code << 1) | self.bit()?;
            let (first, n, k) = t.lengths[l];
            if n > 0 && code >= first && code < first + n {
                return t.symbols.get(k + (code - first) as usize).copied().ok_or_else(|| "a Huffman table is short".into());
            }
        }
        Err("a bad Huffman code in the scan data".into())
    }

    /// Drops the padding bits of the current byte.
    fn align(&mut self) {
        self.n = 0;
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(*b.get(i)?) << 8 | usize::from(*b.get(i + 1)?))
}

/// Walks the scans of `bytes` (a whole JPEG file). `Ok` for a sound baseline file and for files
/// this check does not cover (progressive, arithmetic coding); `Err` says what is wrong.
pub fn check(bytes: &[u8]) -> Result<(), Problem> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("no JPEG start marker".into());
    }
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut comps: Vec<Component> = vec![];
    let (mut width, mut height) = (0usize, 0usize);
    let mut restart = 0usize;
    let mut i = 2;
    let mut frame = false;
    loop {
        // Next marker (fill bytes 0xFF may repeat).
        while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&m)) = (bytes.get(i), bytes.get(i + 1)) else {
            return Err(format!("expected a marker at byte offset {i}"));
        };
        i += 2;
        match m {
            0xD9 => return if frame { Ok(()) } else { Err("no frame header before the end marker".into()) },
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let len = u16_at(bytes, i).ok_or("a marker segment is cut off")?;
        if len < 2 || i + len > bytes.len() {
            return Err(format!("a marker segment at byte offset {i} runs past the end of the file"));
        }
        let seg = &bytes[i + 2..i + len];
        i += len;
        match m {
            // Baseline and extended sequential, Huffman coded.
            0xC0 | 0xC1 => {
                if seg.len() < 6 {
                    return Err("a short frame header".into());
                }
                height = u16_at(seg, 1).unwrap_or(0);
                width = u16_at(seg, 3).unwrap_or(0);
                let n = usize::from(seg[5]);
                if seg.len() < 6 + 3 * n || n == 0 || width == 0 || height == 0 {
                    return Err("a bad frame header".into());
                }
                comps = (0..n)
                    .map(|c| {
                        let s = &seg[6 + 3 * c..];
                        Component { id: s[0], h: usize::from(s[1] >> 4).max(1), v: usize::from(s[1] & 15).max(1) }
                    })
                    .collect();
                frame = true;
            }
            // Progressive, lossless, arithmetic coding: not covered here.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(()),
            0xC4 => {
                let mut s = seg;
                while s.len() >= 17 {
                    let (class, id) = (s[0] >> 4, usize::from(s[0] & 15));
                    let total: usize = s[1..17].iter().map(|&c| usize::from(c)).sum();
                    if s.len() < 17 + total || id > 3 {
                        return Err("a bad Huffman table".into());
                    }
                    let t = Huffman::parse(&s[1..17], &s[17..17 + total]);
                    if class == 0 {
                        dc[id] = Some(t);
                    } else {
                        ac[id] = Some(t);
                    }
                    s = &s[17 + total..];
                }
            }
            0xDD => restart = u16_at(seg, 0).unwrap_or(0),
            0xDA => {
                if !frame {
                    return Err("a scan before the frame header".into());
                }
                let n = usize::from(*seg.first().ok_or("a short scan header")?);
                if seg.len() < 1 + 2 * n + 3 || n == 0 {
                    return Err("a bad scan header".into());
                }
                let mut scan = vec![];
                for k in 0..n {
                    let (id, tables) = (seg[1 + 2 * k], seg[2 + 2 * k]);
                    let c = *comps.iter().find(|c| c.id == id).ok_or("a scan names an unknown component")?;
                    let (d, a) = (usize::from(tables >> 4), usize::from(tables & 15));
                    if d > 3 || a > 3 || dc[d].is_none() || ac[a].is_none() {
                        return Err("a scan uses a Huffman table that is not defined".into());
                    }
                    scan.push((c, d, a));
                }
                i = walk_scan(bytes, i, &scan, &comps, width, height, restart, &dc, &ac)?;
            }
            _ => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_scan(
    bytes: &[u8],
    start: usize,
    scan: &[(Component, usize, usize)],
    comps: &[Component],
    width: usize,
    height: usize,
    restart: usize,
    dc: &[Option<Huffman>; 4],
    ac: &[Option<Huffman>; 4],
) -> Result<usize, Problem> {
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    // Blocks per MCU and the number of MCUs.
    let (mcus, per_mcu): (usize, Vec<(usize, usize, usize)>) = if scan.len() == 1 {
        let (c, d, a) = scan[0];
        let w = (width * c.h).div_ceil(hmax).div_ceil(8);
        let h = (height * c.v).div_ceil(vmax).div_ceil(8);
        (w * h, vec![(1, d, a)])
    } else {
        let mcus = width.div_ceil(8 * hmax) * height.div_ceil(8 * vmax);
        (mcus, scan.iter().map(|&(c, d, a)| (c.h * c.v, d, a)).collect())
    };
    if mcus > 1 << 24 {
        return Err("an image too large to check".into());
    }
    let mut bits = Bits { data: &bytes[start..], pos: 0, acc: 0, n: 0, at_marker: false };
    for m in 0..mcus {
        if restart > 0 && m > 0 && m % restart == 0 {
            bits.align();
            let p = bits.pos;
            match (bits.data.get(p), bits.data.get(p + 1)) {
                (Some(0xFF), Some(0xD0..=0xD7)) => bits.pos += 2,
                _ => return Err(format!("a restart marker is missing after block row {m}")),
            }
            bits.at_marker = false;
        }
        for &(blocks, d, a) in &per_mcu {
            let (Some(dct), Some(act)) = (&dc[d], &ac[a]) else { return Err("a missing Huffman table".into()) };
            for _ in 0..blocks {
                let s = bits.decode(dct)?;
                if s > 16 {
                    return Err("a bad DC difference in the scan data".into());
                }
                bits.skip(u32::from(s))?;
                let mut k = 1;
                while k < 64 {
                    let rs = bits.decode(act)?;
                    let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
                    if s == 0 {
                        if r != 15 {
                            break;
                        }
                        k += 16;
                    } else {
                        k += r;
                        if k > 63 {
                            return Err("a block with more than 64 coefficients in the scan data".into());
                        }
                        bits.skip(s)?;
                        k += 1;
                    }
                }
                if k > 64 {
                    return Err("a block with more than 64 coefficients in the scan data".into());
                }
            }
        }
    }
    bits.align();
    // The scan must end here: the next bytes are a marker (not more entropy-coded data).
    let end = start + bits.pos;
    match (bytes.get(end), bytes.get(end + 1)) {
        (Some(0xFF), Some(m)) if *m != 0x00 => Ok(end),
        _ => Err(format!("the scan data goes on after its last block (byte offset {end}): it is damaged")),
    }
}

//! TensorBoard event files beside `metrics.csv`, so `tensorboard --logdir runs` shows every run.
//!
//! Format (TensorFlow's `TFRecord` of `Event` protocol buffers, written by hand — the messages
//! are small and fixed): each record is `u64 length (LE) · u32 masked CRC-32C of the length ·
//! payload · u32 masked CRC-32C of the payload`, the mask being `((crc >> 15) | (crc << 17)) +
//! 0xa282ead8`. The payloads used:
//! - `Event { wall_time = 1: double, step = 2: int64, file_version = 3: string }` — the first
//!   record, `"brain.Event:2"`;
//! - `Event { …, summary = 5: Summary { value = 1: Value { tag = 1: string, simple_value = 2: float } } }`
//!   — one scalar per metric (`train/loss`, `test/loss`, `test/accuracy`, `lr`, `img_per_s`);
//! - `Event { …, summary = 5: Summary { value = 1: Value { tag = 1, metadata = 9: { plugin_data = 1:
//!   { plugin_name = 1: "text" } }, tensor = 8: TensorProto { dtype = 1: DT_STRING (7),
//!   tensor_shape = 2: {}, string_val = 8: bytes } } } }` — the hyper-parameters as a Markdown
//!   table (TensorBoard's Text tab);
//! - `Event { …, session_log = 6: SessionLog { status = 1: START (1) } }` at the step a resumed run
//!   continues from: TensorBoard then drops what earlier files logged past that step, as the
//!   metrics file does.

use super::error::RunError;
use super::metrics::Row;
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), bitwise over a table built once.
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

// ---- protocol-buffer encoding of the few fields used -------------------------------------------

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, ((field as u64) << 3) | wire as u64);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn event(wall_time: f64, step: u64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = vec![];
    key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut e, 2, 0);
    varint(&mut e, step);
    body(&mut e);
    e
}

fn scalar_value(tag: &str, v: f32) -> Vec<u8> {
    let mut value = vec![];
    bytes_field(&mut value, 1, tag.as_bytes());
    key(&mut value, 2, 5);
    value.extend_from_slice(&v.to_le_bytes());
    value
}

fn text_value(tag: &str, text: &str) -> Vec<u8> {
    let mut plugin = vec![];
    bytes_field(&mut plugin, 1, b"text");
    let mut metadata = vec![];
    bytes_field(&mut metadata, 1, &plugin);
    let mut tensor = vec![];
    key(&mut tensor, 1, 0);
    varint(&mut tensor, 7); // DT_STRING
    bytes_field(&mut tensor, 2, &[]); // a scalar
    bytes_field(&mut tensor, 8, text.as_bytes());
    let mut value = vec![];
    bytes_field(&mut value, 1, tag.as_bytes());
    bytes_field(&mut value, 9, &metadata);
    bytes_field(&mut value, 8, &tensor);
    value
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Appends events to one `events.out.tfevents.*` file of a run folder.
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl EventWriter {
    /// A new event file in `dir` (one per session: a resumed run adds a file and marks the step
    /// it continues from, so TensorBoard drops the first session's rows past it).
    pub fn create(dir: &Path, resumed_at: Option<u64>) -> Result<EventWriter, RunError> {
        let secs = now() as u64;
        let path = dir.join(format!("events.out.tfevents.{secs}.expc.{}", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| RunError::io(&path, "create", e))?;
        let mut w = EventWriter { path, file };
        w.record(&event(now(), 0, |e| bytes_field(e, 3, b"brain.Event:2")))?;
        if let Some(step) = resumed_at {
            let mut log = vec![];
            key(&mut log, 1, 0);
            varint(&mut log, 1); // SessionLog.START
            w.record(&event(now(), step, |e| bytes_field(e, 6, &log)))?;
        }
        Ok(w)
    }

    fn record(&mut self, payload: &[u8]) -> Result<(), RunError> {
        let len = (payload.len() as u64).to_le_bytes();
        let mut r = Vec::with_capacity(payload.len() + 16);
        r.extend_from_slice(&len);
        r.extend_from_slice(&masked_crc(&len).to_le_bytes());
        r.extend_from_slice(payload);
        r.extend_from_slice(&masked_crc(payload).to_le_bytes());
        self.file.write_all(&r).and_then(|()| self.file.flush()).map_err(|e| RunError::io(&self.path, "write", e))
    }

    /// The scalars of one metrics row.
    pub fn row(&mut self, row: &Row) -> Result<(), RunError> {
        let mut summary = vec![];
        let mut add = |tag: &str, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                bytes_field(&mut summary, 1, &scalar_value(tag, v as f32));
            }
        };
        add("train/loss", row.train_loss);
        add("test/loss", row.test_loss);
        add("test/accuracy", row.test_accuracy);
        add("lr", Some(row.lr));
        add("img_per_s", row.img_per_s);
        self.record(&event(now(), row.iteration, |e| bytes_field(e, 5, &summary)))
    }

    /// The hyper-parameters, as a Markdown table under the tag `hparams`.
    pub fn hyper_parameters(&mut self, pairs: &[(String, String)]) -> Result<(), RunError> {
        let mut text = String::from("| setting | value |\n|---|---|\n");
        for (k, v) in pairs {
            text.push_str(&format!("| {} | {} |\n", k.replace('|', "\\|"), v.replace('|', "\\|")));
        }
        let mut summary = vec![];
        bytes_field(&mut summary, 1, &text_value("hparams", &text));
        self.record(&event(now(), 0, |e| bytes_field(e, 5, &summary)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_encode_like_protobuf() {
        let mut v = vec![];
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }
}

//! The protocol-buffer wire format, for the few ONNX messages the exporter writes.
//!
//! A message is a sequence of fields `key = (number << 3) | wire_type` followed by the value:
//! wire type 0 a varint (int32/int64/enum), 1 eight little-endian bytes, 2 a varint length and
//! that many bytes (strings, bytes, nested messages), 5 four little-endian bytes (float).
//! Repeated scalars are written one field per element (proto2's unpacked form, which every
//! parser reads). Field numbers are those of `onnx.proto` (ONNX IR version 8).

/// One message being written.
#[derive(Default, Clone, Debug)]
pub struct Message {
    bytes: Vec<u8>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Message {
    pub fn new() -> Message {
        Message::default()
    }

    fn key(&mut self, field: u32, wire: u8) {
        varint(&mut self.bytes, ((field as u64) << 3) | wire as u64);
    }

    /// An int32, int64 or enum field (negative values as ten-byte two's complement, as protobuf does).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        varint(&mut self.bytes, v as u64);
        self
    }

    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        varint(&mut self.bytes, b.len() as u64);
        self.bytes.extend_from_slice(b);
        self
    }

    pub fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    pub fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.bytes)
    }

    pub fn ints(&mut self, field: u32, v: &[i64]) -> &mut Self {
        for &x in v {
            self.int(field, x);
        }
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_protobuf_reference_examples() {
        // From the protobuf encoding guide: field 1 = 150 is 08 96 01; field 2 = "testing".
        let mut m = Message::new();
        m.int(1, 150).string(2, "testing");
        assert_eq!(m.into_bytes(), [0x08, 0x96, 0x01, 0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
        let mut m = Message::new();
        m.int(3, -1).float(2, 1.0);
        let b = m.into_bytes();
        assert_eq!(&b[..11], &[0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(&b[11..], &[0x15, 0x00, 0x00, 0x80, 0x3f]);
    }
}

//! The protobuf wire form: a message is a sequence of (field number, wire type,
//! value) records. This reads the records of one message level; what they mean is
//! the transcoder's business. Groups (wire types 3 and 4) are not used by
//! Kubernetes and are refused.

/// One record's value, as the wire has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    /// Length-delimited: a string, bytes, a message or a packed run of scalars.
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub fn wire_type_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "64-bit",
            WireValue::Bytes(_) => "length-delimited",
            WireValue::Fixed32(_) => "32-bit",
        }
    }
}

/// The records of one message, in wire order.
pub struct Records<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Records<'a> {
    pub fn new(bytes: &'a [u8]) -> Records<'a> {
        Records { bytes, position: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .position
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("{n} bytes announced at offset {} but the message ends", self.position))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    pub fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self
                .bytes
                .get(self.position)
                .ok_or_else(|| format!("a varint is cut off at offset {}", self.position))?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!(
            "a varint longer than 10 bytes ends at offset {}",
            self.position
        ))
    }

    fn record(&mut self) -> Result<(u32, WireValue<'a>), String> {
        let at = self.position;
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=0x1fff_ffff).contains(n))
            .ok_or_else(|| format!("field number {} at offset {at} is out of range", key >> 3))?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let length = usize::try_from(self.varint()?).map_err(|_| "a length does not fit in memory")?;
                WireValue::Bytes(self.take(length)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            other => {
                return Err(format!(
                    "field {number} at offset {at} has wire type {other}, which is not supported"
                ));
            }
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u32, WireValue<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.bytes.len() {
            return None;
        }
        let record = self.record();
        if record.is_err() {
            self.position = self.bytes.len(); // nothing after a broken record can be read
        }
        Some(record)
    }
}

#[cfg(test)]
pub mod testing {
    //! Writing the wire form, for tests that build their own bodies.

    pub fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// A varint record.
    pub fn int(number: u32, value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(number) << 3, &mut out);
        varint(value as u64, &mut out);
        out
    }

    /// A length-delimited record (a string, bytes or a message).
    pub fn bytes(number: u32, value: impl AsRef<[u8]>) -> Vec<u8> {
        let value = value.as_ref();
        let mut out = Vec::new();
        varint((u64::from(number) << 3) | 2, &mut out);
        varint(value.len() as u64, &mut out);
        out.extend_from_slice(value);
        out
    }

    /// A message made of records.
    pub fn message(records: &[Vec<u8>]) -> Vec<u8> {
        records.concat()
    }

    /// A whole request body: the magic bytes, then `runtime.Unknown` (1 typeMeta
    /// {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType) around `raw`.
    pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = message(&[bytes(1, api_version), bytes(2, kind)]);
        let mut out = b"k8s\0".to_vec();
        out.extend(message(&[
            bytes(1, type_meta),
            bytes(2, raw),
            bytes(3, ""),
            bytes(4, ""),
        ]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, String> {
        Records::new(bytes).collect()
    }

    #[test]
    fn reads_each_wire_type() {
        let mut bytes = message(&[int(1, 150), bytes(2, "hi"), int(3, -1)]);
        bytes.extend([(4 << 3) | 1, 1, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend([(5 << 3) | 5, 2, 0, 0, 0]);
        assert_eq!(
            read(&bytes).unwrap(),
            [
                (1, WireValue::Varint(150)),
                (2, WireValue::Bytes(b"hi")),
                (3, WireValue::Varint(u64::MAX)),
                (4, WireValue::Fixed64(1)),
                (5, WireValue::Fixed32(2)),
            ]
        );
        // The textbook example: field 1, varint 150.
        assert_eq!(read(&[0x08, 0x96, 0x01]).unwrap(), [(1, WireValue::Varint(150))]);
    }

    #[test]
    fn names_what_is_broken() {
        let cut = read(&[0x12, 0x05, b'a']).unwrap_err();
        assert!(cut.contains("5 bytes announced"), "{cut}");
        let varint = read(&[0x08, 0x80]).unwrap_err();
        assert!(varint.contains("cut off"), "{varint}");
        let long = read(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap_err();
        assert!(long.contains("longer than 10 bytes"), "{long}");
        let group = read(&[0x0b]).unwrap_err();
        assert!(group.contains("wire type 3"), "{group}");
        let zero = read(&[0x00, 0x01]).unwrap_err();
        assert!(zero.contains("field number 0"), "{zero}");
        let fixed = read(&[0x09, 1, 2]).unwrap_err();
        assert!(fixed.contains("8 bytes announced"), "{fixed}");
    }
}

//! SPDY/3 header blocks: name/value pairs, compressed with one zlib stream per
//! direction for the whole connection (each block ends with a sync flush), primed
//! with the dictionary the SPDY/3 draft defines (section 2.6.10.1).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Header names and values the dictionary holds, each written as a 32-bit length and
/// its bytes.
const DICTIONARY_WORDS: [&str; 66] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
    // The last word runs straight into the text below, without a length.
    "",
];

/// The dictionary's tail: status codes, reason phrases, dates and common values.
const DICTIONARY_TEXT: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 dictionary, 1423 bytes.
pub fn dictionary() -> Vec<u8> {
    let mut dictionary = Vec::with_capacity(1423);
    for word in DICTIONARY_WORDS.iter().filter(|w| !w.is_empty()) {
        dictionary.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dictionary.extend_from_slice(word.as_bytes());
    }
    dictionary.extend_from_slice(DICTIONARY_TEXT.as_bytes());
    dictionary
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("a header block does not inflate: {0}")]
    Inflate(String),
    #[error("a header block is malformed")]
    Malformed,
}

/// One direction's compressor and the other's decompressor, for one connection.
pub struct HeaderCodec {
    dictionary: Vec<u8>,
    compress: Compress,
    decompress: Decompress,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        HeaderCodec::new()
    }
}

impl HeaderCodec {
    pub fn new() -> HeaderCodec {
        let dictionary = dictionary();
        let mut compress = Compress::new(Compression::default(), true);
        compress
            .set_dictionary(&dictionary)
            .expect("a fresh zlib stream takes a dictionary");
        HeaderCodec {
            dictionary,
            compress,
            decompress: Decompress::new(true),
        }
    }

    /// The compressed block for `headers` (lower-case names, as SPDY/3 wants).
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            plain.extend_from_slice(&(name.len() as u32).to_be_bytes());
            plain.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
            plain.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = &plain[..];
        loop {
            out.reserve(plain.len() + 64);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate into a growing buffer does not fail");
            let consumed = (self.compress.total_in() - before) as usize;
            input = &input[consumed..];
            // A sync flush is complete once input is used up and the output has room left.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// The pairs of a compressed block; a value holding NULs is several values.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, HeaderError> {
        let plain = self.inflate(block)?;
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], HeaderError> {
            let bytes = plain.get(at..at + n).ok_or(HeaderError::Malformed)?;
            at += n;
            Ok(bytes)
        };
        let read_u32 = |bytes: &[u8]| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let count = read_u32(take(4)?);
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let name_len = read_u32(take(4)?);
            let name = String::from_utf8_lossy(take(name_len)?).to_ascii_lowercase();
            let value_len = read_u32(take(4)?);
            let value = String::from_utf8_lossy(take(value_len)?).into_owned();
            for value in value.split('\0') {
                headers.push((name.clone(), value.to_owned()));
            }
        }
        Ok(headers)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let before = self.decompress.total_in();
            let result = self.decompress.decompress_vec(input, &mut out, FlushDecompress::Sync);
            let consumed = (self.decompress.total_in() - before) as usize;
            input = &input[consumed..];
            match result {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) if input.is_empty() && out.len() < out.capacity() => return Ok(out),
                Ok(Status::BufError) if out.len() < out.capacity() => {
                    return Err(HeaderError::Inflate("it ends early".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| HeaderError::Inflate(e.to_string()))?;
                }
                Err(e) => return Err(HeaderError::Inflate(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_has_the_specs_length_and_ends() {
        let dictionary = dictionary();
        assert_eq!(dictionary.len(), 1423);
        assert_eq!(&dictionary[..11], b"\0\0\0\x07options");
        assert!(dictionary.ends_with(b",enq=0."));
    }

    #[test]
    fn blocks_round_trip_through_one_stream_each_way() {
        // Two codecs stand for the two ends: what one encodes the other decodes, block
        // after block, each depending on the stream state the earlier ones left.
        let mut client = HeaderCodec::new();
        let mut server = HeaderCodec::new();
        for request_id in 0..3 {
            let id = request_id.to_string();
            let block = client.encode(&[("streamType", "data"), ("port", "8080"), ("requestID", &id)]);
            let headers = server.decode(&block).expect("decodes");
            assert_eq!(
                headers,
                [
                    ("streamtype".to_string(), "data".to_string()),
                    ("port".into(), "8080".into()),
                    ("requestid".into(), id.clone())
                ]
            );
        }
        let reply = server.encode(&[]);
        assert_eq!(client.decode(&reply).expect("decodes"), []);
    }

    #[test]
    fn nul_separated_values_are_several() {
        let mut one = HeaderCodec::new();
        let mut other = HeaderCodec::new();
        let block = one.encode(&[("x-stream-protocol-version", "a\0b")]);
        let headers = other.decode(&block).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].1, "b");
    }
}

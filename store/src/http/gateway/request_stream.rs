//! A streaming call's requests: JSON objects one after another in a request body
//! that may still be arriving (`{"create_request":{...}}{"cancel_request":{...}}`,
//! with or without whitespace between them), read as each one completes.

use std::marker::PhantomData;

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::http::json::{self, JsonError, JsonMessage};

pub struct RequestStream<M> {
    body: Incoming,
    buffered: BytesMut,
    is_body_done: bool,
    limit_bytes: usize,
    _message: PhantomData<M>,
}

impl<M: JsonMessage> RequestStream<M> {
    pub fn new(body: Incoming, limit_bytes: usize) -> Self {
        Self {
            body,
            buffered: BytesMut::new(),
            is_body_done: false,
            limit_bytes,
            _message: PhantomData,
        }
    }

    /// The next request; `None` once the body has ended. Cancel-safe: only the wait
    /// for the body's next frame suspends, and nothing is lost if it is dropped.
    pub async fn next(&mut self) -> Option<Result<M, JsonError>> {
        loop {
            match self.parse_buffered() {
                Parsed::Message(message) => return Some(message),
                Parsed::Incomplete if self.is_body_done => {
                    if self.buffered.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    self.buffered.clear();
                    return Some(Err(JsonError(
                        "the request body ends in the middle of a JSON object".into(),
                    )));
                }
                Parsed::Incomplete => {}
            }
            if self.buffered.len() > self.limit_bytes {
                self.buffered.clear();
                self.is_body_done = true;
                return Some(Err(JsonError(format!(
                    "a request in the body is larger than {} bytes",
                    self.limit_bytes
                ))));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffered.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    self.is_body_done = true;
                    return Some(Err(JsonError(format!("reading the request body: {e}"))));
                }
                None => self.is_body_done = true,
            }
        }
    }

    fn parse_buffered(&mut self) -> Parsed<M> {
        let mut values = serde_json::Deserializer::from_slice(&self.buffered).into_iter::<Value>();
        match values.next() {
            None => Parsed::Incomplete,
            Some(Ok(value)) => {
                let used = values.byte_offset();
                self.buffered.advance(used);
                Parsed::Message(json::from_value(&value, ""))
            }
            Some(Err(e)) if e.is_eof() => Parsed::Incomplete,
            Some(Err(e)) => {
                // Nothing after a syntax error can be trusted to start a request.
                self.buffered.clear();
                self.is_body_done = true;
                Parsed::Message(Err(JsonError(format!("the request body is not valid JSON: {e}"))))
            }
        }
    }
}

enum Parsed<M> {
    Message(Result<M, JsonError>),
    Incomplete,
}

use std::time::Duration;

use crate::headers::HeaderMap;

/// A downstream request as a client sends it.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: HeaderMap,
    /// Body chunks, delivered to the filter one `on_request_body` call each.
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        let mut headers = HeaderMap::default();
        headers.add(":method", method);
        headers.add(":path", path);
        headers.add(":authority", "edge.test");
        headers.add(":scheme", "http");
        Self {
            headers,
            chunks: Vec::new(),
            trailers: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.replace(name, value);
        self
    }

    /// Another value of `name`, after those already there (a repeated header).
    pub fn add_header(mut self, name: &str, value: &str) -> Self {
        self.headers.add(name, value);
        self
    }

    pub fn authority(self, authority: &str) -> Self {
        self.header(":authority", authority)
    }

    /// The whole body in one chunk.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.chunks = vec![body.into()];
        self
    }

    /// The body in several chunks, as a slow client sends it.
    pub fn chunks<I: IntoIterator<Item = Vec<u8>>>(mut self, chunks: I) -> Self {
        self.chunks = chunks.into_iter().collect();
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .get_or_insert_with(HeaderMap::default)
            .add(name, value);
        self
    }
}

/// What reached the origin: headers as the filter left them, the forwarded body, and for
/// `dispatch_http_call` the cluster it was sent to.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// `None` for the route's upstream, `Some(cluster)` for a `dispatch_http_call`.
    pub cluster: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
    /// Host clock when the origin received it (nanoseconds since the epoch).
    pub at_ns: u64,
}

impl UpstreamRequest {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }

    pub fn path(&self) -> String {
        self.header(":path").unwrap_or_default()
    }

    pub fn method(&self) -> String {
        self.header(":method").unwrap_or_default()
    }
}

/// How an upstream exchange fails instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection is reset after the reply's delay (Envoy: 503, flag UC).
    Reset,
    /// The upstream never answers; the route or call timeout fires (Envoy: 504, flag UT).
    Timeout,
}

/// The origin's scripted answer to one upstream request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    /// Time (host clock) between receiving the request and answering.
    pub delay: Duration,
    pub failure: Option<Failure>,
    /// Split the body into chunks of this size (each an `on_response_body` call).
    pub chunk_size: Option<usize>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: HeaderMap::default(),
            body: Vec::new(),
            trailers: None,
            delay: Duration::ZERO,
            failure: None,
            chunk_size: None,
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::status(200).body(body)
    }

    pub fn reset() -> Self {
        Self {
            failure: Some(Failure::Reset),
            ..Self::status(0)
        }
    }

    pub fn timeout() -> Self {
        Self {
            failure: Some(Failure::Timeout),
            ..Self::status(0)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.add(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .get_or_insert_with(HeaderMap::default)
            .add(name, value);
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn delay_ms(self, millis: u64) -> Self {
        self.delay(Duration::from_millis(millis))
    }

    pub fn chunked(mut self, chunk_size: usize) -> Self {
        self.chunk_size = Some(chunk_size.max(1));
        self
    }

    /// Body chunks as they reach the filter.
    pub(crate) fn body_chunks(&self) -> Vec<Vec<u8>> {
        match self.chunk_size {
            _ if self.body.is_empty() => Vec::new(),
            Some(size) => self.body.chunks(size).map(<[u8]>::to_vec).collect(),
            None => vec![self.body.clone()],
        }
    }
}

/// What the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Headers without the `:status` pseudo-header.
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
    /// The filter (or the host, for a dead VM) answered without the origin.
    pub local_reply: bool,
    /// The stream was reset instead of answered (the body is then empty).
    pub reset: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

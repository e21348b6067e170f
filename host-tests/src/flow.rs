use std::collections::VecDeque;

use crate::headers::HeaderMap;

/// One direction of an HTTP stream as a filter sees it: headers, body chunks still to come,
/// the body the filter is holding, what has passed it, and trailers.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub headers: HeaderMap,
    pub chunks: VecDeque<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
    pub headers_called: bool,
    pub headers_released: bool,
    /// Body the filter has seen and is holding (it returned Pause from a body callback).
    pub buffer: Vec<u8>,
    /// Body that passed the filter.
    pub forwarded: Vec<u8>,
    pub trailers_called: bool,
    pub trailers_released: bool,
}

impl Flow {
    pub fn new(headers: HeaderMap, chunks: Vec<Vec<u8>>, trailers: Option<HeaderMap>) -> Self {
        Self {
            headers,
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            trailers,
            ..Self::default()
        }
    }

    /// Whether the data the filter sees next ends the stream.
    pub fn end_of_stream_after_headers(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }

    /// The filter let everything it holds go (`Continue` or `proxy_continue_stream`).
    pub fn release(&mut self) {
        self.headers_released = true;
        self.forwarded.append(&mut self.buffer);
        if self.trailers_called {
            self.trailers_released = true;
        }
    }

    /// Everything reached the other side of the filter.
    pub fn is_complete(&self) -> bool {
        self.headers_released
            && self.chunks.is_empty()
            && self.buffer.is_empty()
            && (self.trailers.is_none() || self.trailers_released)
    }
}

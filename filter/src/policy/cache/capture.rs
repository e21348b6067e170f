//! Whether the origin's answer to a forwarded request is copied for storing, and whether its
//! `Cache-Status` says `stored` (the explainer asks the same function).

/// What happens to a forwarded request's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureDecision {
    /// Its body is copied as it streams, to be stored at its end.
    pub capture: bool,
    /// Storable, but its `Content-Length` is over `limits.max_entry_bytes`.
    pub too_large: bool,
    /// `Cache-Status` says `stored`: captured, and its length is known (or it has no body).
    pub stored: bool,
}

/// `storable`: the response may be stored (and was not to a HEAD); `content_length`: its
/// `Content-Length`; `max_entry_bytes`: the largest entry; `end_of_stream`: the headers end it.
pub fn capture_decision(
    storable: bool,
    content_length: Option<usize>,
    max_entry_bytes: usize,
    end_of_stream: bool,
) -> CaptureDecision {
    let fits = content_length.is_none_or(|length| length <= max_entry_bytes);
    let capture = storable && fits;
    CaptureDecision {
        capture,
        too_large: storable && !fits,
        stored: capture && (content_length.is_some() || end_of_stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_when_storable_and_within_the_limit() {
        let yes = |length, eos| capture_decision(true, length, 100, eos);
        assert_eq!(
            yes(Some(100), false),
            CaptureDecision {
                capture: true,
                too_large: false,
                stored: true
            }
        );
        assert_eq!(
            yes(Some(101), false),
            CaptureDecision {
                capture: false,
                too_large: true,
                stored: false
            }
        );
        // No length: captured (its size is checked as it streams) but not announced as stored.
        assert_eq!(
            yes(None, false),
            CaptureDecision {
                capture: true,
                too_large: false,
                stored: false
            }
        );
        assert!(yes(None, true).stored);
        assert_eq!(
            capture_decision(false, Some(1), 100, false),
            CaptureDecision {
                capture: false,
                too_large: false,
                stored: false
            }
        );
    }
}

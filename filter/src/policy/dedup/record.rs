//! A delivery's record in shared data, in a bounded slot table (`edge:dedup:<slot>`), and the
//! pure transitions the CAS helper applies: claim, complete, release.

use crate::policy::codec::{ReadError, Reader, Writer};
use crate::policy::hash::fnv1a;

pub const DEDUP_KEY_PREFIX: &str = "edge:dedup:";
const FORMAT_VERSION: u8 = 1;
/// Bodies larger than this are stored LZ4-compressed.
const LZ4_THRESHOLD: usize = 1024;
const MAX_HEADERS: usize = 128;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How many slots an identity may live in (a small set-associative table: a new identity
/// takes a free or expired slot of its set, or the one that expires first, so two live
/// identities rarely evict each other).
pub const WAYS: u64 = 4;

/// The shared-data keys of the slots an identity may live in.
pub fn dedup_keys(id: &str, slots: u64) -> Vec<String> {
    let slots = slots.max(1);
    let base = fnv1a(id);
    (0..WAYS.min(slots))
        .map(|way| {
            format!(
                "{DEDUP_KEY_PREFIX}{}",
                base.wrapping_add(way.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % slots
            )
        })
        .collect()
}

/// Which of an identity's slots to claim: the one holding it, else a free, released or expired
/// one, else the one whose record expires first.
pub fn choose_slot(records: &[Option<Record>], id: &str, now_ms: u64) -> usize {
    let expires = |record: &Option<Record>| match record.as_ref().map(|r| &r.state) {
        None | Some(State::Released) => 0,
        Some(State::InFlight { expires_at_ms, .. })
        | Some(State::Completed { expires_at_ms, .. }) => *expires_at_ms,
    };
    if let Some(own) = records
        .iter()
        .position(|r| r.as_ref().is_some_and(|r| r.id == id))
    {
        return own;
    }
    if let Some(free) = records.iter().position(|r| expires(r) <= now_ms) {
        return free;
    }
    records
        .iter()
        .enumerate()
        .min_by_key(|(_, r)| expires(r))
        .map_or(0, |(index, _)| index)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The first attempt is at the origin. `attempt` names that one attempt (one token per
    /// claim, never per worker): only it may complete or release the record, so an older
    /// attempt of the same identity on the same worker cannot touch a newer one's record.
    InFlight { attempt: u64, expires_at_ms: u64 },
    /// Its result, replayed to duplicates until `expires_at_ms`.
    Completed {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// The result was larger than the replay limit: duplicates get status and headers.
        body_omitted: bool,
        expires_at_ms: u64,
    },
    /// The attempt failed: the next one goes to the origin.
    Released,
}

impl State {
    /// A result to replay until `expires_at_ms`; `body: None` when it was too large to keep
    /// (or cut off): duplicates then get the status and headers only.
    pub fn completed(
        status: u16,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        expires_at_ms: u64,
    ) -> Self {
        Self::Completed {
            status,
            headers,
            body_omitted: body.is_none(),
            body: body.unwrap_or_default(),
            expires_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub body_digest: [u8; 32],
    pub state: State,
}

/// What a request with an identity does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First (or retried after a failure): go to the origin; the record now says in flight.
    Forward,
    /// A duplicate of a completed delivery: replay this.
    Replay(Record),
    /// A duplicate of one in flight until then.
    InFlight { expires_at_ms: u64 },
    /// The same identity with another body.
    Mismatch,
}

impl Record {
    /// `[1][kind u8][id: u32 length + UTF-8][body digest, 32 bytes]`, then for in flight
    /// `[attempt u64][expires at ms u64]`, for completed `[status u16][expires at ms u64]
    /// [flags u8: bit 0 LZ4, bit 1 body omitted][header count u32]` (name, value: u32 length +
    /// UTF-8 each) `[body: u32 length + bytes]`; little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self.state {
            State::InFlight { .. } => 1,
            State::Completed { .. } => 2,
            State::Released => 3,
        };
        let mut out = Writer::new(FORMAT_VERSION);
        out.u8(kind).str32(&self.id).bytes(&self.body_digest);
        match &self.state {
            State::InFlight {
                attempt,
                expires_at_ms,
            } => {
                out.u64(*attempt).u64(*expires_at_ms);
            }
            State::Completed {
                status,
                headers,
                body,
                body_omitted,
                expires_at_ms,
            } => {
                let compressed =
                    (body.len() > LZ4_THRESHOLD).then(|| lz4_flex::compress_prepend_size(body));
                out.u16(*status)
                    .u64(*expires_at_ms)
                    .u8(u8::from(compressed.is_some()) | (u8::from(*body_omitted) << 1))
                    .len32(headers.len());
                for (name, value) in headers {
                    out.str32(name).str32(value);
                }
                out.bytes32(compressed.as_deref().unwrap_or(body));
            }
            State::Released => {}
        }
        out.finish()
    }

    /// A missing, corrupt or unknown-version value reads as no record.
    pub fn decode(bytes: Option<&[u8]>) -> Option<Self> {
        Self::read(Reader::new(bytes?)).ok()
    }

    fn read(mut r: Reader<'_>) -> Result<Self, ReadError> {
        r.version(&[FORMAT_VERSION])?;
        let kind = r.u8()?;
        let id = r.str32()?.to_string();
        let body_digest: [u8; 32] = r.array()?;
        let state = match kind {
            1 => State::InFlight {
                attempt: r.u64()?,
                expires_at_ms: r.u64()?,
            },
            2 => {
                let status = r.u16()?;
                let expires_at_ms = r.u64()?;
                let flags = r.u8()?;
                let count = r.len32()?;
                if count > MAX_HEADERS {
                    return Err(ReadError::Invalid);
                }
                let mut headers = Vec::with_capacity(count);
                for _ in 0..count {
                    headers.push((r.str32()?.to_string(), r.str32()?.to_string()));
                }
                let stored = r.bytes32()?;
                let body = if flags & 1 == 1 {
                    let claimed = Reader::new(stored).len32()?;
                    if claimed > MAX_BODY || claimed > stored.len().saturating_mul(256) {
                        return Err(ReadError::Invalid);
                    }
                    lz4_flex::decompress_size_prepended(stored).map_err(|_| ReadError::Invalid)?
                } else {
                    stored.to_vec()
                };
                State::Completed {
                    status,
                    headers,
                    body,
                    body_omitted: flags & 2 == 2,
                    expires_at_ms,
                }
            }
            3 => State::Released,
            _ => return Err(ReadError::Invalid),
        };
        r.finish(Self {
            id,
            body_digest,
            state,
        })
    }
}

/// The claim a request with `id` and `digest` makes on the slot's current value; `attempt`
/// names this attempt in the record it writes.
pub fn claim(
    current: Option<&[u8]>,
    id: &str,
    digest: [u8; 32],
    attempt: u64,
    now_ms: u64,
    in_flight_timeout_ms: u64,
) -> (Claim, Option<Vec<u8>>) {
    let ours = Record {
        id: id.to_string(),
        body_digest: digest,
        state: State::InFlight {
            attempt,
            expires_at_ms: now_ms.saturating_add(in_flight_timeout_ms),
        },
    };
    let forward = (Claim::Forward, Some(ours.encode()));
    let Some(record) = Record::decode(current) else {
        return forward;
    };
    // Another identity in this slot: a full table replaces, it never refuses a new delivery.
    if record.id != id {
        return forward;
    }
    let live = match &record.state {
        State::InFlight { expires_at_ms, .. } | State::Completed { expires_at_ms, .. } => {
            *expires_at_ms > now_ms
        }
        State::Released => false,
    };
    if !live {
        return forward;
    }
    if record.body_digest != digest {
        return (Claim::Mismatch, None);
    }
    match record.state {
        State::InFlight { expires_at_ms, .. } => (Claim::InFlight { expires_at_ms }, None),
        _ => (Claim::Replay(record), None),
    }
}

/// The result of our attempt, if the slot still holds our attempt's in-flight record.
pub fn complete(current: Option<&[u8]>, id: &str, attempt: u64, result: State) -> Option<Vec<u8>> {
    let record = Record::decode(current)?;
    match record.state {
        State::InFlight {
            attempt: holder, ..
        } if record.id == id && holder == attempt => Some(
            Record {
                state: result,
                ..record
            }
            .encode(),
        ),
        _ => None,
    }
}

/// Gives up our in-flight record (the origin failed the attempt), so a retry goes to the origin.
pub fn release(current: Option<&[u8]>, id: &str, attempt: u64) -> Option<Vec<u8>> {
    complete(current, id, attempt, State::Released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::codec::hex;

    /// Bytes written by the format-1 encoder: still read, and written, exactly so.
    #[test]
    fn reads_and_writes_stored_format_1_bytes() {
        let record = |state| Record {
            id: "hook:1".into(),
            body_digest: D1,
            state,
        };
        for (state, stored) in [
            (
                State::InFlight {
                    attempt: 7,
                    expires_at_ms: 31_000,
                },
                "010106000000686f6f6b3a310101010101010101010101010101010101010101\
                 01010101010101010101010107000000000000001879000000000000",
            ),
            (
                State::completed(
                    202,
                    vec![("content-type".into(), "application/json".into())],
                    Some(b"{}".to_vec()),
                    9,
                ),
                "010206000000686f6f6b3a310101010101010101010101010101010101010101\
                 010101010101010101010101ca00090000000000000000010000000c00000063\
                 6f6e74656e742d74797065100000006170706c69636174696f6e2f6a736f6e02\
                 0000007b7d",
            ),
            (
                State::completed(500, vec![], None, 10),
                "010206000000686f6f6b3a310101010101010101010101010101010101010101\
                 010101010101010101010101f4010a00000000000000020000000000000000",
            ),
            (
                State::Released,
                "010306000000686f6f6b3a310101010101010101010101010101010101010101\
                 010101010101010101010101",
            ),
        ] {
            let record = record(state);
            let stored = hex(stored);
            assert_eq!(Record::decode(Some(&stored)), Some(record.clone()));
            assert_eq!(record.encode(), stored);
        }
    }

    const D1: [u8; 32] = [1; 32];
    const D2: [u8; 32] = [2; 32];

    fn completed(now: u64) -> State {
        State::Completed {
            status: 202,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"ok\":true}".repeat(200),
            body_omitted: false,
            expires_at_ms: now + 86_400_000,
        }
    }

    #[test]
    fn first_forwards_duplicates_wait_then_replay() {
        let (c, in_flight) = claim(None, "webhook-id:1", D1, 7, 1000, 30_000);
        assert_eq!(c, Claim::Forward);
        let in_flight = in_flight.unwrap();
        assert_eq!(
            claim(Some(&in_flight), "webhook-id:1", D1, 8, 2000, 30_000).0,
            Claim::InFlight {
                expires_at_ms: 31_000
            }
        );
        assert_eq!(
            claim(Some(&in_flight), "webhook-id:1", D2, 8, 2000, 30_000).0,
            Claim::Mismatch
        );
        assert_eq!(
            claim(Some(&in_flight), "webhook-id:1", D1, 8, 31_000, 30_000).0,
            Claim::Forward,
            "expired"
        );
        assert_eq!(
            complete(Some(&in_flight), "webhook-id:1", 8, completed(0)),
            None,
            "only the owner completes"
        );
        let done = complete(Some(&in_flight), "webhook-id:1", 7, completed(3000)).unwrap();
        match claim(Some(&done), "webhook-id:1", D1, 9, 4000, 30_000).0 {
            Claim::Replay(record) => {
                assert!(matches!(record.state, State::Completed { status: 202, .. }))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            claim(Some(&done), "webhook-id:1", D2, 9, 4000, 30_000).0,
            Claim::Mismatch
        );
    }

    #[test]
    fn released_and_colliding_records_let_the_request_through() {
        let (_, in_flight) = claim(None, "a", D1, 7, 0, 30_000);
        let released = release(in_flight.as_deref(), "a", 7).unwrap();
        assert_eq!(
            claim(Some(&released), "a", D1, 8, 10, 30_000).0,
            Claim::Forward
        );
        assert_eq!(
            claim(in_flight.as_deref(), "b", D2, 8, 10, 30_000).0,
            Claim::Forward
        );
    }

    #[test]
    fn an_older_attempt_cannot_finish_a_newer_one() {
        // Attempt 7 outlives its in-flight time; attempt 8 (same worker or not) takes over.
        let (_, first) = claim(None, "a", D1, 7, 0, 100);
        let (c, second) = claim(first.as_deref(), "a", D1, 8, 150, 100);
        assert_eq!(c, Claim::Forward);
        let second = second.unwrap();
        assert_eq!(release(Some(&second), "a", 7), None, "the 503 of attempt 7");
        assert_eq!(complete(Some(&second), "a", 7, completed(200)), None);
        assert!(release(Some(&second), "a", 8).is_some());
    }

    #[test]
    fn codec_round_trip_and_garbage() {
        let record = Record {
            id: "x".into(),
            body_digest: D1,
            state: completed(5),
        };
        let bytes = record.encode();
        assert!(bytes.len() < 1000, "compressed: {}", bytes.len());
        assert_eq!(Record::decode(Some(&bytes)), Some(record));
        for cut in 0..bytes.len() {
            assert_eq!(Record::decode(Some(&bytes[..cut])), None);
        }
        assert_eq!(Record::decode(Some(&[9, 9, 9])), None);
    }
}

//! Dedup records (`edge:dedup:<slot>` in shared data) and the claim / complete / release
//! transitions applied to whatever a slot holds: no panic, every value written decodes to what
//! was meant, and a claim only replays or waits for the same identity and body.

use edge_filter::policy::dedup::record::{claim, complete, release, Claim, Record, State};

use super::input::Input;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let current = input.bytes(4096);
    decoded(current);
    let slot = if input.bool() {
        None
    } else if input.bool() {
        Some(current.to_vec())
    } else {
        Some(record(&mut input).encode())
    };
    transitions(slot.as_deref(), &mut input);
}

fn decoded(bytes: &[u8]) {
    let Some(record) = Record::decode(Some(bytes)) else {
        return;
    };
    let again = record.encode();
    assert_eq!(
        Record::decode(Some(&again)).as_ref(),
        Some(&record),
        "re-encoding keeps the value"
    );
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        Record::decode(Some(&longer)),
        None,
        "trailing byte accepted"
    );
    if let Some((_, shorter)) = bytes.split_last() {
        assert_eq!(
            Record::decode(Some(shorter)),
            None,
            "truncated value accepted"
        );
    }
}

fn digest(input: &mut Input<'_>) -> [u8; 32] {
    [input.range(0, 3) as u8; 32]
}

fn id(input: &mut Input<'_>) -> String {
    // A few short ids, so claims often meet the record of their own identity.
    input.string(3)
}

fn state(input: &mut Input<'_>) -> State {
    match input.range(0, 2) {
        0 => State::InFlight {
            attempt: input.range(0, 3),
            expires_at_ms: input.u64(),
        },
        1 => {
            let len = usize::from(input.u16() % 4096);
            let pattern = input.bytes(16).to_vec();
            State::Completed {
                status: input.u16(),
                headers: (0..input.below(5))
                    .map(|_| (input.string(10), input.string(20)))
                    .collect(),
                body: pattern.iter().copied().cycle().take(len).collect(),
                body_omitted: input.bool(),
                expires_at_ms: input.u64(),
            }
        }
        _ => State::Released,
    }
}

fn record(input: &mut Input<'_>) -> Record {
    let record = Record {
        id: id(input),
        body_digest: digest(input),
        state: state(input),
    };
    assert_eq!(
        Record::decode(Some(&record.encode())).as_ref(),
        Some(&record),
        "round trip"
    );
    record
}

fn transitions(slot: Option<&[u8]>, input: &mut Input<'_>) {
    let held = slot.and_then(|bytes| Record::decode(Some(bytes)));
    let id = id(input);
    let digest = digest(input);
    let attempt = input.range(0, 3);
    let now = input.u64();
    let timeout = input.range(1, 86_400_000);

    let (outcome, written) = claim(slot, &id, digest, attempt, now, timeout);
    match outcome {
        Claim::Forward => {
            let ours = Record {
                id: id.clone(),
                body_digest: digest,
                state: State::InFlight {
                    attempt,
                    expires_at_ms: now.saturating_add(timeout),
                },
            };
            let written = written.unwrap_or_default();
            assert_eq!(
                Record::decode(Some(&written)),
                Some(ours),
                "claim writes ours"
            );
            // Only the attempt completes or releases it, and the result is what it says.
            let result = state(input);
            let done = complete(Some(&written), &id, attempt, result.clone()).unwrap_or_default();
            assert_eq!(
                Record::decode(Some(&done)).map(|r| r.state),
                Some(result),
                "complete writes the result"
            );
            let given_back = release(Some(&written), &id, attempt).unwrap_or_default();
            assert_eq!(
                Record::decode(Some(&given_back)).map(|r| r.state),
                Some(State::Released)
            );
            let other = attempt.wrapping_add(1);
            assert_eq!(complete(Some(&written), &id, other, State::Released), None);
            assert_eq!(release(Some(&written), &id, other), None);
        }
        Claim::Replay(record) => {
            assert_eq!(written, None);
            assert_eq!(held.as_ref(), Some(&record), "replays what the slot holds");
            assert_eq!(record.id, id);
            assert_eq!(record.body_digest, digest);
            assert!(
                matches!(record.state, State::Completed { expires_at_ms, .. } if expires_at_ms > now),
                "replays only a live completed record"
            );
        }
        Claim::InFlight { expires_at_ms } => {
            assert_eq!(written, None);
            assert!(expires_at_ms > now);
            assert!(held.is_some_and(|r| r.id == id && r.body_digest == digest));
        }
        Claim::Mismatch => {
            assert_eq!(written, None);
            assert!(held.is_some_and(|r| r.id == id && r.body_digest != digest));
        }
    }

    // Completing or releasing whatever the slot holds never panics; a write names our record.
    let result = state(input);
    if let Some(bytes) = complete(slot, &id, attempt, result.clone()) {
        let written = Record::decode(Some(&bytes));
        assert!(written.is_some_and(|r| r.id == id && r.state == result));
    }
    if let Some(bytes) = release(slot, &id, attempt) {
        assert!(Record::decode(Some(&bytes)).is_some_and(|r| r.state == State::Released));
    }
}

//! Fleet-wide dedup records in Redis: one key per delivery identity, claimed atomically with
//! `SET key claim NX PX in_flight_timeout GET` (one command: the old value comes back when the
//! key existed, nil when this attempt created it), completed and released by owner-checked
//! scripts. Values are the local records' versioned encoding.

use sha2::{Digest, Sha256};

use super::command::Command;
use super::reply::Reply;
use super::scripts::Script;
use super::tier::CallFailure;
use crate::policy::dedup::record::{Record, State};

/// The Redis key of an identity's record (`<prefix>d:<hash>`: bounded length whatever the id).
pub fn record_key(prefix: &str, service: &str, id: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(service.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}d:{hex}").into_bytes()
}

/// The value an attempt claims a record with (unique per attempt: its owner token).
pub fn claim_value(id: &str, digest: [u8; 32], attempt: u64, expires_at_ms: u64) -> Vec<u8> {
    Record {
        id: id.to_string(),
        body_digest: digest,
        state: State::InFlight {
            attempt,
            expires_at_ms,
        },
    }
    .encode()
}

/// `SET key claim NX PX timeout GET`.
pub fn claim_command(key: &[u8], claim: &[u8], timeout_ms: u64) -> Command {
    Command::new("SET")
        .arg(key)
        .arg(claim)
        .arg("NX")
        .arg("PX")
        .arg(timeout_ms.max(1).to_string())
        .arg("GET")
}

/// What the fleet says of a delivery this replica wants to send to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetClaim {
    /// This attempt created the record: it goes to the origin.
    Claimed,
    /// Another replica's attempt completed: replay its result.
    Replay(Record),
    /// Another attempt is at the origin now.
    InFlight,
    /// The identity was used with another body.
    Mismatch,
}

/// Reads the claim's reply for the delivery `id` with body `digest`. A value that is not a
/// record of this identity is garbage (the tier is not trusted for this request).
pub fn read_claim(reply: &Reply, id: &str, digest: [u8; 32]) -> Result<FleetClaim, CallFailure> {
    if reply.is_nil() {
        return Ok(FleetClaim::Claimed);
    }
    let record = Record::decode(reply.bulk()).ok_or(CallFailure::Garbage)?;
    if record.id != id {
        return Err(CallFailure::Garbage);
    }
    if record.body_digest != digest {
        return Ok(FleetClaim::Mismatch);
    }
    Ok(match record.state {
        State::Completed { .. } => FleetClaim::Replay(record),
        State::InFlight { .. } | State::Released => FleetClaim::InFlight,
    })
}

/// The owner-checked completion: the record becomes `result` for `retention_ms`.
pub fn complete_command(
    script: &Script,
    key: &[u8],
    claim: &[u8],
    result: &Record,
    retention_ms: u64,
    by_sha: bool,
) -> Command {
    let value = result.encode();
    let retention = retention_ms.max(1).to_string();
    let args: [&[u8]; 3] = [claim, &value, retention.as_bytes()];
    if by_sha {
        script.evalsha(&[key], &args)
    } else {
        script.eval(&[key], &args)
    }
}

/// The owner-checked release (the attempt failed, or never reached the origin).
pub fn release_command(script: &Script, key: &[u8], claim: &[u8], by_sha: bool) -> Command {
    if by_sha {
        script.evalsha(&[key], &[claim])
    } else {
        script.eval(&[key], &[claim])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::fleet::scripts::{DEDUP_COMPLETE, DEDUP_RELEASE};

    const DIGEST: [u8; 32] = [7; 32];

    #[test]
    fn keys_are_bounded_and_separate_services() {
        let a = record_key("edge:", "hooks", &"x".repeat(10_000));
        assert_eq!(a.len(), "edge:d:".len() + 32);
        assert_ne!(record_key("edge:", "a", "1"), record_key("edge:", "b", "1"));
    }

    #[test]
    fn claim_is_one_set_nx_px_get() {
        let claim = claim_value("msg_1", DIGEST, 42, 1_000);
        let body = String::from_utf8(claim_command(b"k", &claim, 30_000).body()).unwrap();
        assert!(body.starts_with("SET/k/"));
        assert!(body.ends_with("/NX/PX/30000/GET.raw"));
    }

    #[test]
    fn the_old_value_decides() {
        assert_eq!(
            read_claim(&Reply::Bulk(None), "msg_1", DIGEST),
            Ok(FleetClaim::Claimed)
        );
        let other = claim_value("msg_1", DIGEST, 9, 1_000);
        assert_eq!(
            read_claim(&Reply::Bulk(Some(other.clone())), "msg_1", DIGEST),
            Ok(FleetClaim::InFlight)
        );
        assert_eq!(
            read_claim(&Reply::Bulk(Some(other)), "msg_1", [8; 32]),
            Ok(FleetClaim::Mismatch)
        );
        let done = Record {
            id: "msg_1".into(),
            body_digest: DIGEST,
            state: State::completed(200, vec![("a".into(), "b".into())], Some(b"ok".to_vec()), 9),
        };
        assert_eq!(
            read_claim(&Reply::Bulk(Some(done.encode())), "msg_1", DIGEST),
            Ok(FleetClaim::Replay(done.clone()))
        );
        assert_eq!(
            read_claim(&Reply::Bulk(Some(done.encode())), "msg_2", DIGEST),
            Err(CallFailure::Garbage)
        );
        assert_eq!(
            read_claim(&Reply::Bulk(Some(b"junk".to_vec())), "msg_1", DIGEST),
            Err(CallFailure::Garbage)
        );
        assert_eq!(
            read_claim(&Reply::Status("OK".into()), "msg_1", DIGEST),
            Err(CallFailure::Garbage)
        );
    }

    #[test]
    fn completion_and_release_are_owner_checked_scripts() {
        let complete = Script::new(DEDUP_COMPLETE);
        let release = Script::new(DEDUP_RELEASE);
        let claim = claim_value("m", DIGEST, 1, 1);
        let done = Record {
            id: "m".into(),
            body_digest: DIGEST,
            state: State::completed(201, vec![], None, 5),
        };
        let body = complete_command(&complete, b"k", &claim, &done, 60_000, true).body();
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with(&format!("EVALSHA/{}/1/k/", complete.sha)));
        assert!(body.ends_with("/60000.raw"));
        let body = String::from_utf8(release_command(&release, b"k", &claim, false).body());
        assert!(body.unwrap().starts_with("EVAL/"));
    }
}

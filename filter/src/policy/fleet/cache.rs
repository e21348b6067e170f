//! The L3 cache tier in Redis: after L1 and L2 miss, one `GET` before the origin; a stored
//! response written behind (`SET … PX ttl`, never delaying the client) with a TTL of its
//! freshness plus its stale windows; entries in the same versioned LZ4 codec as L2. Redis's own
//! `maxmemory` policy bounds the tier.

use sha2::{Digest, Sha256};

use super::command::Command;
use super::reply::Reply;
use super::tier::CallFailure;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::keep_until;

/// The Redis key of a primary cache key (`<prefix>c:<hash>`: bounded whatever the URL).
pub fn entry_key(prefix: &str, primary: &str) -> String {
    let digest = Sha256::digest(primary.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}c:{hex}")
}

pub fn lookup_command(key: &str) -> Command {
    Command::new("GET").arg(key)
}

/// How long Redis keeps `entry` from `now_secs`: until its freshness and stale windows are
/// over; `None` when that is already past.
pub fn ttl_ms(entry: &Entry, now_secs: u64) -> Option<u64> {
    let left = keep_until(entry).checked_sub(now_secs)?;
    (left > 0).then(|| left.saturating_mul(1000))
}

/// The write-behind store of `entry` (its encoding), or `None` when it is not worth keeping.
pub fn store_command(prefix: &str, entry: &Entry, now_secs: u64) -> Option<Command> {
    let ttl = ttl_ms(entry, now_secs)?;
    let key = entry_key(prefix, &entry.key);
    Some(
        Command::new("SET")
            .arg(key)
            .arg(entry.encode())
            .arg("PX")
            .arg(ttl.to_string()),
    )
}

/// The entry a lookup found for `primary`: `None` when nothing (or another key's entry) is
/// there; a value that does not decode is garbage.
pub fn read_entry(reply: &Reply, primary: &str) -> Result<Option<Entry>, CallFailure> {
    if reply.is_nil() {
        return Ok(None);
    }
    let bytes = reply.bulk().ok_or(CallFailure::Garbage)?;
    let entry = Entry::decode(bytes).map_err(|_| CallFailure::Garbage)?;
    Ok((entry.key == primary).then_some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, response_time: u64, fresh: u64) -> Entry {
        Entry {
            key: key.to_string(),
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"hello".to_vec(),
            response_time,
            freshness_lifetime: fresh,
            ..Entry::default()
        }
    }

    #[test]
    fn ttl_is_freshness_plus_stale_windows() {
        let mut e = entry("k", 1000, 60);
        assert_eq!(ttl_ms(&e, 1000), Some(60_000));
        e.stale_while_revalidate = Some(30);
        assert_eq!(ttl_ms(&e, 1010), Some(80_000));
        assert_eq!(ttl_ms(&e, 2000), None);
    }

    #[test]
    fn a_stored_entry_reads_back_for_its_key_only() {
        let e = entry("svc|http://a/x", 1000, 60);
        let command = store_command("edge:", &e, 1000).unwrap();
        let body = String::from_utf8(command.body()).unwrap();
        assert!(body.starts_with("SET/edge%3Ac%3A"));
        assert!(body.ends_with("/PX/60000.raw"));
        let reply = Reply::Bulk(Some(e.encode()));
        assert_eq!(read_entry(&reply, "svc|http://a/x"), Ok(Some(e.clone())));
        assert_eq!(read_entry(&reply, "svc|http://a/y"), Ok(None));
        assert_eq!(read_entry(&Reply::Bulk(None), "k"), Ok(None));
        let junk = Reply::Bulk(Some(b"junk".to_vec()));
        assert_eq!(read_entry(&junk, "k"), Err(CallFailure::Garbage));
        assert!(store_command("edge:", &entry("k", 0, 0), 10).is_none());
    }
}

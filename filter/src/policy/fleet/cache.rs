//! The L3 cache tier in Redis: after L1 and L2 miss, one `GET` before the origin; a stored
//! response written behind (`SET … PX ttl`, never delaying the client) with a TTL of its
//! freshness plus its stale windows; entries in the same versioned LZ4 codec as L2. Redis's own
//! `maxmemory` policy bounds the tier.

use sha2::{Digest, Sha256};

use super::command::Command;
use super::reply::Reply;
use super::scripts::Script;
use super::tier::CallFailure;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::keep_until;

fn hashed(prefix: &str, kind: &str, primary: &str) -> String {
    let digest = Sha256::digest(primary.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{kind}:{hex}")
}

/// The Redis key of a primary cache key (`<prefix>c:<hash>`: bounded whatever the URL).
pub fn entry_key(prefix: &str, primary: &str) -> String {
    hashed(prefix, "c", primary)
}

/// The key of the fleet-wide lease on fetching a primary key from the origin.
pub fn lease_key(prefix: &str, primary: &str) -> String {
    hashed(prefix, "l", primary)
}

/// The lookup: the entry if Redis has one, else the lease if nobody holds it, else how long
/// the holder's lease has left. KEYS[1] entry, KEYS[2] lease; ARGV[1] owner, ARGV[2] lease ms.
/// Returns {1, entry} | {0, ''} (lease taken) | {2, pttl}.
pub const L3_LOOKUP: &str = "\
local v = redis.call('GET', KEYS[1]) if v then return {1, v} end \
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, ''} end \
return {2, tostring(redis.call('PTTL', KEYS[2]))}";

/// The lookup of `primary` for `owner`, who takes the lease for `lease_ms` on a miss.
pub fn lookup_command(
    script: &Script,
    prefix: &str,
    primary: &str,
    (owner, lease_ms): (&str, u64),
    by_sha: bool,
) -> Command {
    let keys = [entry_key(prefix, primary), lease_key(prefix, primary)];
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let lease = lease_ms.max(1).to_string();
    let args: [&[u8]; 2] = [owner.as_bytes(), lease.as_bytes()];
    if by_sha {
        script.evalsha(&keys, &args)
    } else {
        script.eval(&keys, &args)
    }
}

/// A pause of `ms` inside Redis (a blocking pop of a list nobody writes), between two lookups
/// of a request waiting for another replica's fetch: polling without a timer in the stream.
pub fn pause_command(prefix: &str, primary: &str, ms: u64) -> Command {
    let seconds = format!("{}.{:03}", ms / 1000, ms % 1000);
    Command::new("BLPOP")
        .arg(hashed(prefix, "w", primary))
        .arg(seconds)
}

/// What the lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// An entry for this key.
    Found(Box<Entry>),
    /// Nothing usable (or another key's entry): go to the origin.
    Miss,
    /// Nothing, and this request holds the fleet's lease: it fetches for the fleet.
    Leased,
    /// Another replica fetches it; its lease has this many ms left.
    Fetching(u64),
}

/// Reads the lookup script's reply for `primary`.
pub fn read_lookup(reply: &Reply, primary: &str) -> Result<Lookup, CallFailure> {
    let Reply::Array(Some(items)) = reply else {
        return Err(CallFailure::Garbage);
    };
    let kind = match items.first() {
        Some(Reply::Int(kind)) => *kind,
        Some(Reply::Bulk(Some(text))) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(CallFailure::Garbage)?,
        _ => return Err(CallFailure::Garbage),
    };
    let value = items.get(1).ok_or(CallFailure::Garbage)?;
    match kind {
        1 => Ok(read_entry(value, primary)?.map_or(Lookup::Miss, |e| Lookup::Found(Box::new(e)))),
        0 => Ok(Lookup::Leased),
        2 => {
            let left = value
                .bulk()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or(CallFailure::Garbage)?;
            // -1 (no expiry) or -2 (gone meanwhile): look again at once.
            Ok(Lookup::Fetching(u64::try_from(left).unwrap_or(0)))
        }
        _ => Err(CallFailure::Garbage),
    }
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
    fn the_lookup_finds_leases_or_waits() {
        let e = entry("svc|http://a/x", 1000, 60);
        let found = Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(e.encode()))]));
        assert_eq!(
            read_lookup(&found, "svc|http://a/x"),
            Ok(Lookup::Found(Box::new(e)))
        );
        assert_eq!(read_lookup(&found, "svc|http://a/y"), Ok(Lookup::Miss));
        // webdis's raw output: the integers of an array come as bulk strings.
        let leased = Reply::parse(b"*2\r\n$1\r\n0\r\n$0\r\n\r\n").unwrap();
        assert_eq!(read_lookup(&leased, "k"), Ok(Lookup::Leased));
        let waiting = Reply::parse(b"*2\r\n$1\r\n2\r\n$4\r\n1500\r\n").unwrap();
        assert_eq!(read_lookup(&waiting, "k"), Ok(Lookup::Fetching(1500)));
        let gone = Reply::parse(b"*2\r\n$1\r\n2\r\n$2\r\n-2\r\n").unwrap();
        assert_eq!(read_lookup(&gone, "k"), Ok(Lookup::Fetching(0)));
        assert!(read_lookup(&Reply::Int(1), "k").is_err());
        let script = Script::new(L3_LOOKUP);
        let body = lookup_command(&script, "edge:", "k", ("o1", 3000), true).body();
        let body = String::from_utf8(body).unwrap();
        assert!(body.ends_with("/2/edge%3Ac%3A8254c329a92850f6d539dd376f4816ee/edge%3Al%3A8254c329a92850f6d539dd376f4816ee/o1/3000.raw"), "{body}");
        let pause = String::from_utf8(pause_command("edge:", "k", 50).body()).unwrap();
        assert!(pause.ends_with("/0%2E050.raw"), "{pause}");
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

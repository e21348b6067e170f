//! Fleet-wide rate limits: one token bucket per tenant in Redis (a Lua script refills it with
//! Redis's own clock and hands out tokens), and each worker's grant of tokens taken from it in
//! small batches, so most requests cost no Redis call.
//!
//! A worker admits while its grant holds tokens and asks for the next batch (from the root
//! context, never pausing a request) when it runs low. With no tokens and nothing owed it may
//! admit one request's cost ahead (a debt, charged to the bucket with the next batch, even
//! into the negative); owing already, it refuses until the batch arrives. When the bucket is
//! empty the script says how long until the next token and the worker refuses until then
//! without calling Redis. So the fleet admits at most rate × T + burst, plus at most one
//! request's cost per worker owed at the end; tokens held in grants (at most a batch per
//! worker) are admitted later or lapse unused.

use super::command::Command;
use super::reply::Reply;
use super::scripts::Script;
use super::tier::CallFailure;
use sha2::Digest;

/// The token bucket. KEYS[1] bucket; ARGV rate (tokens/s), burst, tokens wanted, tokens owed.
/// Returns {tokens taken, ms until a token is available (0: some left)}.
pub const RATE_TAKE: &str = "\
local rate = tonumber(ARGV[1]) local burst = tonumber(ARGV[2]) \
local want = tonumber(ARGV[3]) local owed = tonumber(ARGV[4]) \
local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) \
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts') \
local tokens = tonumber(b[1]) or burst local ts = tonumber(b[2]) or now \
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) else now = ts end \
tokens = tokens - owed \
local take = 0 \
if tokens >= 1 then take = math.min(want, math.floor(tokens)) tokens = tokens - take end \
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now)) \
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000) \
local wait = 0 \
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end \
return {take, wait}";

/// The Redis key of a tenant's bucket in a service (bounded whatever the tenant id): 128 bits
/// of the tenant id's SHA-256, like the cache and dedup keys, so no crafted tenant id can share
/// another tenant's bucket.
pub fn bucket_key(prefix: &str, service: &str, tenant: &str) -> String {
    let digest = sha2::Sha256::digest(tenant.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}r:{service}:{hex}")
}

/// Tokens a worker takes per batch: about 20 ms of the rate, at least the request's cost, at
/// most a tenth of the burst (or 1).
pub fn batch_size(requests_per_second: f64, burst: u64, cost: u64) -> u64 {
    let by_rate = (requests_per_second / 50.0).ceil().max(1.0) as u64;
    let cap = (burst / 10).max(1);
    by_rate.min(cap).max(cost)
}

/// The script call taking `want` tokens and charging `owed`.
pub fn take_command(
    script: &Script,
    key: &str,
    (requests_per_second, burst): (f64, u64),
    want: u64,
    owed: u64,
    by_sha: bool,
) -> Command {
    let args = [
        format!("{requests_per_second}"),
        burst.to_string(),
        want.to_string(),
        owed.to_string(),
    ];
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    if by_sha {
        script.evalsha(&[key.as_bytes()], &args)
    } else {
        script.eval(&[key.as_bytes()], &args)
    }
}

/// `{taken, wait_ms}` from the script's reply (webdis's raw output gives the integers of an
/// array as bulk strings).
pub fn read_take(reply: &Reply) -> Result<(u64, u64), CallFailure> {
    let number = |item: &Reply| match item {
        Reply::Int(n) => u64::try_from(*n).ok(),
        Reply::Bulk(Some(text)) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    };
    match reply {
        Reply::Array(Some(items)) => match items.as_slice() {
            [taken, wait] => Ok((
                number(taken).ok_or(CallFailure::Garbage)?,
                number(wait).ok_or(CallFailure::Garbage)?,
            )),
            _ => Err(CallFailure::Garbage),
        },
        _ => Err(CallFailure::Garbage),
    }
}

/// One worker's tokens of one tenant's fleet bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Tokens taken from the bucket and not spent yet.
    pub tokens: u64,
    /// Tokens spent ahead of the bucket, to charge with the next batch.
    pub owed: u64,
    /// A batch is on its way: what it charges.
    pub fetching: Option<u64>,
    /// The bucket said it is empty until then.
    pub empty_until_ms: u64,
    pub last_used_ms: u64,
}

/// What a worker does with a request its local bucket admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantDecision {
    Admit,
    /// Refuse; a token may be there in this many ms.
    Refuse {
        retry_after_ms: u64,
    },
}

/// A spend's decision, and the batch (of this many tokens, charging what is owed) to ask for.
pub type Spent = (GrantDecision, Option<u64>);

impl Grant {
    /// Spends `cost` for a request at `now_ms`.
    pub fn spend(&mut self, cost: u64, batch: u64, now_ms: u64) -> Spent {
        self.last_used_ms = now_ms;
        if self.empty_until_ms > now_ms {
            let retry_after_ms = self.empty_until_ms - now_ms;
            return (GrantDecision::Refuse { retry_after_ms }, None);
        }
        let admitted = if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else if self.owed == 0 && self.fetching.is_none() {
            // Ahead of the bucket: the tokens held go first, the rest is owed.
            self.owed = cost - self.tokens;
            self.tokens = 0;
            true
        } else {
            false
        };
        let low = self.tokens <= batch / 2;
        let fetch = (low && self.fetching.is_none()).then(|| {
            self.fetching = Some(self.owed);
            self.owed = 0;
            batch
        });
        if admitted {
            (GrantDecision::Admit, fetch)
        } else {
            // A batch is on its way (or was just asked for): try again shortly.
            let retry_after_ms = 1000;
            (GrantDecision::Refuse { retry_after_ms }, fetch)
        }
    }

    /// What the fetch in flight charges (sent with it).
    pub fn charging(&self) -> u64 {
        self.fetching.unwrap_or(0)
    }

    /// The batch arrived: `taken` tokens, and when the bucket has one again if it is empty.
    pub fn received(&mut self, taken: u64, wait_ms: u64, now_ms: u64) {
        self.fetching = None;
        self.tokens = self.tokens.saturating_add(taken);
        if taken == 0 && wait_ms > 0 {
            self.empty_until_ms = now_ms.saturating_add(wait_ms);
        }
    }

    /// The batch call failed: what it was to charge is owed again (at most one request's
    /// worth stays owed: the rest is forgiven, the tier's failure mode decides meanwhile).
    pub fn failed(&mut self) {
        if let Some(charged) = self.fetching.take() {
            self.owed = self.owed.max(charged.min(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_rate_within_the_burst() {
        assert_eq!(batch_size(100.0, 50, 1), 2);
        assert_eq!(batch_size(10_000.0, 1000, 1), 100);
        assert_eq!(batch_size(10_000.0, 100, 1), 10);
        assert_eq!(batch_size(1.0, 5, 1), 1);
        assert_eq!(batch_size(1.0, 5, 3), 3);
    }

    #[test]
    fn a_cold_worker_admits_one_ahead_then_waits_for_its_batch() {
        let mut grant = Grant::default();
        assert_eq!(grant.spend(1, 4, 0), (GrantDecision::Admit, Some(4)));
        assert_eq!(grant.charging(), 1, "the request admitted ahead is charged");
        assert!(matches!(
            grant.spend(1, 4, 1),
            (GrantDecision::Refuse { .. }, None)
        ));
        grant.received(4, 0, 2);
        assert_eq!(grant.tokens, 4);
        assert_eq!(grant.spend(1, 4, 3), (GrantDecision::Admit, None));
        assert_eq!(grant.spend(1, 4, 3), (GrantDecision::Admit, Some(4)));
        assert_eq!(grant.charging(), 0);
        assert_eq!(grant.spend(1, 4, 3), (GrantDecision::Admit, None));
        assert_eq!(grant.spend(1, 4, 3), (GrantDecision::Admit, None));
        assert!(matches!(
            grant.spend(1, 4, 3),
            (GrantDecision::Refuse { .. }, None)
        ));
        // A failed batch: the next request asks again (and may go one ahead again).
        grant.failed();
        assert_eq!(grant.spend(1, 4, 4), (GrantDecision::Admit, Some(4)));
        assert_eq!(grant.charging(), 1);
    }

    #[test]
    fn an_empty_bucket_refuses_without_calls_until_its_next_token() {
        let mut grant = Grant::default();
        let _ = grant.spend(1, 2, 0);
        grant.received(0, 250, 10);
        let refused = GrantDecision::Refuse {
            retry_after_ms: 160,
        };
        assert_eq!(grant.spend(1, 2, 100), (refused, None));
        assert_eq!(grant.spend(1, 2, 260), (GrantDecision::Admit, Some(2)));
    }

    #[test]
    fn a_failed_batch_leaves_one_request_owed_at_most() {
        let mut grant = Grant::default();
        let _ = grant.spend(3, 3, 0);
        grant.failed();
        assert_eq!(grant.owed, 1);
        assert!(grant.fetching.is_none());
        // Owing, with no batch on its way: refused, and the batch is asked for again.
        let (decision, fetch) = grant.spend(3, 3, 1);
        assert!(matches!(decision, GrantDecision::Refuse { .. }));
        assert_eq!(fetch, Some(3));
        assert_eq!(grant.charging(), 1);
    }

    #[test]
    fn the_script_reply_is_two_integers() {
        let ok = Reply::Array(Some(vec![Reply::Int(3), Reply::Int(0)]));
        assert_eq!(read_take(&ok), Ok((3, 0)));
        assert!(read_take(&Reply::Int(3)).is_err());
        let negative = Reply::Array(Some(vec![Reply::Int(-1), Reply::Int(0)]));
        assert!(read_take(&negative).is_err());
        // What webdis's raw output actually sends.
        let webdis = Reply::parse(b"*2\r\n$1\r\n2\r\n$3\r\n250\r\n").unwrap();
        assert_eq!(read_take(&webdis), Ok((2, 250)));
    }

    #[test]
    fn keys_and_commands() {
        let key = bucket_key("edge:", "api", "tenant-a");
        assert!(key.starts_with("edge:r:api:"));
        assert_eq!(
            key.len(),
            "edge:r:api:".len() + 32,
            "128 bits of the tenant id"
        );
        let script = Script::new(RATE_TAKE);
        let body = take_command(&script, &key, (100.0, 50), 2, 1, true).body();
        let body = String::from_utf8(body).unwrap();
        assert!(body.ends_with("/100/50/2/1.raw"), "{body}");
    }
}

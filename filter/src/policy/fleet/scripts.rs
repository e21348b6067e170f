//! The Lua scripts the fleet tier runs (each one atomic in Redis), called by `EVALSHA` and,
//! when Redis does not know them yet (`NOSCRIPT`: first use, or Redis restarted), by `EVAL`.

use super::command::Command;
use super::sha1::sha1_hex;

/// A Lua script and its Redis id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub text: &'static str,
    pub sha: String,
}

impl Script {
    pub fn new(text: &'static str) -> Self {
        Self {
            text,
            sha: sha1_hex(text.as_bytes()),
        }
    }

    /// `EVALSHA sha numkeys keys… args…`
    pub fn evalsha(&self, keys: &[&[u8]], args: &[&[u8]]) -> Command {
        Self::with_args(Command::new("EVALSHA").arg(&self.sha), keys, args)
    }

    /// `EVAL text numkeys keys… args…` (Redis caches the script under its id).
    pub fn eval(&self, keys: &[&[u8]], args: &[&[u8]]) -> Command {
        Self::with_args(Command::new("EVAL").arg(self.text), keys, args)
    }

    fn with_args(command: Command, keys: &[&[u8]], args: &[&[u8]]) -> Command {
        let command = command.arg(keys.len().to_string());
        let command = keys.iter().fold(command, |c, k| c.arg(k));
        args.iter().fold(command, |c, a| c.arg(a))
    }
}

/// Owner-checked completion of a dedup claim: the record becomes the result only while it
/// still holds the claim this attempt made, or when there is no record (an attempt processed
/// while the tier was unavailable, whose claim never reached Redis or expired: its result is
/// still what a retry on another replica must replay). A record of another attempt is left
/// alone. KEYS[1] record; ARGV[1] the claim, ARGV[2] the result, ARGV[3] its retention (ms).
/// 1 when written.
pub const DEDUP_COMPLETE: &str = "\
local v = redis.call('GET', KEYS[1]) if v == false or v == ARGV[1] then \
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0";

/// Owner-checked release of a dedup claim (the attempt failed: the next one goes to the
/// origin). KEYS[1] record; ARGV[1] the claim. 1 when deleted.
pub const DEDUP_RELEASE: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end return 0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evalsha_and_eval_carry_the_same_arguments() {
        let script = Script::new(DEDUP_RELEASE);
        assert_eq!(script.sha.len(), 40);
        let by_sha = String::from_utf8(script.evalsha(&[b"k"], &[b"v"]).body()).unwrap();
        assert_eq!(by_sha, format!("EVALSHA/{}/1/k/v.raw", script.sha));
        let whole = String::from_utf8(script.eval(&[b"k"], &[b"v"]).body()).unwrap();
        assert!(whole.starts_with("EVAL/if%20redis%2Ecall"));
        assert!(whole.ends_with("/1/k/v.raw"));
    }
}

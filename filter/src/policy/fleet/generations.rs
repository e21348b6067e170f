//! Fleet-wide purges: the generation counters in one Redis hash (`<prefix>g`, field = counter
//! slot). A purge bumps its slot there too (`HINCRBY`); every worker reads the hash each
//! `generation_refresh_ms` (`HGETALL`) and raises its counters to the fleet's, so a purge made
//! on any replica reaches the others within that time. A purge made while the tier is
//! unavailable reaches them once it is back (the worker keeps the bump queued).

use super::command::Command;
use super::reply::Reply;
use super::tier::CallFailure;

fn hash_key(prefix: &str) -> String {
    format!("{prefix}g")
}

pub fn purge_command(prefix: &str, slot: usize) -> Command {
    Command::new("HINCRBY")
        .arg(hash_key(prefix))
        .arg(slot.to_string())
        .arg("1")
}

pub fn read_command(prefix: &str) -> Command {
    Command::new("HGETALL").arg(hash_key(prefix))
}

/// The (slot, counter) pairs of `HGETALL`'s reply (field, value, field, value, …).
pub fn read_counters(reply: &Reply) -> Result<Vec<(usize, u32)>, CallFailure> {
    let number = |item: &Reply| -> Option<u64> {
        match item {
            Reply::Int(n) => u64::try_from(*n).ok(),
            Reply::Bulk(Some(text)) => std::str::from_utf8(text).ok()?.parse().ok(),
            _ => None,
        }
    };
    match reply {
        Reply::Array(Some(items)) if items.len() % 2 == 0 => items
            .chunks_exact(2)
            .map(|pair| match pair {
                [slot, counter] => Ok((
                    usize::try_from(number(slot).ok_or(CallFailure::Garbage)?)
                        .map_err(|_| CallFailure::Garbage)?,
                    u32::try_from(number(counter).ok_or(CallFailure::Garbage)?).unwrap_or(u32::MAX),
                )),
                _ => Err(CallFailure::Garbage),
            })
            .collect(),
        Reply::Array(None) => Ok(Vec::new()),
        _ => Err(CallFailure::Garbage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_replies() {
        let body = String::from_utf8(purge_command("edge:", 260).body()).unwrap();
        assert_eq!(body, "HINCRBY/edge%3Ag/260/1.raw");
        let body = String::from_utf8(read_command("edge:").body()).unwrap();
        assert_eq!(body, "HGETALL/edge%3Ag.raw");
        let reply = Reply::parse(b"*4\r\n$3\r\n260\r\n$1\r\n2\r\n$1\r\n4\r\n$1\r\n1\r\n").unwrap();
        assert_eq!(read_counters(&reply), Ok(vec![(260, 2), (4, 1)]));
        assert_eq!(read_counters(&Reply::Array(Some(vec![]))), Ok(vec![]));
        let odd = Reply::parse(b"*1\r\n$1\r\n2\r\n").unwrap();
        assert!(read_counters(&odd).is_err());
        let junk = Reply::parse(b"*2\r\n$1\r\nx\r\n$1\r\n2\r\n").unwrap();
        assert!(read_counters(&junk).is_err());
    }
}

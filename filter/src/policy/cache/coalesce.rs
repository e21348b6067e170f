//! Request coalescing inside one worker: concurrent misses for one key become one origin
//! request (the leader); the others wait and are answered from what the leader stores, or
//! released to the origin when it stores nothing. A group whose leader runs on another worker
//! (it holds the shared-data lease) waits here too, and is polled from the tick.

use std::collections::HashMap;

/// A paused request and what answering it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter<T> {
    pub context_id: u32,
    pub since_ms: u64,
    pub data: T,
}

#[derive(Debug)]
struct Group<T> {
    /// The local stream fetching the key; `None` while the leader is on another worker.
    leader: Option<u32>,
    waiters: Vec<Waiter<T>>,
}

/// What a request joining a key's group does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Fetch it; others will wait for you.
    Lead,
    /// Wait for the leader.
    Wait,
    /// The waiting table is full: go to the origin uncoalesced.
    Full,
}

/// Groups of requests per key, bounded by the number of waiting requests.
#[derive(Debug)]
pub struct Coalescer<T> {
    groups: HashMap<String, Group<T>>,
    waiting: usize,
    max_waiters: usize,
}

impl<T> Coalescer<T> {
    pub fn new(max_waiters: usize) -> Self {
        Self {
            groups: HashMap::new(),
            waiting: 0,
            max_waiters,
        }
    }

    /// Joins the key's group: leads when no request fetches it yet, waits otherwise.
    pub fn join(&mut self, key: &str, context_id: u32, now_ms: u64, data: T) -> Join {
        match self.groups.get_mut(key) {
            None => {
                self.groups.insert(
                    key.to_string(),
                    Group {
                        leader: Some(context_id),
                        waiters: Vec::new(),
                    },
                );
                Join::Lead
            }
            Some(_) if self.waiting >= self.max_waiters => Join::Full,
            Some(group) => {
                group.waiters.push(Waiter {
                    context_id,
                    since_ms: now_ms,
                    data,
                });
                self.waiting += 1;
                Join::Wait
            }
        }
    }

    /// The leader turned out to be on another worker: this request waits for it instead.
    pub fn wait_remote(&mut self, key: &str, context_id: u32, now_ms: u64, data: T) -> Join {
        if self.waiting >= self.max_waiters {
            self.groups.remove(key);
            return Join::Full;
        }
        let group = self.groups.entry(key.to_string()).or_insert(Group {
            leader: None,
            waiters: Vec::new(),
        });
        if group.leader == Some(context_id) {
            group.leader = None;
        }
        group.waiters.push(Waiter {
            context_id,
            since_ms: now_ms,
            data,
        });
        self.waiting += 1;
        Join::Wait
    }

    /// The leader is done (stored something or not): its waiters, to answer or release.
    pub fn finish(&mut self, key: &str) -> Vec<Waiter<T>> {
        let waiters = self
            .groups
            .remove(key)
            .map(|g| g.waiters)
            .unwrap_or_default();
        self.waiting = self.waiting.saturating_sub(waiters.len());
        waiters
    }

    /// The leader failed: the oldest waiter takes over (it is returned, now the leader).
    pub fn promote(&mut self, key: &str) -> Option<Waiter<T>> {
        let group = self.groups.get_mut(key)?;
        if group.waiters.is_empty() {
            self.groups.remove(key);
            return None;
        }
        let next = group.waiters.remove(0);
        group.leader = Some(next.context_id);
        self.waiting = self.waiting.saturating_sub(1);
        Some(next)
    }

    /// A stream ended. Returns the key if it was a leader (its group needs a new one).
    pub fn leave(&mut self, context_id: u32) -> Option<String> {
        let mut led = None;
        for (key, group) in &mut self.groups {
            if group.leader == Some(context_id) {
                led = Some(key.clone());
            }
            let before = group.waiters.len();
            group.waiters.retain(|w| w.context_id != context_id);
            self.waiting = self.waiting.saturating_sub(before - group.waiters.len());
        }
        self.groups
            .retain(|_, g| g.leader.is_some() || !g.waiters.is_empty());
        led
    }

    pub fn is_leader(&self, key: &str, context_id: u32) -> bool {
        self.groups
            .get(key)
            .is_some_and(|g| g.leader == Some(context_id))
    }

    /// Keys whose leader is on another worker (polled from the tick).
    pub fn remote_keys(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| g.leader.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// What the longest-waiting request of a group carries.
    pub fn first_waiter(&self, key: &str) -> Option<&T> {
        self.groups.get(key)?.waiters.first().map(|w| &w.data)
    }

    /// What every request waiting in a group carries, longest-waiting first.
    pub fn waiters(&self, key: &str) -> impl Iterator<Item = &T> {
        self.groups
            .get(key)
            .into_iter()
            .flat_map(|g| g.waiters.iter().map(|w| &w.data))
    }

    /// The oldest wait of a group, for lease takeover and timeouts.
    pub fn oldest_wait(&self, key: &str) -> Option<u64> {
        self.groups
            .get(key)?
            .waiters
            .iter()
            .map(|w| w.since_ms)
            .min()
    }

    /// Keys whose oldest waiter has waited longer than its own timeout.
    pub fn overdue(&self, now_ms: u64, timeout_ms: impl Fn(&T) -> u64) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| {
                g.waiters
                    .iter()
                    .any(|w| now_ms.saturating_sub(w.since_ms) > timeout_ms(&w.data))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn waiting(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_leads_others_wait_and_finish_returns_them() {
        let mut c = Coalescer::new(10);
        assert_eq!(c.join("k", 1, 0, ()), Join::Lead);
        assert_eq!(c.join("k", 2, 1, ()), Join::Wait);
        assert_eq!(c.join("k", 3, 2, ()), Join::Wait);
        assert_eq!(c.join("other", 4, 2, ()), Join::Lead);
        assert!(c.is_leader("k", 1));
        let waiters: Vec<u32> = c.finish("k").iter().map(|w| w.context_id).collect();
        assert_eq!(waiters, [2, 3]);
        assert_eq!(c.waiting(), 0);
        assert_eq!(
            c.join("k", 5, 3, ()),
            Join::Lead,
            "a new fetch after the group ended"
        );
    }

    #[test]
    fn bounded_waiting() {
        let mut c = Coalescer::new(1);
        c.join("k", 1, 0, ());
        assert_eq!(c.join("k", 2, 0, ()), Join::Wait);
        assert_eq!(c.join("k", 3, 0, ()), Join::Full);
    }

    #[test]
    fn failed_leader_is_replaced_by_the_oldest_waiter() {
        let mut c = Coalescer::new(10);
        c.join("k", 1, 0, ());
        c.join("k", 2, 5, ());
        c.join("k", 3, 6, ());
        assert_eq!(c.leave(1), Some("k".to_string()));
        assert_eq!(c.promote("k").map(|w| w.context_id), Some(2));
        assert!(c.is_leader("k", 2));
        assert_eq!(c.waiting(), 1);
        assert_eq!(c.leave(3), None);
        assert_eq!(c.waiting(), 0);
    }

    #[test]
    fn remote_groups_are_listed_for_polling() {
        let mut c = Coalescer::new(10);
        assert_eq!(c.join("k", 1, 0, ()), Join::Lead);
        assert_eq!(c.wait_remote("k", 1, 0, ()), Join::Wait);
        assert_eq!(c.join("k", 2, 3, ()), Join::Wait);
        assert_eq!(c.remote_keys(), vec!["k".to_string()]);
        assert_eq!(c.oldest_wait("k"), Some(0));
        assert_eq!(c.finish("k").len(), 2);
        assert!(c.remote_keys().is_empty());
    }
}

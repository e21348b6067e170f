//! Answering the requests that waited for another request's response, from whichever context
//! has the response (the leader's stream, or the root context polling L2 for a leader on
//! another worker).

use proxy_wasm::hostcalls;

use super::metrics::Stat;
use super::reply::send_entry;
use super::worker::{WaitInfo, Worker};
use crate::policy::cache::coalesce::Waiter;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    evaluate_hit, may_serve_if_error, timing, ttl_left, CacheStatus, HitDecision,
};
use crate::policy::cache::freshness::{conditional_matches, current_age};
use crate::policy::cache::http_date::parse_http_date;
use crate::policy::header_list::header;
use std::rc::Rc;

/// What the leader ended with.
#[derive(Clone, Copy)]
pub enum Outcome<'a> {
    /// A stored (or validated) entry: each waiter gets it if it may (its own directives, its
    /// variant).
    Entry(&'a Entry),
    /// The origin failed and the stale entry stands in (stale-if-error).
    StaleIfError(&'a Entry),
    /// Nothing to answer from: every waiter goes to the origin itself.
    Release,
}

/// What a leader ended with, kept until the root context answers its waiters.
pub enum Settled {
    Entry(Rc<Entry>),
    StaleIfError(Rc<Entry>),
    Release,
}

impl Settled {
    pub fn of(outcome: Outcome<'_>) -> Self {
        match outcome {
            Outcome::Entry(entry) => Self::Entry(Rc::new(entry.clone())),
            Outcome::StaleIfError(entry) => Self::StaleIfError(Rc::new(entry.clone())),
            Outcome::Release => Self::Release,
        }
    }

    fn outcome(&self) -> Outcome<'_> {
        match self {
            Self::Entry(entry) => Outcome::Entry(entry),
            Self::StaleIfError(entry) => Outcome::StaleIfError(entry),
            Self::Release => Outcome::Release,
        }
    }
}

/// Waiters whose leader finished inside a filter callback, to be answered from the root.
pub struct DeferredGroup {
    pub waiters: Vec<Waiter<WaitInfo>>,
    pub settled: Settled,
}

/// Answers the requests waiting for `key`, or releases them to the origin. `current` is the
/// calling context, restored afterwards. Only from a callback that is not a stream's filter
/// callback (root, `on_http_call_response`, `on_done`): a local reply sent during a filter
/// callback stops that callback's own stream (proxy-wasm-cpp-host's VM-wide
/// `stopNextIteration`), so a leader in its response callbacks hands its waiters to
/// [`defer_waiters`] instead.
pub fn settle_waiters(
    worker: &mut Worker,
    key: &str,
    outcome: Outcome<'_>,
    current: u32,
    now: u64,
) {
    let waiters = worker.coalescer.finish(key);
    answer_waiters(worker, waiters, outcome, current, now);
}

/// From a filter callback: releases at once (resuming a stream is safe there), or queues the
/// answers for the root context and wakes it through the worker's own shared queue (the tick
/// answers them if the queue is unavailable).
pub fn defer_waiters(worker: &mut Worker, key: &str, settled: Settled, current: u32, now: u64) {
    let waiters = worker.coalescer.finish(key);
    if waiters.is_empty() {
        return;
    }
    if matches!(settled, Settled::Release) {
        answer_waiters(worker, waiters, Outcome::Release, current, now);
        return;
    }
    worker.deferred.push(DeferredGroup { waiters, settled });
    worker.wake_root();
}

/// Answers every deferred group (from the root context).
pub fn answer_deferred(worker: &mut Worker, root: u32, now: u64) {
    for group in std::mem::take(&mut worker.deferred) {
        answer_waiters(worker, group.waiters, group.settled.outcome(), root, now);
    }
}

/// Keeps `waiters` for the next root callback (this one's reply budget is spent).
fn defer_rest(worker: &mut Worker, waiters: Vec<Waiter<WaitInfo>>, outcome: Outcome<'_>) {
    if waiters.is_empty() {
        return;
    }
    worker.deferred.push(DeferredGroup {
        waiters,
        settled: Settled::of(outcome),
    });
    worker.wake_root();
}

fn answer_waiters(
    worker: &mut Worker,
    waiters: Vec<Waiter<WaitInfo>>,
    outcome: Outcome<'_>,
    current: u32,
    now: u64,
) {
    if waiters.is_empty() {
        return;
    }
    let name = worker.registry.settings().cache_status_name.clone();
    let mut waiters = waiters.into_iter();
    while let Some(waiter) = waiters.next() {
        if !worker.take_reply() {
            let rest: Vec<_> = std::iter::once(waiter).chain(waiters).collect();
            defer_rest(worker, rest, outcome);
            break;
        }
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue; // The stream is gone.
        }
        let request = &waiter.data;
        let answer = match outcome {
            Outcome::Entry(entry) => {
                match evaluate_hit(
                    entry,
                    &request.request_headers,
                    &request.request,
                    &worker.generations,
                    now,
                ) {
                    HitDecision::Serve { .. } => Some((entry, None)),
                    HitDecision::ServeStale { .. } => Some((entry, Some("stale-while-revalidate"))),
                    HitDecision::Revalidate | HitDecision::Miss(_) => None,
                }
            }
            Outcome::StaleIfError(entry) => {
                let age = current_age(&timing(entry), now);
                may_serve_if_error(entry, age).then_some((entry, Some("stale-if-error")))
            }
            Outcome::Release => None,
        };
        match answer {
            Some((entry, detail)) => {
                let age = current_age(&timing(entry), now);
                let not_modified = conditional_matches(
                    header(&request.request_headers, "if-none-match"),
                    header(&request.request_headers, "if-modified-since").and_then(parse_http_date),
                    entry.etag.as_deref(),
                    entry.last_modified,
                );
                let status = CacheStatus {
                    hit: true,
                    collapsed: true,
                    ttl: Some(ttl_left(entry, age)),
                    detail,
                    key: request.debug.then_some(entry.key.as_str()),
                    ..CacheStatus::default()
                }
                .render(&name);
                send_entry(entry, age, not_modified, request.head, &status);
                worker.answered.insert(waiter.context_id);
                worker.metrics.inc(Stat::Collapsed);
            }
            None => {
                let _ = hostcalls::resume_http_request();
            }
        }
    }
    let _ = hostcalls::set_effective_context(current);
}

/// Lets a waiting request go to the origin as the group's new leader.
pub fn resume_as_leader(context_id: u32, current: u32) {
    if hostcalls::set_effective_context(context_id).is_ok() {
        let _ = hostcalls::resume_http_request();
    }
    let _ = hostcalls::set_effective_context(current);
}

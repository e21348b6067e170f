//! Requests that wait for another request's response (one fetch per key, across workers), and
//! answering them from whichever context has the response: the leader's stream, or the root
//! context polling L2 for a leader on another worker.

use proxy_wasm::hostcalls;

use super::env::Env;
use super::host::now_millis;
use super::leases::Leases;
use super::metrics::Stat;
use super::replies::Replies;
use super::reply::{send_entry, EntryAnswer};
use super::tiers::{L2Read, Tiers};
use crate::policy::cache::coalesce::{Coalescer, Waiter};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    evaluate_hit, may_serve_if_error, timing, ttl_left, CacheStatus, HitDecision,
};
use crate::policy::cache::freshness::{current_age, RequestFacts};
use crate::policy::cache::generations::Generations;
use crate::policy::cache::lease::Acquire;
use crate::policy::cache::range::RangeRequest;
use crate::policy::cache::variants::{is_index, VaryIndex};
use crate::policy::header_list::borrowed;
use std::rc::Rc;

/// What answering a request that waits for another one needs.
pub struct WaitInfo {
    pub head: bool,
    pub request_headers: Vec<(String, String)>,
    pub request: RequestFacts,
    pub debug: bool,
    pub lease_ms: u64,
}

/// The worker's coalescing groups, and the answers its root context still has to send.
pub struct Coalescing {
    pub coalescer: Coalescer<WaitInfo>,
    deferred: Vec<DeferredGroup>,
}

impl Coalescing {
    pub fn new(max_waiting: u64) -> Self {
        Self {
            coalescer: Coalescer::new(usize::try_from(max_waiting).unwrap_or(usize::MAX)),
            deferred: Vec::new(),
        }
    }
}

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
enum Settled {
    Entry(Rc<Entry>),
    StaleIfError(Rc<Entry>),
    Release,
}

impl Settled {
    fn of(outcome: Outcome<'_>) -> Self {
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
struct DeferredGroup {
    waiters: Vec<Waiter<WaitInfo>>,
    settled: Settled,
}

/// Answers the requests waiting for `key`, or releases them to the origin. `current` is the
/// calling context, restored afterwards. Only from a callback that is not a stream's filter
/// callback (root, `on_http_call_response`, `on_done`): a local reply sent during a filter
/// callback stops that callback's own stream (proxy-wasm-cpp-host's VM-wide
/// `stopNextIteration`), so a leader in its response callbacks hands its waiters to
/// [`defer_waiters`] instead.
pub fn settle_waiters(
    (env, tiers, replies): (&Env, &Tiers, &mut Replies),
    coalescing: &mut Coalescing,
    key: &str,
    outcome: Outcome<'_>,
    current: u32,
) {
    let waiters = coalescing.coalescer.finish(key);
    let deferred = &mut coalescing.deferred;
    answer_waiters(
        (env, &tiers.generations, replies),
        deferred,
        waiters,
        outcome,
        current,
    );
}

/// From a filter callback: releases at once (resuming a stream is safe there), or queues the
/// answers for the root context and wakes it through the worker's own shared queue (the tick
/// answers them if the queue is unavailable).
pub fn defer_waiters(
    (env, tiers, replies): (&Env, &Tiers, &mut Replies),
    coalescing: &mut Coalescing,
    key: &str,
    outcome: Outcome<'_>,
    current: u32,
) {
    let waiters = coalescing.coalescer.finish(key);
    if waiters.is_empty() {
        return;
    }
    if matches!(outcome, Outcome::Release) {
        let deferred = &mut coalescing.deferred;
        answer_waiters(
            (env, &tiers.generations, replies),
            deferred,
            waiters,
            outcome,
            current,
        );
        return;
    }
    coalescing.deferred.push(DeferredGroup {
        waiters,
        settled: Settled::of(outcome),
    });
    replies.wake_root();
}

/// Answers every deferred group (from the root context).
pub fn answer_deferred(
    (env, tiers, replies): (&Env, &Tiers, &mut Replies),
    coalescing: &mut Coalescing,
    root: u32,
) {
    for group in std::mem::take(&mut coalescing.deferred) {
        let outcome = group.settled.outcome();
        let deferred = &mut coalescing.deferred;
        answer_waiters(
            (env, &tiers.generations, replies),
            deferred,
            group.waiters,
            outcome,
            root,
        );
    }
}

fn answer_waiters(
    (env, generations, replies): (&Env, &Generations, &mut Replies),
    deferred: &mut Vec<DeferredGroup>,
    waiters: Vec<Waiter<WaitInfo>>,
    outcome: Outcome<'_>,
    current: u32,
) {
    if waiters.is_empty() {
        return;
    }
    let now_ms = now_millis();
    let name = &env.registry.settings().cache_status_name;
    let mut waiters = waiters.into_iter();
    while let Some(waiter) = waiters.next() {
        if !replies.take() {
            // This callback's reply budget is spent: the rest wait for the next root callback.
            let rest: Vec<_> = std::iter::once(waiter).chain(waiters).collect();
            deferred.push(DeferredGroup {
                waiters: rest,
                settled: Settled::of(outcome),
            });
            replies.wake_root();
            break;
        }
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue; // The stream is gone.
        }
        let request = &waiter.data;
        let range = RangeRequest::of(&request.request.method, &request.request_headers);
        let answer = match outcome {
            Outcome::Entry(entry) | Outcome::StaleIfError(entry) if !range.answerable_by(entry) => {
                None
            }
            Outcome::Entry(entry) => {
                match evaluate_hit(
                    entry,
                    &request.request_headers,
                    &request.request,
                    generations,
                    now_ms,
                ) {
                    HitDecision::Serve { .. } => Some((entry, None)),
                    HitDecision::ServeStale { .. } => Some((entry, Some("stale-while-revalidate"))),
                    HitDecision::Revalidate | HitDecision::Miss(_) => None,
                }
            }
            Outcome::StaleIfError(entry) => {
                let age = current_age(&timing(entry), now_ms);
                may_serve_if_error(entry, age).then_some((entry, Some("stale-if-error")))
            }
            Outcome::Release => None,
        };
        match answer {
            Some((entry, detail)) => {
                let age = current_age(&timing(entry), now_ms);
                let status = CacheStatus {
                    hit: true,
                    collapsed: true,
                    ttl: Some(ttl_left(entry, age)),
                    detail,
                    key: request.debug.then_some(entry.key.as_str()),
                    ..CacheStatus::default()
                }
                .render(name);
                let request_headers = borrowed(&request.request_headers);
                let asked = (request_headers.as_slice(), request.head);
                let answer = EntryAnswer::for_request(entry, asked, &range, age, &status);
                send_entry(entry, &answer);
                replies.mark_answered(waiter.context_id);
                env.metrics.inc(Stat::Collapsed);
            }
            None => {
                let _ = hostcalls::resume_http_request();
            }
        }
    }
    let _ = hostcalls::set_effective_context(current);
}

/// Answers the requests waiting for `key`, whose URL holds variants, each with the variant it
/// selects from L2 (the others go to the origin). `false`, and nobody is answered, when L2
/// holds none of their variants: then one of them fetches for the others.
fn settle_variants(
    (env, tiers, replies): (&Env, &Tiers, &mut Replies),
    coalescing: &mut Coalescing,
    key: &str,
    index: &VaryIndex,
    root: u32,
) -> bool {
    // At most one L2 read per variant the index lists.
    let mut found: Vec<Entry> = Vec::new();
    let mut looked: Vec<String> = Vec::new();
    for waiter in coalescing.coalescer.waiters(key) {
        let Some(variant) = index.variant_key_for(key, &waiter.request_headers) else {
            continue;
        };
        if looked.contains(&variant) {
            continue;
        }
        if let L2Read::Found(entry) = tiers.l2_get(env, &variant) {
            found.push(entry);
        }
        looked.push(variant);
    }
    if found.is_empty() {
        return false;
    }
    let mut groups: Vec<(Option<usize>, Vec<Waiter<WaitInfo>>)> = Vec::new();
    for waiter in coalescing.coalescer.finish(key) {
        let variant = index.variant_key_for(key, &waiter.data.request_headers);
        let at = variant.and_then(|v| found.iter().position(|e| e.key == v));
        match groups.iter_mut().find(|(g, _)| *g == at) {
            Some((_, members)) => members.push(waiter),
            None => groups.push((at, vec![waiter])),
        }
    }
    for (at, waiters) in groups {
        let outcome = at
            .and_then(|at| found.get(at))
            .map_or(Outcome::Release, Outcome::Entry);
        let deferred = &mut coalescing.deferred;
        answer_waiters(
            (env, &tiers.generations, replies),
            deferred,
            waiters,
            outcome,
            root,
        );
    }
    true
}

/// Lets a waiting request go to the origin as the group's new leader.
pub fn resume_as_leader(context_id: u32, current: u32) {
    if hostcalls::set_effective_context(context_id).is_ok() {
        let _ = hostcalls::resume_http_request();
    }
    let _ = hostcalls::set_effective_context(current);
}

/// Requests waiting for a key another worker fetches: while its lease holds they wait; once it
/// is released (or expired) they are answered from L2, or one of them takes the lease and
/// fetches. Requests that waited twice their lease time go to the origin themselves (a slow
/// local leader, a lease that is never released). From the root context's tick.
pub fn poll_remote_leaders(
    (env, tiers, replies): (&Env, &Tiers, &mut Replies),
    leases: &mut Leases,
    coalescing: &mut Coalescing,
    root: u32,
    now_ms: u64,
) {
    // Twice the lease: a remote leader's expired lease is taken over first (see below).
    for key in coalescing
        .coalescer
        .overdue(now_ms, |w| w.lease_ms.saturating_mul(2))
    {
        settle_waiters(
            (env, tiers, replies),
            coalescing,
            &key,
            Outcome::Release,
            root,
        );
    }
    for key in coalescing.coalescer.remote_keys() {
        if leases.held_anywhere(&key, now_ms) {
            continue;
        }
        if let L2Read::Found(entry) = tiers.l2_get(env, &key) {
            let answered = match VaryIndex::of(&entry) {
                // The URL holds variants: each waiter gets the one it selects.
                Some(index) => {
                    settle_variants((env, tiers, replies), coalescing, &key, &index, root)
                }
                None if is_index(&entry) => false,
                None => {
                    let outcome = Outcome::Entry(&entry);
                    settle_waiters((env, tiers, replies), coalescing, &key, outcome, root);
                    true
                }
            };
            if answered {
                continue;
            }
        }
        let lease_ms = coalescing
            .coalescer
            .first_waiter(&key)
            .map_or(5000, |w| w.lease_ms);
        match leases.acquire(&key, now_ms, lease_ms) {
            Acquire::Acquired => match coalescing.coalescer.promote(&key) {
                Some(next) => resume_as_leader(next.context_id, root),
                None => leases.release(&key),
            },
            Acquire::HeldElsewhere { .. } => {}
            Acquire::Collision => settle_waiters(
                (env, tiers, replies),
                coalescing,
                &key,
                Outcome::Release,
                root,
            ),
        }
    }
}

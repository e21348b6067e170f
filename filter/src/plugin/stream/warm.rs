//! Cache warming (`POST <admin prefix>/cache/warm`): the stream fetches the planned URLs
//! itself, a few at a time, stores what may be stored, and answers with the counts.

use std::rc::Rc;

use proxy_wasm::types::{Action, BufferType, MapType};

use super::revalidation::REVALIDATION_TIMEOUT;
use super::state::{EdgeHttp, Management};
use crate::plugin::host::{body, call, headers, now_millis, status_of};
use crate::plugin::tiers::{FetchedResponse, Kept};
use crate::policy::cache::exchange::request_facts;
use crate::policy::cache::warm::WARM_CONCURRENCY;

impl EdgeHttp {
    /// Starts queued warm fetches up to the concurrency bound; replies once all are done.
    pub(super) fn continue_warm(&mut self) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        let registry = Rc::clone(&worker.env.registry);
        let cluster = &registry.settings().upstream_cluster;
        let Management::Warming(warm) = &mut self.management else {
            return Action::Continue;
        };
        while warm.in_flight.len() < WARM_CONCURRENCY {
            let Some(target) = warm.queued.pop_front() else {
                break;
            };
            match call(cluster, &target.headers, None, &[], REVALIDATION_TIMEOUT) {
                Ok(token) => {
                    warm.in_flight.insert(token, target);
                }
                Err(_) => warm.failed += 1,
            }
        }
        if !(warm.in_flight.is_empty() && warm.queued.is_empty()) {
            return Action::Pause;
        }
        let counts = serde_json::json!({
            "stored": warm.stored,
            "skipped": warm.skipped,
            "failed": warm.failed,
        });
        self.management = Management::Idle;
        self.reply_json((200, counts.to_string()))
    }

    /// A warm fetch came back: store it if it may be stored, count it, go on.
    pub(super) fn on_warmed(&mut self, token: u32, body_size: usize) {
        let (Some(worker), Management::Warming(warm)) = (self.worker.clone(), &mut self.management)
        else {
            return;
        };
        let Some(target) = warm.in_flight.remove(&token) else {
            return;
        };
        let response = headers(MapType::HttpCallResponseHeaders);
        let registry = Rc::clone(&worker.env.registry);
        let section = registry.cache_at(target.service_index);
        match (status_of(&response), section) {
            (Some(status), Some(section)) if status < 500 => {
                let now_ms = now_millis();
                let fetched = FetchedResponse {
                    service_index: target.service_index,
                    key: &target.key,
                    started: &warm.generations,
                    request: &request_facts("GET", &target.headers),
                    request_headers: &target.headers,
                    request_time_ms: now_ms,
                    response_time_ms: now_ms,
                    status,
                    response_headers: &response,
                    body: body(BufferType::HttpCallResponseBody, body_size),
                    old: None,
                };
                let w = &mut *worker.borrow_mut();
                match w.tiers.store_fetched(&w.env, section, fetched) {
                    Kept::Stored(_) => warm.stored += 1,
                    Kept::Unkept(_) | Kept::NotStorable => warm.skipped += 1,
                }
            }
            _ => warm.failed += 1,
        }
        self.continue_warm();
    }
}

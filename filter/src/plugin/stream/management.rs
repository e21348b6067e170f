//! Management requests the filter answers itself under the admin prefix: health, metrics,
//! cache stats, the dashboard, the explainer page (`explain.rs`), purges (`PURGE <url>`,
//! `POST .../cache/purge`) and cache warming (`POST .../cache/warm`, see `warm.rs`). They never
//! reach the origin.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType};

use super::request::Request;
use super::state::{BodyFor, EdgeHttp, Management, WarmRun};
use crate::plugin::admin;
use crate::plugin::dashboard;
use crate::plugin::explain;
use crate::plugin::health::health;
use crate::plugin::host::{body, now_millis};
use crate::plugin::hot_keys;
use crate::plugin::monitor;
use crate::plugin::reply::json_error;
use crate::plugin::worker::WorkerRef;
use crate::policy::cache::purge_request::MAX_PURGE_BODY;
use crate::policy::cache::warm::plan_warm;
use crate::policy::explain_page::{is_explain_endpoint, is_explain_page};
use crate::policy::path_without_query;

/// Management endpoints that only read (token or allowed address needed).
enum ReadEndpoint {
    Metrics,
    CacheStats,
    Dashboard,
    HotKeys,
    /// `/explain`, `/explain/…`: the explainer page, its `.wasm`, the running configuration.
    Explain,
}

impl ReadEndpoint {
    fn of(endpoint: &str) -> Option<Self> {
        match endpoint {
            "/metrics" => Some(Self::Metrics),
            "/cache/stats" => Some(Self::CacheStats),
            "/dashboard" => Some(Self::Dashboard),
            "/cache/hot" => Some(Self::HotKeys),
            _ if is_explain_endpoint(endpoint) => Some(Self::Explain),
            _ => None,
        }
    }
}

impl EdgeHttp {
    /// `Some` when the request is a management request (answered, or its body awaited).
    pub(super) fn on_management(
        &mut self,
        worker: &WorkerRef,
        request: &Request<'_>,
        end_of_stream: bool,
    ) -> Option<Action> {
        let registry = Rc::clone(&worker.env.registry);
        let prefix = &registry.settings().admin.path_prefix;
        let endpoint = path_without_query(request.path).strip_prefix(prefix.as_str());
        let reads = request.reads();
        if endpoint == Some("/health") && reads {
            let reply = {
                let w = &mut *worker.borrow_mut();
                if w.env.registry.uses_fleet() {
                    w.fleet.usable(now_millis());
                }
                health(
                    (&*w.env, &mut w.breakers),
                    (&w.monitor, &w.fleet),
                    now_millis(),
                )
            };
            return Some(self.reply_json(reply));
        }
        if let Some(read) = endpoint.and_then(ReadEndpoint::of) {
            let endpoint = endpoint.unwrap_or_default();
            if let Err(refusal) = admin::authorize(&registry, request.headers) {
                if matches!(read, ReadEndpoint::Explain) && is_explain_page(endpoint) {
                    let login = dashboard::LOGIN.as_bytes();
                    return Some(self.reply(refusal.0, &explain::page_headers(), Some(login)));
                }
                if matches!(read, ReadEndpoint::Dashboard) {
                    let login = dashboard::LOGIN.as_bytes();
                    return Some(self.reply(refusal.0, &dashboard::headers(), Some(login)));
                }
                return Some(self.reply_json(refusal));
            }
            if !reads {
                return Some(self.reply_json(json_error(405, "use GET")));
            }
            let now_ms = now_millis();
            let report = {
                let w = &mut *worker.borrow_mut();
                let (reporting, l1) = ((&*w.env, &mut w.breakers), &w.tiers.l1);
                match read {
                    ReadEndpoint::Metrics => {
                        Some(monitor::metrics(reporting, &mut w.monitor, l1, now_ms))
                    }
                    ReadEndpoint::CacheStats => {
                        Some(monitor::cache_stats(reporting, &mut w.monitor, l1, now_ms))
                    }
                    ReadEndpoint::HotKeys => {
                        let capacity = w.env.registry.settings().monitoring.hot_keys;
                        Some(hot_keys::report(&w.hot_keys, request.path, capacity))
                    }
                    ReadEndpoint::Dashboard | ReadEndpoint::Explain => None,
                }
            };
            return Some(match report {
                Some(reply) => self.reply_json(reply),
                None if matches!(read, ReadEndpoint::Explain) => {
                    let head = request.method == "HEAD";
                    let answer = {
                        let config = &worker.borrow().running_config;
                        explain::answer(endpoint, request.headers, head, config)
                    };
                    self.reply(answer.status, &answer.headers, answer.body.as_deref())
                }
                None => {
                    let page = dashboard::PAGE.as_bytes();
                    self.reply(200, &dashboard::headers(), Some(page))
                }
            });
        }
        let body_for = match endpoint {
            Some("/cache/purge") => BodyFor::Purge,
            Some("/cache/warm") => BodyFor::Warm {
                scheme: request.scheme.to_string(),
                authority: request.authority.to_string(),
            },
            _ if request.method == "PURGE" => BodyFor::Purge,
            // Everything else under the prefix is the edge's too: never forwarded (with the
            // admin token) to an origin that may answer it.
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                if let Err(refusal) = admin::authorize(&registry, request.headers) {
                    return Some(self.reply_json(refusal));
                }
                let reply = match rest {
                    "/health" => json_error(405, "use GET"),
                    _ => json_error(404, "no such management endpoint"),
                };
                return Some(self.reply_json(reply));
            }
            _ => return None,
        };
        if let Err(refusal) = admin::authorize(&registry, request.headers) {
            return Some(self.reply_json(refusal));
        }
        if request.method == "PURGE" {
            let reply = {
                let w = &mut *worker.borrow_mut();
                let tiers = (&*w.env, &mut w.tiers);
                admin::purge_url(tiers, request.scheme, request.authority, request.path)
            };
            return Some(self.reply_json(reply));
        }
        if request.method != "POST" {
            return Some(self.reply_json(json_error(405, "use POST")));
        }
        if end_of_stream {
            return Some(self.reply_json(json_error(400, "a JSON body is required")));
        }
        // Envoy delivers no body to a filter that paused the headers, so the headers go on and
        // the buffer filter after this one holds them until the body is complete; the reply is
        // sent then, and nothing reaches the origin. The token goes no further in any case.
        for name in [admin::TOKEN_HEADER, "authorization"] {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
        }
        self.management = Management::CollectingBody(body_for);
        Some(Action::Continue)
    }

    /// A chunk of a management request's body; the whole body is acted on.
    pub(super) fn on_management_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !matches!(self.management, Management::CollectingBody(_)) {
            return Action::Continue;
        }
        if body_size > MAX_PURGE_BODY {
            self.management = Management::Idle;
            return self.reply_json(json_error(413, "management request body too large"));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let (Management::CollectingBody(body_for), Some(worker)) = (
            std::mem::replace(&mut self.management, Management::Idle),
            self.worker.clone(),
        ) else {
            return Action::Continue;
        };
        let request_body = body(BufferType::HttpRequestBody, body_size);
        match body_for {
            BodyFor::Purge => {
                let reply = {
                    let w = &mut *worker.borrow_mut();
                    admin::purge_request((&*w.env, &mut w.tiers), &request_body)
                };
                self.reply_json(reply)
            }
            BodyFor::Warm { scheme, authority } => {
                let registry = Rc::clone(&worker.env.registry);
                match plan_warm(&registry, &scheme, &authority, &request_body) {
                    Err(reason) => self.reply_json(json_error(400, &reason)),
                    Ok(targets) => {
                        let generations = Rc::clone(&worker.borrow().tiers.generations);
                        self.management =
                            Management::Warming(Box::new(WarmRun::new(generations, targets)));
                        self.continue_warm()
                    }
                }
            }
        }
    }

    /// Trailers on a management request are refused (`Some`).
    pub(super) fn on_management_trailers(&mut self) -> Option<Action> {
        if !matches!(self.management, Management::CollectingBody(_)) {
            return None;
        }
        self.management = Management::Idle;
        let refusal = json_error(400, "management requests take no trailers");
        Some(self.reply_json(refusal))
    }
}

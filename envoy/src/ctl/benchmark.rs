//! `edge-ctl benchmark`: each of the four demo services measured direct to the origin
//! (baseline) and through the edge (achieved) with the same seeded traffic (see
//! [`super::workload`]); p50/p95 per service, the improvement, the hit rate, and webhooks
//! reported by class (first deliveries vs duplicates).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::progress::Progress;
use super::style::{table, Style};
use super::workload::{requests, Class, Request, Shape, SERVICES};
use crate::launch::KeepAliveClient;

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    pub service: &'static str,
    pub class: Class,
    pub latency_ms: f64,
    /// 0 when no answer came.
    pub status: u16,
    /// `Cache-Status` says hit.
    pub hit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub service: String,
    pub class: Class,
    pub requests: usize,
    pub baseline_p50_ms: f64,
    pub baseline_p95_ms: f64,
    pub edge_p50_ms: f64,
    pub edge_p95_ms: f64,
    pub baseline_mean_ms: f64,
    pub edge_mean_ms: f64,
    /// Baseline p95 over edge p95.
    pub p95_speedup: f64,
    /// Baseline mean over edge mean.
    pub mean_speedup: f64,
    /// Reads only: share of edge answers that were cache hits.
    pub hit_rate: Option<f64>,
    pub baseline_errors: usize,
    pub edge_errors: usize,
    /// The service's `latency_target_ms`, when the configuration gives one.
    pub latency_target_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchmarkResult {
    pub finished_unix_s: u64,
    pub iterations: usize,
    pub concurrency: usize,
    pub tenants: usize,
    pub keys: usize,
    pub zipf_exponent: f64,
    pub origin: String,
    pub edge: String,
    pub duration_s: f64,
    pub rows: Vec<Row>,
    /// Hits over reads through the edge, all read services together.
    pub hit_rate: Option<f64>,
    pub hit_rate_target: f64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub shape: Shape,
    pub concurrency: usize,
    pub origin: SocketAddr,
    pub edge: SocketAddr,
    /// `latency_target_ms` per service name.
    pub targets: Vec<(String, u64)>,
    pub hit_rate_target: f64,
}

/// Runs the plan: per service, the traffic direct to the origin, then through the edge.
pub fn run(plan: &Plan) -> BenchmarkResult {
    let started = Instant::now();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let traffic: Vec<Vec<Request>> = SERVICES
        .iter()
        .map(|service| requests(service, &plan.shape, run_id))
        .collect();
    let total: usize = traffic.iter().map(Vec::len).sum();
    let progress = Mutex::new(Progress::new("benchmark", 2 * total as u64));
    let mut baseline = Vec::new();
    let mut edge = Vec::new();
    for requests in &traffic {
        baseline.extend(run_phase(
            plan.origin,
            requests,
            plan.concurrency,
            &progress,
        ));
        edge.extend(run_phase(plan.edge, requests, plan.concurrency, &progress));
    }
    if let Ok(progress) = progress.into_inner() {
        progress.finish();
    }
    let rows = summarise(&baseline, &edge, &plan.targets);
    let reads: Vec<&Sample> = edge.iter().filter(|s| s.class == Class::Read).collect();
    BenchmarkResult {
        finished_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        iterations: plan.shape.iterations,
        concurrency: plan.concurrency,
        tenants: plan.shape.tenants,
        keys: plan.shape.keys,
        zipf_exponent: plan.shape.zipf_exponent,
        origin: plan.origin.to_string(),
        edge: plan.edge.to_string(),
        duration_s: started.elapsed().as_secs_f64(),
        rows,
        hit_rate: ratio(reads.iter().filter(|s| s.hit).count(), reads.len()),
        hit_rate_target: plan.hit_rate_target,
    }
}

/// `requests` sent by `concurrency` keep-alive clients, in order of the list.
fn run_phase(
    target: SocketAddr,
    requests: &[Request],
    concurrency: usize,
    progress: &Mutex<Progress>,
) -> Vec<Sample> {
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(requests.len()));
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| {
                let mut client = KeepAliveClient::new(target, Duration::from_secs(30));
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let headers: Vec<(&str, &str)> = request
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let sent = Instant::now();
                    let answer =
                        client.request(request.method, &request.path, &headers, &request.body);
                    let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                    let (status, hit) = match &answer {
                        Ok(response) => (
                            response.status,
                            response
                                .header("cache-status")
                                .is_some_and(|v| v.contains("; hit")),
                        ),
                        Err(_) => (0, false),
                    };
                    mine.push(Sample {
                        service: request.service,
                        class: request.class,
                        latency_ms,
                        status,
                        hit,
                    });
                    if let Ok(mut progress) = progress.lock() {
                        progress.advance(1);
                    }
                }
                if let Ok(mut samples) = samples.lock() {
                    samples.extend(mine);
                }
            });
        }
    });
    samples.into_inner().unwrap_or_default()
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Nearest-rank percentile (`q` in 0..=1) of unsorted values; 0 when empty.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The mean; 0 when empty.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// One row per (service, class), in the seed table's order.
pub fn summarise(baseline: &[Sample], edge: &[Sample], targets: &[(String, u64)]) -> Vec<Row> {
    let mut keys: Vec<(usize, Class)> = edge
        .iter()
        .map(|s| {
            let order = SERVICES.iter().position(|n| *n == s.service).unwrap_or(9);
            (order, s.class)
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(order, class)| {
            let service = *SERVICES.get(order)?;
            let pick = |samples: &[Sample]| -> Vec<Sample> {
                samples
                    .iter()
                    .filter(|s| s.service == service && s.class == class)
                    .cloned()
                    .collect()
            };
            let (base, through) = (pick(baseline), pick(edge));
            let latencies = |s: &[Sample]| s.iter().map(|s| s.latency_ms).collect::<Vec<_>>();
            let errors =
                |s: &[Sample]| s.iter().filter(|s| !(200..300).contains(&s.status)).count();
            let (base_l, edge_l) = (latencies(&base), latencies(&through));
            let edge_p95 = percentile(&edge_l, 0.95);
            let (base_mean, edge_mean) = (mean(&base_l), mean(&edge_l));
            Some(Row {
                service: match class {
                    Class::Read => service.to_string(),
                    Class::FirstDelivery => format!("{service} (first deliveries)"),
                    Class::Duplicate => format!("{service} (retries/duplicates)"),
                },
                class,
                requests: through.len(),
                baseline_p50_ms: percentile(&base_l, 0.5),
                baseline_p95_ms: percentile(&base_l, 0.95),
                edge_p50_ms: percentile(&edge_l, 0.5),
                edge_p95_ms: edge_p95,
                baseline_mean_ms: base_mean,
                edge_mean_ms: edge_mean,
                mean_speedup: if edge_mean > 0.0 {
                    base_mean / edge_mean
                } else {
                    0.0
                },
                p95_speedup: if edge_p95 > 0.0 {
                    percentile(&base_l, 0.95) / edge_p95
                } else {
                    0.0
                },
                hit_rate: (class == Class::Read)
                    .then(|| ratio(through.iter().filter(|s| s.hit).count(), through.len()))
                    .flatten(),
                baseline_errors: errors(&base),
                edge_errors: errors(&through),
                latency_target_ms: targets
                    .iter()
                    .find(|(name, _)| name == service)
                    .map(|(_, t)| *t),
            })
        })
        .collect()
}

fn ms(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.1} ms")
    }
}

pub fn render(result: &BenchmarkResult, style: Style) -> String {
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            let target = row
                .latency_target_ms
                .map_or("-".to_string(), |t| format!("{t} ms"));
            let met = row.latency_target_ms.map(|t| row.edge_p95_ms <= t as f64);
            vec![
                row.service.clone(),
                row.requests.to_string(),
                format!(
                    "{} / {} / {}",
                    ms(row.baseline_p50_ms),
                    ms(row.baseline_p95_ms),
                    ms(row.baseline_mean_ms)
                ),
                format!(
                    "{} / {} / {}",
                    ms(row.edge_p50_ms),
                    ms(row.edge_p95_ms),
                    ms(row.edge_mean_ms)
                ),
                format!("×{:.1}", row.mean_speedup),
                row.hit_rate
                    .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0)),
                match met {
                    Some(true) => style.good(&target),
                    Some(false) => style.bad(&target),
                    None => target,
                },
            ]
        })
        .collect();
    let mut out = table(
        &[
            "service",
            "requests",
            "baseline p50 / p95 / mean",
            "through the edge p50 / p95 / mean",
            "mean faster",
            "hit rate",
            "target p95",
        ],
        &rows,
    );
    let errors: Vec<String> = result
        .rows
        .iter()
        .filter(|r| r.baseline_errors + r.edge_errors > 0)
        .map(|r| {
            format!(
                "{}: {} baseline / {} edge non-2xx",
                r.service, r.baseline_errors, r.edge_errors
            )
        })
        .collect();
    out.push_str(&format!(
        "\ncache hit rate (all reads through the edge): {} (target {:.0}%)\n",
        result
            .hit_rate
            .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0)),
        result.hit_rate_target * 100.0
    ));
    out.push_str(&format!(
        "{} requests per service, concurrency {}, {} tenants × {} keys (Zipf s={}), {:.1} s; origin {}, edge {}\n",
        result.iterations,
        result.concurrency,
        result.tenants,
        result.keys,
        result.zipf_exponent,
        result.duration_s,
        result.origin,
        result.edge
    ));
    if !errors.is_empty() {
        out.push_str(&style.warn(&format!("errors: {}\n", errors.join("; "))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(service: &'static str, class: Class, latency_ms: f64, hit: bool) -> Sample {
        Sample {
            service,
            class,
            latency_ms,
            status: 200,
            hit,
        }
    }

    #[test]
    fn rows_per_service_and_class_with_percentiles() {
        assert_eq!(percentile(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.5), 3.0);
        assert_eq!(percentile(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.95), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        let baseline = vec![
            sample("leads", Class::Read, 150.0, false),
            sample("leads", Class::Read, 152.0, false),
            sample("webhooks", Class::FirstDelivery, 400.0, false),
            sample("webhooks", Class::Duplicate, 401.0, false),
        ];
        let edge = vec![
            sample("leads", Class::Read, 151.0, false),
            sample("leads", Class::Read, 1.0, true),
            sample("webhooks", Class::Duplicate, 2.0, false),
            sample("webhooks", Class::FirstDelivery, 402.0, false),
        ];
        let rows = summarise(&baseline, &edge, &[("leads".into(), 150)]);
        let names: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
        assert_eq!(
            names,
            [
                "webhooks (first deliveries)",
                "webhooks (retries/duplicates)",
                "leads"
            ]
        );
        assert_eq!(rows[1].p95_speedup, 401.0 / 2.0);
        assert_eq!(rows[2].mean_speedup, 151.0 / 76.0);
        assert_eq!(rows[2].hit_rate, Some(0.5));
        assert_eq!(rows[2].latency_target_ms, Some(150));
        assert_eq!(rows[0].hit_rate, None);
    }
}

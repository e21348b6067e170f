//! The benchmark's traffic: for each of the demo's four services, `iterations` requests with
//! Zipf-repeated keys per tenant for reads, and webhook deliveries with retries (a delivery sent
//! again later) and duplicates (sent again at once, usually while the first is in flight).
//! The same seeded sequence goes direct to the origin and through the edge.

use serde::Serialize;

use super::zipf::{Rng, Zipf};

/// The four services of the demo, in the order of the seed's table.
pub const SERVICES: [&str; 4] = ["webhooks", "coaching", "leads", "properties"];

const CITIES: [&str; 8] = [
    "austin", "dallas", "houston", "denver", "miami", "seattle", "boston", "chicago",
];

/// How a request is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Read,
    /// A webhook delivery id seen for the first time.
    FirstDelivery,
    /// A delivery id sent before (a sender's retry or a duplicate).
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub service: &'static str,
    pub class: Class,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub iterations: usize,
    pub tenants: usize,
    pub keys: usize,
    pub zipf_exponent: f64,
    pub seed: u64,
}

/// `iterations` requests for `service`; `run` makes webhook ids unique to this run (the edge
/// keeps delivery results for a day).
pub fn requests(service: &'static str, shape: &Shape, run: u64) -> Vec<Request> {
    let mut rng = Rng::new(shape.seed ^ service.len() as u64 ^ u64::from(service.as_bytes()[0]));
    let zipf = Zipf::new(shape.keys, shape.zipf_exponent);
    let mut delivered: Vec<u64> = Vec::new();
    (0..shape.iterations)
        .map(|_| {
            let tenant = format!("loc-{}", rng.below(shape.tenants as u64) + 1);
            let key = zipf.sample(&mut rng);
            let read = |path: String, headers: Vec<(String, String)>| Request {
                service,
                class: Class::Read,
                method: "GET",
                path,
                headers,
                body: Vec::new(),
            };
            match service {
                "leads" => read(
                    format!("/api/v1/leads/{key}"),
                    vec![("x-location-id".into(), tenant)],
                ),
                "coaching" => read(
                    format!("/api/v1/coaching/{key}"),
                    vec![("x-location-id".into(), tenant)],
                ),
                "properties" => {
                    let city = CITIES[key % CITIES.len()];
                    let page = key / CITIES.len() + 1;
                    read(
                        format!("/api/v1/properties?city={city}&page={page}"),
                        vec![],
                    )
                }
                _ => {
                    // 70% new deliveries, 20% retries of an earlier one, 10% the last one again.
                    let roll = rng.unit();
                    let (id, class) = match delivered.last() {
                        Some(&last) if roll >= 0.9 => (last, Class::Duplicate),
                        Some(_) if roll >= 0.7 => {
                            let earlier = delivered[rng.below(delivered.len() as u64) as usize];
                            (earlier, Class::Duplicate)
                        }
                        _ => {
                            let id = delivered.len() as u64 + 1;
                            delivered.push(id);
                            (id, Class::FirstDelivery)
                        }
                    };
                    // A delivery's body is the same every time it is sent.
                    let tenant = format!("loc-{}", id % shape.tenants.max(1) as u64 + 1);
                    let id = format!("msg_{run:x}_{id}");
                    Request {
                        service,
                        class,
                        method: "POST",
                        path: "/webhooks/ghl".into(),
                        headers: vec![
                            ("webhook-id".into(), id.clone()),
                            ("content-type".into(), "application/json".into()),
                        ],
                        body: format!(
                            r#"{{"type":"contact.created","id":"{id}","tenant":"{tenant}"}}"#
                        )
                        .into_bytes(),
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_repeat_keys_and_deliveries_repeat_ids() {
        let shape = Shape {
            iterations: 500,
            tenants: 4,
            keys: 50,
            zipf_exponent: 1.1,
            seed: 1,
        };
        let leads = requests("leads", &shape, 9);
        assert_eq!(leads.len(), 500);
        let distinct: std::collections::BTreeSet<_> = leads
            .iter()
            .map(|r| (r.path.clone(), r.headers.clone()))
            .collect();
        assert!(distinct.len() < 150, "{}", distinct.len());
        let hooks = requests("webhooks", &shape, 9);
        let firsts = hooks
            .iter()
            .filter(|r| r.class == Class::FirstDelivery)
            .count();
        assert!((300..400).contains(&firsts), "{firsts}");
        assert!(hooks[0].headers[0].1.starts_with("msg_9_"));
        // Same seed, same traffic.
        assert_eq!(requests("leads", &shape, 9)[7].path, leads[7].path);
    }
}

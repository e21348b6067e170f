//! Figure: a Zipf workload through real Envoy with the filter, on keep-alive connections.
//!
//! `cargo run --release -p edge-envoy --example zipf` sends 20,000 GETs from 32 keep-alive
//! clients over 1,000 keys (Zipf, s = 1) through Envoy with 2 workers, to an origin that takes
//! 150 ms and answers `cache-control: max-age=1, stale-while-revalidate=5`, and prints req/s,
//! mean and p99 latency, origin fetches and the requests never answered (client timeout).
//! Options (all optional): `--requests N --clients N --workers N --keys N --s F --delay-ms N
//! --cache-control S --timeout-ms N --wasm FILE` (`EDGE_WASM` also picks the filter).
//!
//! `--target HOST:PORT [--path-prefix P]` makes it the load generator alone: it starts nothing
//! and sends the same draws to `HOST:PORT` as `GET <P><key>` (default prefix `/z/`), then prints
//! a `zipf-result` line of `key=value` pairs (req/s, mean/p95/p99 latency, failures) for
//! `benches/peers/workload.sh`, which counts origin fetches at the origin itself.
//! `--answers-out FILE` writes one line per answer, `<sent µs since the start> <latency µs>`:
//! where in the run a server loses time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_envoy::launch::{test_stack_with, KeepAliveClient, TestOrigin, TestOriginSpec, Upstream};

/// An answer this slow waited on the origin (the demo origin takes 150 ms a lead).
const WAITED_US: u64 = 100_000;

const CONFIG: &str = r#"{"services":[{"name":"z","match":{"path_prefix":"/z/"},"cache":{}}]}"#;

struct Args {
    requests: u64,
    clients: usize,
    workers: u32,
    keys: usize,
    s: f64,
    delay_ms: u64,
    cache_control: String,
    timeout_ms: u64,
    wasm: Option<String>,
    target: Option<SocketAddr>,
    path_prefix: String,
    answers_out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 20_000,
        clients: 32,
        workers: 2,
        keys: 1_000,
        s: 1.0,
        delay_ms: 150,
        cache_control: "max-age=1, stale-while-revalidate=5".to_string(),
        timeout_ms: 5_000,
        wasm: None,
        target: None,
        path_prefix: "/z/".to_string(),
        answers_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |_| format!("{flag}: bad value {value:?}");
        match flag.as_str() {
            "--requests" => args.requests = value.parse().map_err(bad)?,
            "--clients" => args.clients = value.parse().map_err(bad)?,
            "--workers" => args.workers = value.parse().map_err(bad)?,
            "--keys" => args.keys = value.parse().map_err(bad)?,
            "--s" => {
                args.s = value
                    .parse()
                    .map_err(|_| format!("--s: bad value {value:?}"))?
            }
            "--delay-ms" => args.delay_ms = value.parse().map_err(bad)?,
            "--cache-control" => args.cache_control = value,
            "--timeout-ms" => args.timeout_ms = value.parse().map_err(bad)?,
            "--wasm" => args.wasm = Some(value),
            "--target" => {
                args.target = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--target: not an address (ip:port): {value:?}"))?,
                )
            }
            "--path-prefix" => args.path_prefix = value,
            "--answers-out" => args.answers_out = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.clients == 0 || args.keys == 0 || args.workers == 0 {
        return Err("--clients, --keys and --workers must be at least 1".into());
    }
    Ok(args)
}

/// splitmix64: a seeded generator per client, so runs draw the same keys.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct Tally {
    /// (sent, latency) of every answer, µs; sent counts from the start of the run.
    timeline: Vec<(u64, u64)>,
    not_200: u64,
    unanswered: u64,
    failed: u64,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("zipf: {err}");
            std::process::exit(2);
        }
    };
    // Without --target: a test origin and Envoy with the filter, torn down at the end.
    let setup = match args.target {
        Some(_) => None,
        None => {
            let origin = TestOrigin::start(TestOriginSpec {
                get_delay: Duration::from_millis(args.delay_ms),
                cache_control: args.cache_control.clone(),
                ..TestOriginSpec::default()
            })
            .unwrap_or_else(|err| panic!("test origin: {err}"));
            let upstream = Upstream::External {
                host: "127.0.0.1".into(),
                port: origin.addr().port(),
            };
            let stack = test_stack_with(Some(CONFIG), 0.0, |options| {
                options.upstream = upstream.clone();
                options.workers = args.workers;
                if let Some(wasm) = &args.wasm {
                    options.wasm = wasm.into();
                }
            });
            Some((origin, stack))
        }
    };
    let listen = match (&args.target, &setup) {
        (Some(target), _) => *target,
        (None, Some((_, stack))) => stack.listen,
        (None, None) => unreachable!("a stack is started whenever there is no --target"),
    };
    // Cumulative Zipf weights over ranks 1..=keys.
    let mut cumulative = Vec::with_capacity(args.keys);
    let mut total = 0.0;
    for rank in 1..=args.keys {
        total += 1.0 / (rank as f64).powf(args.s);
        cumulative.push(total);
    }
    let cumulative = Arc::new(cumulative);
    let issued = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let timeout = Duration::from_millis(args.timeout_ms);
    let started = Instant::now();
    let threads: Vec<_> = (0..args.clients)
        .map(|client| {
            let (cumulative, issued, tally) = (
                Arc::clone(&cumulative),
                Arc::clone(&issued),
                Arc::clone(&tally),
            );
            let (prefix, requests) = (args.path_prefix.clone(), args.requests);
            std::thread::spawn(move || {
                let mut rng = Rng(client as u64 + 1);
                let mut connection = KeepAliveClient::new(listen, timeout);
                let mut mine = Tally::default();
                while issued.fetch_add(1, Ordering::Relaxed) < requests {
                    let draw = rng.next_f64() * total;
                    let key = cumulative.partition_point(|c| *c < draw);
                    let sent = Instant::now();
                    match connection.request("GET", &format!("{prefix}{key}"), &[], b"") {
                        Ok(response) => {
                            let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                            let sent_us =
                                u64::try_from((sent - started).as_micros()).unwrap_or(u64::MAX);
                            mine.timeline.push((sent_us, us));
                            if response.status != 200 {
                                mine.not_200 += 1;
                            }
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                            mine.unanswered += 1;
                        }
                        Err(err) => {
                            mine.failed += 1;
                            if std::env::var_os("ZIPF_VERBOSE").is_some() {
                                eprintln!("{prefix}{key}: {err} after {:?}", sent.elapsed());
                            }
                        }
                    }
                }
                let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.timeline.extend(mine.timeline);
                tally.not_200 += mine.not_200;
                tally.unanswered += mine.unanswered;
                tally.failed += mine.failed;
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = started.elapsed();
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    let mut latencies_us: Vec<u64> = tally.timeline.iter().map(|(_, us)| *us).collect();
    latencies_us.sort_unstable();
    let answered = latencies_us.len();
    let mean_ms = latencies_us.iter().sum::<u64>() as f64 / answered.max(1) as f64 / 1000.0;
    let percentile_ms = |p: usize| {
        latencies_us
            .get((answered * p / 100).saturating_sub(1))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let (p95_ms, p99_ms) = (percentile_ms(95), percentile_ms(99));
    let rps = answered as f64 / elapsed.as_secs_f64();
    // Answers that took 100 ms or more waited on the origin (it takes 150 ms a lead); the
    // rest did not. Where a cache loses time shows in one mean or the other.
    let (quick, waited) = latencies_us.split_at(latencies_us.partition_point(|us| *us < WAITED_US));
    if let Some(path) = &args.answers_out {
        let lines: String = tally
            .timeline
            .iter()
            .map(|(sent_us, us)| format!("{sent_us} {us}\n"))
            .collect();
        if let Err(err) = std::fs::write(path, lines) {
            eprintln!("zipf: cannot write {path}: {err}");
        }
    }
    let mean = |l: &[u64]| l.iter().sum::<u64>() as f64 / l.len().max(1) as f64 / 1000.0;
    if let Some(target) = args.target {
        println!(
            "zipf-result target={target} requests={} clients={} keys={} s={} rps={rps:.1} \
             seconds={:.3} mean_ms={mean_ms:.3} p95_ms={p95_ms:.3} p99_ms={p99_ms:.3} \
             waited={} waited_mean_ms={:.3} quick_mean_ms={:.3} \
             answered={answered} non_200={} unanswered={} failed={}",
            args.requests,
            args.clients,
            args.keys,
            args.s,
            elapsed.as_secs_f64(),
            waited.len(),
            mean(waited),
            mean(quick),
            tally.not_200,
            tally.unanswered,
            tally.failed
        );
        return;
    }
    let Some((origin, _stack)) = &setup else {
        return;
    };
    let wasm = args
        .wasm
        .clone()
        .or_else(|| std::env::var("EDGE_WASM").ok())
        .unwrap_or_else(|| "target/wasm32-unknown-unknown/release/edge_filter.wasm".into());
    println!(
        "zipf through Envoy ({} workers, filter {wasm}): {} requests, {} keep-alive clients, \
         {} keys (s = {}), origin {} ms `{}`",
        args.workers,
        args.requests,
        args.clients,
        args.keys,
        args.s,
        args.delay_ms,
        args.cache_control
    );
    println!(
        "  {rps:.0} req/s over {:.1} s; latency mean {mean_ms:.1} ms, p95 {p95_ms:.1} ms, \
         p99 {p99_ms:.1} ms; origin fetches {}; answered {answered}, non-200 {}, unanswered \
         after {} ms {}, connection errors {}",
        elapsed.as_secs_f64(),
        origin.requests(),
        tally.not_200,
        args.timeout_ms,
        tally.unanswered,
        tally.failed
    );
}

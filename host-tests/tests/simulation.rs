//! Deterministic simulation: fixed seeds every run (under a minute), more with
//! `SIM_SOAK=<seeds>`, one seed replayed with `SIM_SEED=<seed>` (and `SIM_STEPS=<n>`):
//! `cargo test -p proxy-wasm-host --test simulation -- --nocapture`.

use std::time::Instant;

use proxy_wasm_host::simulation::{run, schedule, shrink};

const SEEDS: u64 = 24;
const STEPS: usize = 400;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn invariants_hold_under_seeded_schedules() {
    let steps = env_u64("SIM_STEPS").map_or(STEPS, |s| s as usize);
    let seeds: Vec<u64> = match (env_u64("SIM_SEED"), env_u64("SIM_SOAK")) {
        (Some(seed), _) => vec![seed],
        (None, Some(count)) => (0..count).collect(),
        (None, None) => (0..SEEDS).collect(),
    };
    let started = Instant::now();
    let (mut total_steps, mut requests) = (0, 0);
    for seed in seeds.iter().copied() {
        let ops = schedule(seed, steps);
        let report = run(seed, &ops);
        total_steps += report.steps;
        requests += report.requests;
        if let Some(violation) = report.violation {
            let (shrunk, replays) = shrink(seed, &ops, violation.kind(), 300);
            let again = run(seed, &shrunk).violation;
            panic!(
                "seed {seed}: {violation}\nafter {} of {} steps; shrunk in {replays} replays to \
                 {} steps (which give: {again:?}):\n{shrunk:#?}\nreplay: SIM_SEED={seed} \
                 SIM_STEPS={steps} cargo test -p proxy-wasm-host --test simulation -- --nocapture",
                report.steps,
                ops.len(),
                shrunk.len(),
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "simulation: {} seed(s), {total_steps} steps, {requests} requests in {seconds:.1} s \
         ({:.0} steps/s)",
        seeds.len(),
        total_steps as f64 / seconds
    );
}

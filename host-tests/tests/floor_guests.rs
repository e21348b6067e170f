//! The benchmark floor guests (`benches/floor/`) do what `benches/peers/hit_path.sh` says they do:
//! the local-reply floor answers with one host call and reads nothing; the read floor reads the
//! request headers and the clock first (two more host calls) and answers the same.

use proxy_wasm_host::{Host, Request};

fn floor(name: &str) -> Host {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Host::from_file(root.join(format!("target/wasm32-unknown-unknown/release/{name}.wasm")))
}

/// (status, body length, host calls) of one request.
fn answer(host: &mut Host) -> (u16, usize, u64) {
    let vm = host.start_vm("").unwrap();
    let before = host.host_calls(vm);
    let response = host.request(vm, Request::get("/api/v1/leads/42"));
    (
        response.status,
        response.body.len(),
        host.host_calls(vm) - before,
    )
}

#[test]
fn the_local_reply_floor_answers_in_one_host_call() {
    assert_eq!(answer(&mut floor("floor_local_reply")), (200, 7300, 1));
}

#[test]
fn the_read_floor_reads_headers_and_clock_then_answers_the_same() {
    assert_eq!(answer(&mut floor("floor_read_reply")), (200, 7300, 3));
}

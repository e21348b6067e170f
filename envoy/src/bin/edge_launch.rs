//! `edge-launch`: Envoy + the edge filter + (by default) the demo origin, in the foreground.

use std::process::ExitCode;
use std::time::Duration;

use edge_envoy::launch::{
    render_envoy_config, render_fleet_cluster, FleetOption, LaunchOptions, RenderInput, Stack,
    Upstream, USAGE,
};

fn main() -> ExitCode {
    // `--run-dir DIR` is the launcher's own (it sets $EDGE_RUN_DIR, read where runs start).
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--run-dir") {
        let Some(dir) = args.get(at + 1).cloned() else {
            eprintln!("edge-launch: --run-dir needs a value");
            return ExitCode::from(2);
        };
        args.drain(at..at + 2);
        std::env::set_var("EDGE_RUN_DIR", dir);
    }
    let options = match LaunchOptions::parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("edge-launch: {err}");
            return ExitCode::from(2);
        }
    };
    if options.print_config {
        return print_config(&options);
    }
    let stack = match Stack::start(&options) {
        Ok(stack) => stack,
        Err(err) => {
            eprintln!("edge-launch: {err}");
            return ExitCode::FAILURE;
        }
    };
    print_banner(&stack);
    if let Some(live) = &stack.live {
        println!(
            "Live reload: edit {} and the running edge applies it (Envoy reads {}).",
            options.plugin_config.display(),
            live.file.display()
        );
    }
    if let Some(fleet) = &stack.fleet {
        println!(
            "Fleet tier: redis-server on 127.0.0.1:{}, webdis (bridge) on {}",
            fleet.redis_port, fleet.bridge
        );
    }
    let ended_by = wait_for_stop(&stack);
    println!("edge-launch: {ended_by}; stopping Envoy and the origin");
    drop(stack);
    ExitCode::SUCCESS
}

fn print_config(options: &LaunchOptions) -> ExitCode {
    let plugin_config = match std::fs::read_to_string(&options.plugin_config) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "edge-launch: cannot read {}: {err}",
                options.plugin_config.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let (host, port) = match &options.upstream {
        Upstream::Demo => ("127.0.0.1".to_string(), 8080),
        Upstream::External { host, port } => (host.clone(), *port),
    };
    print!(
        "{}",
        render_envoy_config(&RenderInput {
            listen: options.listen,
            admin: options.admin,
            upstream_host: &host,
            upstream_port: port,
            wasm: &options.wasm.to_string_lossy(),
            plugin_config: &plugin_config,
            bypass: &options.bypass,
        })
    );
    match &options.fleet {
        FleetOption::Off => {}
        // `--fleet` starts webdis on a free port; 7379 is webdis's own default.
        FleetOption::Start => print!("{}", render_fleet_cluster("127.0.0.1", 7379)),
        FleetOption::Bridge { host, port } => print!("{}", render_fleet_cluster(host, *port)),
    }
    ExitCode::SUCCESS
}

fn print_banner(stack: &Stack) {
    let edge = format!("http://{}", stack.listen);
    let origin_note = if stack.origin.is_some() {
        " (demo origin)"
    } else {
        ""
    };
    println!(
        "\nEdge demo is up: Envoy (pid {}) with the edge filter in front of {}{origin_note}\n\n\
         Try, through the edge:\n  \
           curl -i {edge}/api/v1/leads/42\n  \
           curl -i {edge}/api/v1/coaching/42\n  \
           curl -i '{edge}/api/v1/properties?city=austin'\n  \
           curl -i -X POST -H 'webhook-id: msg_1' -d '{{\"type\":\"contact.created\"}}' {edge}/webhooks/ghl\n  \
           curl -i --compressed -H 'accept-encoding: br' {edge}/api/v1/leads/42\n\n\
         Dashboard:     {edge}/api/v1/performance/dashboard   (JSON: .../metrics, .../health, .../cache/stats)\n\
         Envoy admin:   http://{admin}/stats/prometheus   http://{admin}/ready\n\
         Origin direct: http://{upstream}/__origin/stats\n\
         Run directory (envoy.yaml, envoy.log): {run_dir}\n\n\
         Press Ctrl-C to stop everything.",
        stack.envoy.pid(),
        stack.upstream,
        admin = stack.admin,
        upstream = stack.upstream,
        run_dir = stack.run_dir.display(),
    );
}

/// Blocks until SIGINT/SIGTERM or until Envoy exits by itself.
fn wait_for_stop(stack: &Stack) -> &'static str {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(_) => return "no signal handling available",
    };
    runtime.block_on(async {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return "no signal handling available",
            };
        let envoy_pid = stack.envoy.pid();
        let envoy_gone = async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // kill(pid, 0) fails once the process is gone (our child stays a zombie until
                // reaped, so also look at its state).
                if !process_alive(envoy_pid) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = terminate.recv() => "terminated",
            _ = envoy_gone => "Envoy exited",
        }
    })
}

fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

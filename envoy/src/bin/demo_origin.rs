//! `demo-origin`: the slow demo backend, standing in for a real platform's services.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use edge_envoy::origin::{
    check_latency_scale, parse_cache_control_flag, parse_fault_flag, OriginConfig, OriginHandle,
};

const USAGE: &str = "\
usage: demo-origin [--listen ADDR] [--latency-scale F] [--fault SPEC]... [--cache-control SPEC]...

A slow HTTP backend standing in for a real platform's services.

options:
  --listen ADDR        address to listen on (default 127.0.0.1:8080; port 0 picks one)
  --latency-scale F    multiply every baseline latency by F (default 1; 0 = no delay)
  --fault SPEC         inject faults, repeatable; SPEC is
                       ENDPOINT:error_rate=R,extra_latency_ms=MS,reset_rate=R
                       (any subset of the keys; ENDPOINT is webhooks, coaching, leads,
                       properties, health, or * for all)
  --cache-control SPEC another Cache-Control for an endpoint's 200s and 304s, repeatable;
                       SPEC is ENDPOINT:VALUE, ENDPOINT one of coaching, leads, properties
                       or * (e.g. 'leads:max-age=1, stale-while-revalidate=5')
  -h, --help           print this help

endpoints:
  POST /webhooks/ghl               400 ms
  GET  /api/v1/coaching/{lead}      45 ms
  GET  /api/v1/leads/{id}          150 ms
  GET  /api/v1/properties?city=..   50 ms
  GET  /health                       0 ms
controls:
  GET  /__origin/stats   GET /__origin/requests   GET|POST /__origin/faults
  POST /__origin/reset

Prints `demo-origin listening on http://ADDR` once bound; stops on SIGINT or SIGTERM.";

struct Options {
    listen: SocketAddr,
    config: OriginConfig,
}

enum Command {
    Help,
    Run(Options),
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut config = OriginConfig::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => {
                let v = value()?;
                listen = v
                    .parse()
                    .map_err(|_| format!("--listen: not an address (ip:port): {v:?}"))?;
            }
            "--latency-scale" => {
                let v = value()?;
                let scale: f64 = v
                    .parse()
                    .map_err(|_| format!("--latency-scale: not a number: {v:?}"))?;
                check_latency_scale(scale).map_err(|e| format!("--latency-scale: {e}"))?;
                config.latency_scale = scale;
            }
            "--fault" => config.faults.push(parse_fault_flag(&value()?)?),
            "--cache-control" => config
                .cache_control
                .push(parse_cache_control_flag(&value()?)?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Command::Run(Options { listen, config }))
}

/// SIGINT and SIGTERM streams on a small runtime of their own. Installed before the
/// origin announces itself, so a signal sent right after the announcement is caught.
struct Signals {
    runtime: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (term, int) = {
            let _guard = runtime.enter();
            (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            )
        };
        Ok(Signals { runtime, term, int })
    }

    fn wait(mut self) {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        });
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => options,
        Err(e) => {
            eprintln!("demo-origin: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo-origin: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = match OriginHandle::start(options.listen, options.config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("demo-origin: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "demo-origin listening on http://{}", handle.addr());
    let _ = stdout.flush();
    signals.wait();
    drop(handle);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        let Ok(Command::Run(o)) = parse(&[]) else {
            panic!("no args should run")
        };
        assert_eq!(o.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(o.config, OriginConfig::default());

        let Ok(Command::Run(o)) = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--latency-scale=0",
            "--fault",
            "leads:error_rate=0.5",
            "--fault=*:extra_latency_ms=10",
            "--cache-control",
            "leads:max-age=1, stale-while-revalidate=5",
        ]) else {
            panic!("valid flags rejected")
        };
        assert_eq!(o.listen.port(), 0);
        assert_eq!(o.config.latency_scale, 0.0);
        assert_eq!(o.config.faults.len(), 2);
        assert_eq!(o.config.faults[1].0, "*");
        assert_eq!(
            o.config.cache_control,
            vec![(
                "leads".to_string(),
                "max-age=1, stale-while-revalidate=5".to_string()
            )]
        );
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
    }

    #[test]
    fn bad_flags() {
        for bad in [
            &["--listen"][..],
            &["--listen", "localhost"],
            &["--latency-scale", "-1"],
            &["--latency-scale", "fast"],
            &["--fault", "nope:error_rate=1"],
            &["--cache-control", "health:max-age=1"],
            &["--cache-control", "max-age=1"],
            &["--bogus"],
            &["extra"],
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}

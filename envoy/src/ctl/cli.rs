//! `edge-ctl`'s arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done; every check passed
  1  a check failed: a target missed, an invalid configuration, a warm request failed,
     proposals printed but not applied
  2  bad arguments
  3  the edge, its origin or Envoy's admin could not be reached or answered unexpectedly
  4  a local file could not be read or written, or a benchmark stack could not start";

/// Operate a running edge (Envoy + the edge filter): validate, benchmark, warm, optimize, report.
#[derive(Debug, Parser)]
#[command(name = "edge-ctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The edge's listener.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:10000",
        env = "EDGE_LISTEN"
    )]
    pub edge: String,
    /// Envoy's admin interface.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9901",
        env = "EDGE_ADMIN"
    )]
    pub admin: String,
    /// The filter's admin token (default: `admin.token` of --config).
    #[arg(long, global = true, env = "EDGE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The plugin configuration file (the one `edge-launch --plugin-config` watches).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    pub json: bool,
    /// Where the last benchmark is kept (default: target/edge-ctl).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration file with the filter's own validation; with --live, the running
    /// edge against each service's latency_target_ms (p95) and the hit-rate target.
    Validate {
        #[arg(long)]
        live: bool,
    },
    /// Each demo service direct to the origin (baseline) and through the edge (achieved).
    /// Without --upstream, starts the demo origin and an edge for the run.
    Benchmark {
        /// Requests per service.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Clients sending at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// A running demo origin (`http://HOST:PORT`); the edge is then --edge.
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// Tenants (`x-location-id`) the reads spread over.
        #[arg(long, default_value_t = 4)]
        tenants: usize,
        /// Keys per tenant the reads draw from.
        #[arg(long, default_value_t = 50)]
        keys: usize,
        /// Exponent of the Zipf distribution of keys.
        #[arg(long, default_value_t = 1.1)]
        zipf: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Warm the cache through the filter's warm endpoint.
    WarmCache {
        /// A file of paths, one per line.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "hot",
            required_unless_present = "hot"
        )]
        paths: Option<PathBuf>,
        /// The N hottest keys the edge has seen.
        #[arg(long, value_name = "N")]
        hot: Option<usize>,
        /// Extra request header for --paths (`NAME:VALUE`, e.g. a tenant), repeatable.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
    },
    /// Propose configuration changes from the live figures, with evidence, as a diff.
    Optimize {
        /// Write the proposed configuration to --config: the watching edge-launch applies it
        /// without a restart.
        #[arg(long)]
        apply: bool,
    },
    /// Why a request would (not) be cached, limited, deduplicated: the explainer's trace of
    /// it under --config, from the filter's own policy code (offline; no edge needed).
    Explain {
        /// `/path?query` or `http://authority/path?query`.
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request header (`NAME:VALUE`), repeatable.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        #[arg(long, default_value = "")]
        body: String,
        /// The origin's status (then the response's storability, freshness, Cache-Status).
        #[arg(long)]
        status: Option<u16>,
        /// Origin response header (`NAME:VALUE`), repeatable. Give its `content-length`: without
        /// one the filter stores the response once streamed but cannot say `stored`.
        #[arg(long = "response-header", value_name = "NAME:VALUE")]
        response_headers: Vec<String>,
        /// Also explain the same request sent again this many seconds later.
        #[arg(long, value_name = "SECONDS")]
        again: Option<u64>,
    },
    /// Metrics, cache stats, health, validation and the last benchmark in one JSON document.
    Report {
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Upper bounds of the numeric arguments.
pub const MAX_ITERATIONS: usize = 1_000_000;
pub const MAX_CONCURRENCY: usize = 1024;
pub const MAX_TENANTS: usize = 100_000;
pub const MAX_KEYS: usize = 1_000_000;
pub const MAX_HOT: usize = 10_000;

impl Cli {
    /// What clap's types cannot say: counts at least 1 and bounded, a finite Zipf exponent.
    pub fn check(&self) -> Result<(), String> {
        let count = |flag: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("{flag} {value}: must be between 1 and {max}"))
            }
        };
        match &self.command {
            Command::Benchmark {
                iterations,
                concurrency,
                tenants,
                keys,
                zipf,
                ..
            } => {
                count("--iterations", *iterations, MAX_ITERATIONS)?;
                count("--concurrency", *concurrency, MAX_CONCURRENCY)?;
                count("--tenants", *tenants, MAX_TENANTS)?;
                count("--keys", *keys, MAX_KEYS)?;
                if !(zipf.is_finite() && *zipf > 0.0 && *zipf <= 10.0) {
                    return Err(format!(
                        "--zipf {zipf}: must be a number above 0 and at most 10"
                    ));
                }
                Ok(())
            }
            Command::WarmCache { hot: Some(hot), .. } => count("--hot", *hot, MAX_HOT),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Result<(), String> {
        let cli = Cli::try_parse_from(std::iter::once("edge-ctl").chain(args.iter().copied()))
            .map_err(|err| err.to_string())?;
        cli.check()
    }

    #[test]
    fn zero_nan_infinite_and_out_of_range_arguments_are_refused() {
        assert!(check(&["benchmark"]).is_ok());
        for bad in [
            &["benchmark", "--iterations", "0"][..],
            &["benchmark", "--concurrency", "0"],
            &["benchmark", "--concurrency", "100000"],
            &["benchmark", "--tenants", "0"],
            &["benchmark", "--keys", "0"],
            &["benchmark", "--zipf", "NaN"],
            &["benchmark", "--zipf", "inf"],
            &["benchmark", "--zipf", "0"],
            &["warm-cache", "--hot", "0"],
        ] {
            let err = check(bad).expect_err(&format!("{bad:?} accepted"));
            assert!(err.contains("must be"), "{bad:?}: {err}");
        }
    }
}

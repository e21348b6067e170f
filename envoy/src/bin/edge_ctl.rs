//! `edge-ctl`: validate, benchmark, warm, optimize and report on a running edge.
//! Exit codes: see `edge_envoy::ctl::cli::EXIT_CODES` (`edge-ctl --help`).

use std::process::ExitCode;

use clap::Parser;
use edge_envoy::ctl::cli::{Cli, Command};
use edge_envoy::ctl::commands::{self, BenchArgs, Ctx, ExplainArgs};
use edge_envoy::ctl::config_file::ConfigFile;
use edge_envoy::ctl::edge::{parse_address, Edge};
use edge_envoy::ctl::exit::{CtlError, USAGE};
use edge_envoy::ctl::style::Style;
use edge_envoy::ctl::workload::Shape;
use edge_envoy::launch::{default_plugin_config, workspace_root};

/// A usage error: said on stderr, and as `{"error": …}` on stdout with --json; exit 2.
fn usage_error(json: bool, message: &str) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("edge-ctl: {message}");
    ExitCode::from(USAGE)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let informational = matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if !informational && std::env::args().any(|a| a == "--json") {
                let message = err.kind().to_string();
                let detail = err.to_string();
                let first = detail.lines().next().unwrap_or(&message);
                println!(
                    "{}",
                    serde_json::json!({ "error": first.trim_start_matches("error: ") })
                );
            }
            err.exit();
        }
    };
    if let Err(message) = cli.check() {
        return usage_error(cli.json, &message);
    }
    let (listen, admin) = match (parse_address(&cli.edge), parse_address(&cli.admin)) {
        (Ok(listen), Ok(admin)) => (listen, admin),
        (Err(err), _) | (_, Err(err)) => return usage_error(cli.json, &err),
    };
    let config_path = cli.config.clone().unwrap_or_else(default_plugin_config);
    // The token and the management prefix come from the configuration unless given.
    let file = ConfigFile::read(&config_path).ok();
    let token = cli
        .token
        .clone()
        .or_else(|| file.as_ref().and_then(ConfigFile::admin_token));
    let prefix = file.as_ref().map_or_else(
        || "/api/v1/performance".to_string(),
        ConfigFile::admin_prefix,
    );
    let ctx = Ctx {
        edge: Edge {
            listen,
            admin,
            token,
            prefix,
        },
        config_path,
        style: if cli.json {
            Style::plain()
        } else {
            Style::detect()
        },
        state_dir: cli
            .state_dir
            .clone()
            .unwrap_or_else(|| workspace_root().join("target/edge-ctl")),
    };
    let outcome = match &cli.command {
        Command::Validate { live } => commands::validate(&ctx, *live),
        Command::Benchmark {
            iterations,
            concurrency,
            upstream,
            tenants,
            keys,
            zipf,
            seed,
        } => commands::benchmark(
            &ctx,
            &BenchArgs {
                shape: Shape {
                    iterations: *iterations,
                    tenants: (*tenants).max(1),
                    keys: (*keys).max(1),
                    zipf_exponent: *zipf,
                    seed: *seed,
                },
                concurrency: (*concurrency).max(1),
                upstream: upstream.clone(),
            },
        ),
        Command::WarmCache {
            paths,
            hot,
            headers,
        } => commands::warm_cache(&ctx, paths.as_ref(), *hot, headers),
        Command::Optimize { apply } => commands::optimize(&ctx, *apply),
        Command::Report { output } => commands::report(&ctx, output.as_ref()),
        Command::Explain {
            url,
            method,
            headers,
            body,
            status,
            response_headers,
            again,
        } => commands::explain(
            &ctx,
            &ExplainArgs {
                method,
                url,
                headers,
                body,
                status: *status,
                response_headers,
                again: *again,
            },
        ),
    };
    match outcome {
        Ok(outcome) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outcome.json).unwrap_or_default()
                );
            } else {
                print!("{}", outcome.human);
            }
            ExitCode::from(outcome.code)
        }
        Err(err) => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": err.to_string() }));
            }
            eprintln!("edge-ctl: {err}");
            exit_code(&err)
        }
    }
}

fn exit_code(err: &CtlError) -> ExitCode {
    err.exit_code()
}

//! The glue's dependency direction, checked on its source: `stream`/`root` → `worker` →
//! features → base (`env`, `tiers`, `leases`, `replies`, `budgets`, `reply`, `metrics`, `host`),
//! with no import cycle among plugin modules. Features never reach the worker aggregate, and
//! a new module must be given a layer here.

#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Layers, highest first; a module may import its own layer or any lower one.
const LAYERS: [(&str, &[&str]); 4] = [
    ("contexts", &["root", "stream"]),
    ("worker", &["worker"]),
    (
        "features",
        &[
            "admin",
            "breaker",
            "coalescing",
            "config_status",
            "dashboard",
            "dedup",
            "explain",
            "health",
            "hot_keys",
            "monitor",
            "rate_limit",
            "refresh",
        ],
    ),
    (
        "base",
        &[
            "env",
            "fleet",
            "tiers",
            "leases",
            "replies",
            "budgets",
            "reply",
            "metrics",
            "host",
            "allocator",
            "header_map",
        ],
    ),
];

type Module = Vec<String>;

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plugin")
}

/// Every `.rs` file under `dir` with its module path relative to `plugin`.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).expect("plugin dir").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module = prefix.to_vec();
            if name != "mod" {
                module.push(name);
            }
            out.insert(module, fs::read_to_string(&path).expect("source"));
        }
    }
}

/// The plugin modules a source file refers to through `crate::plugin::`, `super::`, `self::`.
fn references(module: &Module, source: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for start in ["crate::plugin::", "super::", "self::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            rest = &rest[at + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut target: Module = match start {
                "crate::plugin::" => Vec::new(),
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.clone(),
            };
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            for segment in path.split("::").filter(|s| !s.is_empty()) {
                let mut next = target.clone();
                next.push(segment.to_string());
                if known.contains(&next) {
                    target = next;
                } else {
                    break;
                }
            }
            if !target.is_empty() && &target != module {
                found.insert(target);
            }
        }
    }
    found
}

fn layer_of(module: &Module) -> Option<usize> {
    let top = module.first()?;
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&top.as_str()))
}

fn name(module: &Module) -> String {
    module.join("::")
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mut sources = BTreeMap::new();
    modules(&plugin_dir(), &[], &mut sources);
    let known: BTreeSet<Module> = sources.keys().cloned().collect();
    sources
        .iter()
        .filter(|(module, _)| !module.is_empty())
        .map(|(module, source)| {
            let refs = references(module, source, &known);
            (module.clone(), refs)
        })
        .collect()
}

#[test]
fn every_plugin_module_has_a_layer_and_imports_only_downwards() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (from, targets) in &graph {
        let Some(from_layer) = layer_of(from) else {
            wrong.push(format!("{} has no layer in LAYERS", name(from)));
            continue;
        };
        for to in targets {
            let to_layer = layer_of(to);
            if to_layer.is_some_and(|l| l < from_layer) {
                wrong.push(format!(
                    "{} ({}) imports {} ({})",
                    name(from),
                    LAYERS[from_layer].0,
                    name(to),
                    LAYERS[to_layer.unwrap_or(0)].0
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // The check sees the imports it is about.
    let edge = |a: &str, b: &str| {
        graph
            .get(&a.split("::").map(String::from).collect::<Module>())
            .is_some_and(|t| t.contains(&b.split("::").map(String::from).collect::<Module>()))
    };
    assert!(edge("root", "worker") && edge("stream::cache", "tiers") && edge("tiers", "env"));
}

#[test]
fn no_import_cycle_among_plugin_modules() {
    let graph = graph();
    // Depth-first search; a back edge closes a cycle.
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = path.iter().position(|m| m == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut done, &mut Vec::new()) {
            let names: Vec<String> = cycle.iter().map(name).collect();
            panic!("import cycle: {}", names.join(" -> "));
        }
    }
    assert!(graph.len() > 20, "only {} modules found", graph.len());
}

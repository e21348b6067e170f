//! `edge-ctl warm-cache`: paths (from a file, or the edge's hottest keys) warmed through the
//! filter's warm endpoint (`POST <prefix>/cache/warm`) in batches of at most 100, with a
//! progress bar and a summary: stored / skipped (not cacheable) / failed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::edge::Edge;
use super::exit::CtlError;
use super::progress::Progress;
use super::style::Style;

/// The warm endpoint takes at most this many paths per request.
pub const BATCH: usize = 100;

/// One path to warm with the extra request headers it needs (tenant, key headers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WarmSummary {
    pub requested: usize,
    pub stored: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Batches the edge refused as a whole, with its reason.
    pub refused_batches: Vec<String>,
    /// Paths the edge refused (`paths[i]: "…" must start with '/'`), left out of their batch.
    pub refused_paths: Vec<String>,
}

/// The index of the path a refusal names (`paths[3]: …`).
fn refused_index(reason: &str) -> Option<usize> {
    reason
        .strip_prefix("paths[")?
        .split_once("]:")?
        .0
        .parse()
        .ok()
}

/// A paths file: one path per line; blank lines and `#` comments are ignored. Each path gets
/// `headers`.
pub fn parse_paths(text: &str, headers: &BTreeMap<String, String>) -> Vec<Target> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|path| Target {
            path: path.to_string(),
            headers: headers.clone(),
        })
        .collect()
}

/// Warms `targets`: those with the same headers go together, `BATCH` per request.
pub fn warm(edge: &Edge, targets: &[Target]) -> Result<WarmSummary, CtlError> {
    let mut groups: BTreeMap<&BTreeMap<String, String>, Vec<&str>> = BTreeMap::new();
    for target in targets {
        groups
            .entry(&target.headers)
            .or_default()
            .push(&target.path);
    }
    let mut summary = WarmSummary {
        requested: targets.len(),
        ..WarmSummary::default()
    };
    let mut progress = Progress::new("warm-cache", targets.len() as u64);
    for (headers, paths) in groups {
        for batch in paths.chunks(BATCH) {
            let mut pending: Vec<&str> = batch.to_vec();
            // A batch refused for one path (`paths[i]: …`) is sent again without it: one bad
            // line costs that line, not its 99 neighbours.
            while !pending.is_empty() {
                let body = json!({ "paths": pending, "headers": headers });
                let (status, answer) = edge.post("/cache/warm", &body)?;
                if status == 200 {
                    summary.stored += answer["stored"].as_u64().unwrap_or(0);
                    summary.skipped += answer["skipped"].as_u64().unwrap_or(0);
                    summary.failed += answer["failed"].as_u64().unwrap_or(0);
                    break;
                }
                if status == 401 || status == 403 {
                    return Err(CtlError::Unreachable(format!(
                        "the warm endpoint answered {status}: give the admin token (--token or EDGE_ADMIN_TOKEN)"
                    )));
                }
                let reason = error_text(&answer);
                summary.failed += 1;
                match refused_index(&reason).filter(|i| *i < pending.len()) {
                    Some(index) => {
                        pending.remove(index);
                        summary.refused_paths.push(reason);
                    }
                    None => {
                        summary.failed += pending.len() as u64 - 1;
                        summary.refused_batches.push(format!("{status}: {reason}"));
                        break;
                    }
                }
            }
            progress.advance(batch.len() as u64);
        }
    }
    progress.finish();
    Ok(summary)
}

fn error_text(answer: &Value) -> String {
    answer["error"]
        .as_str()
        .map_or_else(|| answer.to_string(), str::to_string)
}

pub fn render(summary: &WarmSummary, style: Style) -> String {
    let mut out = format!(
        "warmed {} paths: {} stored, {} skipped (not cacheable), {}\n",
        summary.requested,
        style.good(&summary.stored.to_string()),
        summary.skipped,
        if summary.failed > 0 {
            style.bad(&format!("{} failed", summary.failed))
        } else {
            "0 failed".to_string()
        }
    );
    for refusal in &summary.refused_paths {
        out.push_str(&format!("  a path was refused: {refusal}\n"));
    }
    for refusal in &summary.refused_batches {
        out.push_str(&format!("  a batch was refused: {refusal}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_path() {
        assert_eq!(
            refused_index(r#"paths[3]: "x" must start with '/'"#),
            Some(3)
        );
        assert_eq!(refused_index("headers: at most 8"), None);
        assert_eq!(refused_index("paths: give at least one path"), None);
    }

    #[test]
    fn paths_files_skip_comments_and_blanks() {
        let headers = BTreeMap::from([("x-location-id".to_string(), "loc-1".to_string())]);
        let targets = parse_paths(
            "# hot leads\n/api/v1/leads/1\n\n  /api/v1/leads/2 \n",
            &headers,
        );
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[1].path, "/api/v1/leads/2");
        assert_eq!(targets[0].headers, headers);
    }
}

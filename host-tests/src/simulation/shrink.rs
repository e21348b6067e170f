//! Shrinking a failing schedule: drop ever smaller runs of steps while the same invariant
//! still breaks (delta debugging), within a bounded number of replays.

use super::op::Op;
use super::run::run;

/// The shortest schedule found that still breaks `kind`, and the replays it took.
pub fn shrink(seed: u64, ops: &[Op], kind: &str, max_runs: usize) -> (Vec<Op>, usize) {
    let mut current = ops.to_vec();
    let mut runs = 0;
    let mut chunk = current.len() / 2;
    while chunk >= 1 && runs < max_runs {
        let mut start = 0;
        let mut removed_any = false;
        while start < current.len() && runs < max_runs {
            let end = (start + chunk).min(current.len());
            let candidate: Vec<Op> = current[..start]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            runs += 1;
            let fails_alike = run(seed, &candidate)
                .violation
                .is_some_and(|v| v.kind() == kind);
            if fails_alike {
                current = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if !removed_any {
            chunk /= 2;
        }
    }
    (current, runs)
}

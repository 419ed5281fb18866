//! What an attempt's exit code means for its job, exactly as the Kubernetes Job's
//! podFailurePolicy reads it (`k8s/base/job.yaml`): 0 succeeded; 2 (bad spec or data) and 3 (gate
//! failed) fail the job at once, since a retry would fail the same way; 143 (SIGTERM after a
//! checkpoint, or a preempted pod) is retried without counting against the backoff limit; any
//! other code (1: an internal error, a crash, -1: the service lost the process) is retried up to
//! the limit, with exponential backoff.

use crate::serve::state::JobState;

/// Retries that count, as the Job's `backoffLimit`.
pub const BACKOFF_LIMIT: usize = 3;

/// Retries after exit 143 (not counted by Kubernetes; bounded here so a job that is always
/// preempted still ends).
pub const IGNORED_LIMIT: usize = 10;

/// The first retry's delay; each further counted retry doubles it, up to [`MAX_DELAY_US`]
/// (Kubernetes: 10 s doubling to 6 min).
pub const FIRST_DELAY_US: i64 = 10_000_000;

/// The longest retry delay.
pub const MAX_DELAY_US: i64 = 360_000_000;

/// The job's next state after attempts that exited with `exits` (oldest first, the last one
/// just now), and the delay before a retry is claimed.
pub fn next(exits: &[i64], first_delay_us: i64) -> (JobState, i64) {
    let Some(&last) = exits.last() else { return (JobState::Queued, 0) };
    match last {
        0 => (JobState::Succeeded, 0),
        2 | 3 => (JobState::Failed, 0),
        143 if exits.iter().filter(|&&e| e == 143).count() <= IGNORED_LIMIT => (JobState::Queued, 0),
        _ => {
            // Exits of 143 beyond the ignored ones count like any other failure.
            let terminated = exits.iter().filter(|&&e| e == 143).count();
            let counted = exits.iter().filter(|&&e| !matches!(e, 0 | 2 | 3 | 143)).count()
                + terminated.saturating_sub(IGNORED_LIMIT);
            if counted > BACKOFF_LIMIT {
                (JobState::Failed, 0)
            } else {
                let shift = u32::try_from(counted.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
                (
                    JobState::Queued,
                    first_delay_us.saturating_mul(1 << shift).min(MAX_DELAY_US.max(first_delay_us)),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_as_the_pod_failure_policy_does() {
        use JobState::*;
        let d = FIRST_DELAY_US;
        assert_eq!(next(&[0], d), (Succeeded, 0));
        assert_eq!(next(&[2], d), (Failed, 0));
        assert_eq!(next(&[1, 3], d), (Failed, 0));
        assert_eq!(next(&[143], d), (Queued, 0));
        assert_eq!(next(&[1], d), (Queued, d));
        assert_eq!(next(&[1, 1], d), (Queued, 2 * d));
        assert_eq!(next(&[1, 143, 1, 1], d), (Queued, 4 * d));
        // The fourth counted failure is past backoffLimit 3.
        assert_eq!(next(&[1, 1, 1, 1], d), (Failed, 0));
        assert_eq!(next(&[-1, 137, 1, 1], d), (Failed, 0));
        assert_eq!(next(&[143; IGNORED_LIMIT], d), (Queued, 0));
        assert_eq!(next(&[143; IGNORED_LIMIT + 1], d).0, Queued, "then counted");
        assert_eq!(next(&[143; IGNORED_LIMIT + 1 + BACKOFF_LIMIT + 1], d).0, Failed);
        assert_eq!(next(&[1, 1, 1], d), (Queued, 4 * d));
        assert_eq!(
            next(&[1, 1, 1], 10 * MAX_DELAY_US),
            (Queued, 10 * MAX_DELAY_US),
            "a first delay over the cap is its own cap"
        );
        assert_eq!(next(&[1, 1, 1], 100_000), (Queued, 400_000), "tests use short delays");
    }
}

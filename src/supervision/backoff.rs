//! Restart delay for a supervised program: a pure exponential-backoff state machine; it does not
//! sleep, set timers or decide whether to restart at all (that is the supervisor's job).

use std::time::Duration;

pub use crate::config::MIN_RESTART_DELAY;

/// Exponential backoff between restarts of one program.
///
/// The first restart waits `initial`, each further one twice as long, never more than `max`.
/// A run that lasted at least `reset_after` counts as healthy: the next delay is `initial` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    /// The delay the next restart will wait, before capping at `max`.
    next: Duration,
}

impl Backoff {
    /// A fresh backoff whose first delay is `initial`.
    ///
    /// Odd settings are accepted rather than rejected, because a config mistake must not stop
    /// the box: `initial` and `max` below [`MIN_RESTART_DELAY`] are raised to it (a box that
    /// exits at once must not be restarted in a tight loop: every restart is a fork, an exec
    /// and log lines), `max` below `initial` caps every delay at `max`, `reset_after` 0 makes
    /// every run count as healthy.
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Backoff {
        let initial = initial.max(MIN_RESTART_DELAY);
        Backoff {
            initial,
            max: max.max(MIN_RESTART_DELAY),
            reset_after,
            next: initial,
        }
    }

    /// The delay to wait before restarting a program that exited after running for `ran_for`,
    /// and advance the state for the restart after that.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.reset_after {
            self.reset();
        }
        let delay = self.next.min(self.max);
        // Saturating: doubling a huge configured delay must not overflow; the cap applies anyway.
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Forget past failures: the next delay is `initial` again (e.g. after a manual restart).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl From<&crate::config::Backoff> for Backoff {
    fn from(c: &crate::config::Backoff) -> Backoff {
        Backoff::new(c.initial, c.max, c.reset_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feed `runs` (milliseconds each run lasted) and return the delays produced, in ms.
    fn delays(b: &mut Backoff, runs: &[u64]) -> Vec<u64> {
        runs.iter()
            .map(|r| b.next_delay(ms(*r)).as_millis() as u64)
            .collect()
    }

    /// (initial, max, reset_after, run lengths, expected delays), all in ms.
    type Case = (u64, u64, u64, &'static [u64], &'static [u64]);

    #[test]
    fn sequences() {
        let cases: &[Case] = &[
            (100, 30_000, 60_000, &[0, 0, 0, 0], &[100, 200, 400, 800]),
            (
                100,
                1_000,
                60_000,
                &[0, 0, 0, 0, 0, 0, 0],
                &[100, 200, 400, 800, 1000, 1000, 1000],
            ),
            // a long healthy run resets to initial
            (
                100,
                30_000,
                60_000,
                &[0, 0, 0, 60_000, 0],
                &[100, 200, 400, 100, 200],
            ),
            (
                100,
                30_000,
                60_000,
                &[0, 0, 59_999, 0],
                &[100, 200, 400, 800],
            ),
            // zero initial (issue 17): the floor, doubling from there, never a tight loop
            (0, 30_000, 60_000, &[0, 0, 0], &[100, 200, 400]),
            (0, 0, 60_000, &[0, 0, 0], &[100, 100, 100]),
            (50, 70, 60_000, &[0, 0], &[100, 100]),
            // max below initial: every delay capped at max
            (500, 200, 60_000, &[0, 0, 0], &[200, 200, 200]),
            // max zero: the floor
            (500, 0, 60_000, &[0, 0], &[100, 100]),
            // reset_after zero: every run is healthy
            (100, 30_000, 0, &[0, 0, 0], &[100, 100, 100]),
            // max equal to initial
            (300, 300, 60_000, &[0, 0], &[300, 300]),
        ];
        for (initial, max, reset, runs, want) in cases {
            let mut b = Backoff::new(ms(*initial), ms(*max), ms(*reset));
            assert_eq!(
                delays(&mut b, runs),
                want.to_vec(),
                "initial={initial} max={max} reset={reset}"
            );
        }
    }

    #[test]
    fn huge_durations_saturate() {
        let mut b = Backoff::new(Duration::MAX, Duration::MAX, Duration::MAX);
        assert_eq!(b.next_delay(ms(0)), Duration::MAX);
        assert_eq!(b.next_delay(ms(0)), Duration::MAX);
        let big = Duration::from_secs(u64::MAX / 3);
        let mut b = Backoff::new(big, Duration::MAX, Duration::MAX);
        assert_eq!(b.next_delay(ms(0)), big);
        assert_eq!(b.next_delay(ms(0)), big.saturating_mul(2));
        assert_eq!(b.next_delay(ms(0)), Duration::MAX);
    }

    #[test]
    fn reset_and_from_config() {
        let c = crate::config::Backoff::default();
        let mut b = Backoff::from(&c);
        assert_eq!(b.next_delay(ms(0)), ms(100));
        assert_eq!(b.next_delay(ms(0)), ms(200));
        b.reset();
        assert_eq!(b.next_delay(ms(0)), ms(100));
    }
}

//! Waiting on a condition with a deadline, in place of a fixed sleep: a
//! test goes on as soon as what it needs holds, and fails saying what it
//! waited for when that never comes, however slow or loaded the machine.

use std::time::{Duration, Instant};

/// Longest pause between two probes.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Calls `probe` until it returns a value, and returns it. Panics after
/// `within` with "`what`": a phrase saying what was awaited.
pub fn wait_for<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    // Short pauses first: most conditions hold within a millisecond or two.
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("waited {within:?} in vain for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Calls `cond` until it is true. Panics after `within` with `what`.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, within, || cond().then_some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_ends_the_wait_with_its_value() {
        let mut n = 0;
        let got = wait_for("the third probe", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "waited 20ms in vain for a condition that never holds")]
    fn a_condition_that_never_holds_fails_saying_what_was_awaited() {
        wait_until(
            "a condition that never holds",
            Duration::from_millis(20),
            || false,
        );
    }
}

//! Running a suite's trials over one shared fixture, in order, and tearing
//! the fixture down before the exit (which skips destructors).

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

/// A named trial over the shared fixture `S`.
pub type Case<S> = (&'static str, fn(&S) -> Result<(), Failed>);

/// Runs `cases` one at a time, drops `suite` (stopping its lab), exits.
pub fn run<S: Send + Sync + 'static>(mut args: Arguments, suite: Arc<S>, cases: Vec<Case<S>>) -> ! {
    args.test_threads = Some(1);
    let trials = cases
        .into_iter()
        .map(|(name, f)| {
            let s = suite.clone();
            Trial::test(name, move || f(&s))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(suite);
    conclusion.exit()
}

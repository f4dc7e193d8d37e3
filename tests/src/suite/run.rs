//! Running a suite: privileges checked, one lab and one fixture built
//! before any trial, the libtest-mimic trial list run (one at a time when
//! asked), and the fixture dropped before the process exits. It never
//! decides what a test asserts.

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::{privileged, Lab, LabBuilder};

/// One test of a suite: it gets the shared fixture.
pub type TestFn<S> = fn(&S) -> Result<(), Failed>;

/// What a suite needs before it may run, and how its trials run.
pub struct Spec {
    /// The suite's name, in the "skipped"/"missing" lines.
    pub name: &'static str,
    /// Programs that must be on PATH (or absolute paths that must exist).
    pub tools: &'static [&'static str],
    /// One trial at a time: the trials share state that one of them changes
    /// (a restarted server, nodes the next test builds on).
    pub serial: bool,
}

/// The state a suite's trials share.
pub trait Fixture: Send + Sync + Sized + 'static {
    /// Runs one trial; a suite that has to keep some trials apart (one
    /// needs the store alone) wraps the call here.
    fn trial(&self, _name: &str, test: TestFn<Self>) -> Result<(), Failed> {
        test(self)
    }

    /// Called once after the run when a trial failed: print what explains it.
    fn on_failure(&self) {}
}

/// Runs the suite: returns early (skipped) when privileges or tools are
/// missing and privileged tests are not required; panics when the lab or
/// the fixture cannot be made; exits with the trials' verdict.
pub fn run<S: Fixture>(
    spec: &Spec,
    lab: LabBuilder,
    setup: impl FnOnce(Lab) -> Result<S, String>,
    tests: &[(&'static str, TestFn<S>)],
) {
    let mut args = Arguments::from_args();
    if spec.serial {
        args.test_threads = Some(1);
    }
    if !privileged::require(spec.name, spec.tools) {
        return;
    }
    let lab = lab
        .build()
        .unwrap_or_else(|e| panic!("{}: build lab: {e}", spec.name));
    let fixture =
        Arc::new(setup(lab).unwrap_or_else(|e| panic!("{}: set up the suite: {e}", spec.name)));
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            let s = fixture.clone();
            Trial::test(name, move || s.trial(name, test))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        fixture.on_failure();
    }
    // The fixture's own order of fields decides the teardown (a server
    // before its lab); it must go before exit, which runs no destructors.
    drop(fixture);
    conclusion.exit();
}

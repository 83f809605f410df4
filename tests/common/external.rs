//! A harness for test files that need a program from outside the crate
//! (microsocks, dnsmasq, valgrind). When the program is missing, its tests
//! show as ignored, with the reason, in cargo's own summary; with
//! `CI=true` they fail instead, since CI installs every such program.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// A test of such a file: it panics on failure, like a `#[test]`.
pub type TestFn = fn();

/// Runs `tests`, each needing what `needs` reports: `Ok(())` when the
/// program is there, else `Err(reason)` saying how to install it.
pub fn run(needs: Result<(), String>, tests: &[(&'static str, TestFn)]) -> ! {
    run_each(
        tests
            .iter()
            .map(|&(name, test)| (name, needs.clone(), test))
            .collect(),
    )
}

/// Runs `tests`, each with its own need.
pub fn run_each(tests: Vec<(&'static str, Result<(), String>, TestFn)>) -> ! {
    let args = Arguments::from_args();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let trials = tests
        .into_iter()
        .map(|(name, needs, test)| match needs {
            Ok(()) => Trial::test(name, move || {
                test();
                Ok(())
            }),
            Err(why) if in_ci => {
                let why = format!("{why} (required when CI=true)");
                Trial::test(name, move || Err(Failed::from(why)))
            }
            Err(why) => Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why))),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// Whether `program` is on the `PATH` (or in /usr/sbin, /sbin); if not,
/// the reason, with `install` saying how to get it.
pub fn installed(program: &str, install: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir: std::path::PathBuf| dir.join(program).is_file());
    match found {
        true => Ok(()),
        false => Err(format!("{program} is not installed: {install}")),
    }
}

/// A turn to run the file's outside server, held for as long as the
/// server lives. The tests run on parallel threads, and a port found free
/// stays free only until another thread finds the same one; two servers
/// racing for it would leave one test talking to the other's server,
/// which is then killed under it. One server at a time rules that out.
pub fn server_turn() -> MutexGuard<'static, ()> {
    static ONE_SERVER: Mutex<()> = Mutex::new(());
    // A test that failed during its turn poisons the lock; the server it
    // guarded is gone all the same.
    ONE_SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

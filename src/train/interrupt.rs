//! Stopping a run cleanly from outside: an embedder (the Python bindings, where Ctrl-C must raise
//! `KeyboardInterrupt`) installs a check for the duration of a call; the training loop asks it
//! after every step and, when it says stop, writes a checkpoint and returns
//! [`crate::Error::Interrupted`], so `--resume` continues exactly.
//!
//! The check is thread-local: the loop runs on the thread that called it, and nothing else is
//! stopped by it.

use std::cell::RefCell;

thread_local! {
    static CHECK: RefCell<Option<Box<dyn Fn() -> bool>>> = const { RefCell::new(None) };
}

/// Runs `f` with `check` installed as this thread's stop check (the previous one is restored
/// afterwards, also when `f` panics).
pub fn with_check<R>(check: impl Fn() -> bool + 'static, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Box<dyn Fn() -> bool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CHECK.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CHECK.with(|c| c.borrow_mut().replace(Box::new(check)));
    let _restore = Restore(previous);
    f()
}

/// True when this thread's stop check asks the run to stop (false without a check).
pub fn requested() -> bool {
    CHECK.with(|c| c.borrow().as_ref().is_some_and(|check| check()))
}

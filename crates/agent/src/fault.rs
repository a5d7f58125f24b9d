//! Test-only crash points for the renewal journal tests. Not part of the API (hidden from the
//! documentation): public only so that the binaries' integration tests can name the points.
//!
//! Compiled in only with the `fault-injection` feature, which only the integration tests of the
//! binaries enable (through a dev-dependency); release builds of the binaries never have it, and
//! `crash_point` is then an empty function.

/// The environment variable naming the crash point to die at.
pub const CRASH_AT_VARIABLE: &str = "CTE_FAULT_CRASH_AT";

#[cfg(feature = "fault-injection")]
type Hook = Box<dyn Fn(&str)>;

#[cfg(feature = "fault-injection")]
thread_local! {
    static HOOK: std::cell::RefCell<Option<std::rc::Rc<Hook>>> = const { std::cell::RefCell::new(None) };
}

/// With the `fault-injection` feature: calls `hook` with each crash point's name reached on
/// this thread, and installs the same hook for the pem store's points
/// (`keystore::fault::set_thread_hook`). In-process simulations stop a check at a point by
/// panicking in the hook.
#[cfg(feature = "fault-injection")]
pub fn set_thread_hook(hook: impl Fn(&str) + 'static) {
    let hook = std::rc::Rc::new(Box::new(hook) as Hook);
    let for_store = hook.clone();
    keystore::fault::set_thread_hook(move |name| for_store(name));
    HOOK.with(|slot| *slot.borrow_mut() = Some(hook));
}

/// Removes this thread's hooks.
#[cfg(feature = "fault-injection")]
pub fn clear_thread_hook() {
    keystore::fault::clear_thread_hook();
    HOOK.with(|slot| *slot.borrow_mut() = None);
}

/// The agent's crash points in the renewal state machine, in the order a renewal reaches them.
pub const CRASH_POINTS: &[&str] = &[
    "journal-staging",
    "staged",
    "journal-pushing",
    "pushed",
    "journal-activating",
    "activated",
    "confirmed",
    "discarded",
];

/// With the `fault-injection` feature: if `CTE_FAULT_CRASH_AT` names `point`, the process kills
/// itself with SIGKILL (no destructors, no flush), as a power loss or `kill -9` would.
/// A thread hook ([`set_thread_hook`]) is called first.
#[cfg(feature = "fault-injection")]
pub(crate) fn crash_point(point: &str) {
    if let Some(hook) = HOOK.with(|slot| slot.borrow().clone()) {
        hook(point);
    }
    if std::env::var(CRASH_AT_VARIABLE).as_deref() == Ok(point) {
        #[cfg(unix)]
        {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        std::process::abort();
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn crash_point(_point: &str) {}

//! Named crash points for the crash-safety tests.
//!
//! Every step of a write (stage, activate, rollback, prune) calls `point` with a scope and a
//! step, named together as `activate.pointer.renamed`. Without the `fault-injection` cargo feature the function is empty
//! and compiles away; the environment is never read. With the feature (enabled only by this
//! crate's own dev-dependency on itself, so only in test builds), three environment variables
//! are honoured:
//!
//! - `KEYSTORE_CRASH_POINTS_LOG=<file>`: append each point's name to the file as it is reached
//!   (the tests use it to enumerate the points of an operation);
//! - `KEYSTORE_CRASH_AT=<name>`: at that point, kill the process with SIGKILL (`kill -9` on its
//!   own pid; `std::process::abort` if that fails), so no destructor, buffer flush or unlock
//!   runs, as in a real crash;
//! - `KEYSTORE_PAUSE_AT=<name>` with `KEYSTORE_PAUSE_MARKER=<file>` and `KEYSTORE_PAUSE_MS=<n>`:
//!   at that point, create the marker file and sleep (the lock tests hold the lock this way).

#[cfg(feature = "fault-injection")]
type Hook = Box<dyn Fn(&str)>;

#[cfg(feature = "fault-injection")]
thread_local! {
    static HOOK: std::cell::RefCell<Option<std::rc::Rc<Hook>>> = const { std::cell::RefCell::new(None) };
}

/// With the `fault-injection` feature: calls `hook` with each point's name reached on this
/// thread (until [`clear_thread_hook`]). In-process simulations use it to stop a writer at a
/// point (by panicking: the unwinding leaves the files as a crash would, page cache included).
#[cfg(feature = "fault-injection")]
pub fn set_thread_hook(hook: impl Fn(&str) + 'static) {
    HOOK.with(|slot| *slot.borrow_mut() = Some(std::rc::Rc::new(Box::new(hook))));
}

/// Removes this thread's hook.
#[cfg(feature = "fault-injection")]
pub fn clear_thread_hook() {
    HOOK.with(|slot| *slot.borrow_mut() = None);
}

#[cfg(feature = "fault-injection")]
pub(crate) fn point(scope: &str, step: &str) {
    use std::io::Write;

    let name = format!("{scope}.{step}");
    let name = name.as_str();
    if let Some(hook) = HOOK.with(|slot| slot.borrow().clone()) {
        hook(name);
    }

    if let Some(log) = std::env::var_os("KEYSTORE_CRASH_POINTS_LOG")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = writeln!(file, "{name}");
    }
    if std::env::var("KEYSTORE_PAUSE_AT").as_deref() == Ok(name) {
        if let Some(marker) = std::env::var_os("KEYSTORE_PAUSE_MARKER") {
            let _ = std::fs::write(marker, name);
        }
        let milliseconds = std::env::var("KEYSTORE_PAUSE_MS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(1000);
        std::thread::sleep(std::time::Duration::from_millis(milliseconds));
    }
    if std::env::var("KEYSTORE_CRASH_AT").as_deref() == Ok(name) {
        // SIGKILL cannot be caught: the process stops here as it would on a crash or power cut
        // (except that the kernel's page cache survives).
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_scope: &str, _step: &str) {}

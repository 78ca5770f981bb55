//! CPU priority of the password-hashing threads: below the request workers, so a login flood
//! takes the spare CPU without adding latency to session checks.

use thread_priority::{
    set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
    ThreadPriorityValue, ThreadSchedulePolicy,
};

/// The nice value hashing threads get (request workers keep 0).
pub const HASHING_NICE: i32 = 10;

/// thread-priority's cross-platform scale (0–99) maps onto nice values (19 … −20);
/// 22 is nice 10 (checked by the unit test below).
const HASHING_PRIORITY: u8 = 22;

std::thread_local! {
    static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lowers the calling thread to nice [`HASHING_NICE`] once: later calls on the same thread
/// cost nothing (the hashing pool's threads are reused for every hash).
pub fn lower_current_thread_once() {
    LOWERED.with(|done| {
        if !done.get() {
            lower_current_thread();
            done.set(true);
        }
    });
}

/// Lowers the calling thread to nice [`HASHING_NICE`] (Linux nice values are per thread).
/// Returns whether the system accepted it; a failure only leaves the thread as it was.
pub fn lower_current_thread() -> bool {
    let Ok(value) = ThreadPriorityValue::try_from(HASHING_PRIORITY) else {
        return false;
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    )
    .is_ok()
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        let tid = nix::unistd::gettid().as_raw();
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // Field 19 is the nice value; the fields after the ")" of the command name are plain.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn only_the_calling_thread_is_lowered_to_the_hashing_nice() {
        let before = nice_of_this_thread();
        if before > HASHING_NICE {
            // Already below it (a niced test run): raising a priority needs privileges.
            return;
        }
        let lowered = std::thread::spawn(|| {
            assert!(lower_current_thread());
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, HASHING_NICE);
        assert_eq!(nice_of_this_thread(), before, "other threads keep theirs");
    }
}

//! CPU priority of the password-hashing threads: below the request workers, so a login flood
//! takes the spare CPU without adding latency to session checks.
//!
//! The one `unsafe` block of the crate: the `setpriority(2)` system call, which has no safe
//! wrapper in the crates we use. It only ever lowers the calling thread's priority, which any
//! process may do.

/// The nice value of a hashing thread (request workers keep 0).
pub const HASHING_NICE: i32 = 10;

/// Lowers the calling thread's priority to `nice` (Linux nice values are per thread). Returns
/// whether the system accepted it; a failure only leaves the thread as it was.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn lower_current_thread(nice: i32) -> bool {
    let tid = nix::unistd::gettid().as_raw();
    let Ok(tid) = libc::id_t::try_from(tid) else {
        return false;
    };
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0 }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_current_thread(_nice: i32) -> bool {
    false
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        let tid = nix::unistd::gettid().as_raw();
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // Field 19 is the nice value; fields after the ")" of the command name are plain.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = nice_of_this_thread();
        let lowered = std::thread::spawn(|| {
            assert!(lower_current_thread(HASHING_NICE));
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, HASHING_NICE.max(before));
        assert_eq!(nice_of_this_thread(), before, "other threads keep theirs");
    }
}

//! How the builder's blocking code (a build: hashing, compressing and writing layers) waits for its network
//! work (registry pulls, `ADD <URL>` downloads), which is `async`: on the tokio runtime of its caller, never on
//! one of its own. The CLI enters its one runtime before building; a library caller builds from a thread that
//! entered a multi-threaded runtime ([`tokio::runtime::Runtime::enter`]), from
//! [`tokio::task::spawn_blocking`], or from a task of a multi-threaded runtime (the wait then moves the
//! worker's other tasks away with [`tokio::task::block_in_place`], so nothing stalls and nothing panics).

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

/// Why network work could not be waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The caller is not inside a tokio runtime.
    #[error(
        "registry pulls and ADD downloads run on the caller's tokio runtime, and there is none: build from a \
         thread that entered a multi-threaded runtime (Runtime::enter) or from spawn_blocking"
    )]
    NoRuntime,
    /// The caller's runtime is single-threaded: waiting on it would block the thread that drives it.
    #[error(
        "the build blocks while it waits for the network, which a current-thread tokio runtime cannot drive: \
         build on a multi-threaded runtime"
    )]
    CurrentThread,
}

/// Runs `future` to completion on the caller's multi-threaded tokio runtime and returns its output.
pub fn wait<F: Future>(future: F) -> Result<F::Output, WaitError> {
    let handle = Handle::try_current().map_err(|_| WaitError::NoRuntime)?;
    match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => Err(WaitError::CurrentThread),
        // Outside async code `block_in_place` just calls the closure; inside a task it hands the worker's
        // queue to another thread first.
        _ => Ok(tokio::task::block_in_place(|| handle.block_on(future))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_runtime_the_wait_is_refused_with_what_to_do() {
        let err = wait(async { 1 }).unwrap_err();
        assert_eq!(err, WaitError::NoRuntime);
        assert!(err.to_string().contains("Runtime::enter"), "{err}");
    }

    #[test]
    fn a_current_thread_runtime_is_refused_rather_than_deadlocked() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async { wait(async { 1 }) });
        assert_eq!(got, Err(WaitError::CurrentThread));
    }

    #[test]
    fn it_works_from_an_entered_thread_from_spawn_blocking_and_from_inside_a_task() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let slept = async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            7
        };
        {
            let _entered = rt.enter();
            assert_eq!(wait(slept), Ok(7));
        }
        let from_blocking = rt
            .block_on(rt.spawn_blocking(|| wait(async { 8 })))
            .unwrap();
        assert_eq!(from_blocking, Ok(8));
        let from_task = rt.block_on(rt.spawn(async { wait(async { 9 }) })).unwrap();
        assert_eq!(from_task, Ok(9));
        let from_block_on = rt.block_on(async { wait(async { 10 }) });
        assert_eq!(from_block_on, Ok(10));
    }
}

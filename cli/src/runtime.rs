//! The process's one tokio runtime. Every command runs its network I/O on it (through
//! [`tokio::runtime::Runtime::block_on`] from the command's own thread), so connections, bearer tokens and
//! per-host limits of a [`registry::client::RegistryClient`] live as long as the process, and no library
//! starts a runtime of its own.

use std::sync::OnceLock;

use anyhow::Context as _;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The process's multi-threaded tokio runtime, started on first use (`registry serve` tunes the allocator
/// before that). Call its `block_on` from a command's thread, never from inside async code.
pub fn runtime() -> anyhow::Result<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sealos-async")
        .build()
        .context("cannot start the async runtime")?;
    // Two threads may race here: the loser's runtime is dropped unused, outside any async context.
    Ok(RUNTIME.get_or_init(|| built))
}

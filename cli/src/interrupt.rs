//! Commands that write into the local store and may be interrupted: before they start, the temporaries
//! that writers which are gone left are removed; while they run, SIGINT and SIGTERM remove this process's
//! own temporaries before it exits with status 130 or 143, as shells report a command a signal ended.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use builder::store::stale;

/// Exit status after SIGINT (128 + 2).
pub const EXIT_SIGINT: i32 = 130;
/// Exit status after SIGTERM (128 + 15).
pub const EXIT_SIGTERM: i32 = 143;

/// Cleans what dead writers left in the store at `store_root`, then arranges that SIGINT and SIGTERM
/// remove this process's staged files there and exit 130 or 143. The handling lasts for the rest of the
/// process (commands run once per process).
pub fn guard_store_writes(store_root: &Path) -> anyhow::Result<()> {
    if store_root.is_dir() {
        let report = stale::clean_stale(store_root, builder::store::STALE_TEMP_AGE)
            .with_context(|| format!("cleaning the store `{}`", store_root.display()))?;
        if !report.paths.is_empty() {
            tracing::debug!(
                files = report.paths.len(),
                bytes = report.bytes,
                "removed temporaries of interrupted writers"
            );
        }
    }
    clean_up_on_signal(store_root.to_path_buf())
}

/// Starts a thread that waits for SIGINT or SIGTERM (on the process's one runtime, [`crate::runtime()`]),
/// removes this process's staged files in `store_root` and exits. The handlers are registered before this
/// returns, so no signal is missed; the thread of its own keeps the clean-up off the runtime's workers.
fn clean_up_on_signal(store_root: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = crate::runtime().context("cannot start the signal handler")?;
    let (mut int, mut term) = {
        let _entered = rt.enter();
        (
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        )
    };
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            let code = rt.block_on(async {
                tokio::select! {
                    _ = int.recv() => EXIT_SIGINT,
                    _ = term.recv() => EXIT_SIGTERM,
                }
            });
            // Twice: a file the writer created while the first pass ran is caught by the second.
            let mut removed = stale::remove_own_staged_files(&store_root);
            let again = stale::remove_own_staged_files(&store_root);
            removed.paths.extend(again.paths);
            removed.bytes += again.bytes;
            let what = if code == EXIT_SIGINT {
                "interrupted"
            } else {
                "terminated"
            };
            if removed.paths.is_empty() {
                eprintln!("{what}");
            } else {
                eprintln!(
                    "{what}: removed {} partial file{} ({})",
                    removed.paths.len(),
                    if removed.paths.len() == 1 { "" } else { "s" },
                    crate::cmd::images::human_size(removed.bytes)
                );
            }
            std::process::exit(code);
        })
        .context("cannot start the signal handler")?;
    Ok(())
}

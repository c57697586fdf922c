//! `sealos images`: the images in the local store as a table, JSON, or just their digests; also the helpers
//! the other store commands share (opening the store, explaining store errors, human sizes and times).

use std::time::{SystemTime, UNIX_EPOCH};

use builder::store::{Store, StoreError};

use crate::GlobalArgs;
use crate::output::{Format, Hint, outln};

/// Arguments of `sealos images`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos images                      list the images of the local store
  sealos images --digests            with each image's full digest
  sealos images -q                   only the image IDs (digests), one per line
  sealos images --format json        for scripts (also: --json)")]
pub struct ImagesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Same as `--format json` (as sealos v4 spells it).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Print only the image digests, one per line.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show each image's full digest in a DIGEST column.
    #[arg(long)]
    pub digests: bool,
    /// Accepted for sealos and podman habits: the store keeps no intermediate images, so every image is
    /// always listed.
    #[arg(short, long)]
    pub all: bool,
}

/// Opens (creating when missing) the local store of `global`.
pub fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let root = global.store_root();
    let store = Store::open_or_create(&root).map_err(|e| {
        anyhow::Error::new(Hint(format!(
            "the store is `{}`; choose another with --root or SEALOS_ROOT",
            root.display()
        )))
        .context(e.to_string())
    })?;
    Ok(store.with_expansion_limit(global.expansion_limit()))
}

/// Turns a store error into a CLI error, with a hint where there is something to suggest.
pub fn explain(err: StoreError) -> anyhow::Error {
    let hint = match &err {
        StoreError::NotFound(_) => Some(
            "run `sealos images` (with the same --root or SEALOS_ROOT) to list the images in this store",
        ),
        StoreError::UnsafeEntry { .. } => Some("the archive may be malicious; it was not loaded"),
        _ => None,
    };
    match hint {
        Some(h) => anyhow::Error::new(Hint(h.to_string())).context(err.to_string()),
        None => anyhow::Error::new(err),
    }
}

/// Sizes in binary (IEC) units, three significant digits: `512 B`, `1.46 KiB`, `13.3 MiB`. Every size the
/// CLI prints goes through here, so one unit system is used everywhere.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.2} {}", UNITS[unit])
    } else if value < 100.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `word` as one shell word: unchanged when it is plain, else single-quoted ([`runtime::env::shell_quote`]).
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@+,".contains(c));
    if plain {
        word.to_string()
    } else {
        runtime::env::shell_quote(word)
    }
}

/// `count thing` or `count things`.
pub fn plural(count: usize, thing: &str) -> String {
    if count == 1 {
        format!("1 {thing}")
    } else {
        format!("{count} {thing}s")
    }
}

/// The creation time in seconds since the epoch, when it says anything: absent, unreadable and the epoch
/// itself (what reproducible builds write with `SOURCE_DATE_EPOCH=0`, the default) are `None`.
pub fn known_time(created: Option<&str>) -> Option<i64> {
    created
        .and_then(builder::store::parse_rfc3339)
        .filter(|secs| *secs > 0)
}

/// `3 days ago`, from an RFC 3339 time; `unknown` when absent, unreadable or the epoch (see [`known_time`]).
pub fn human_age(created: Option<&str>, now: SystemTime) -> String {
    let Some(then) = known_time(created) else {
        return "unknown".to_string();
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let secs = now.saturating_sub(then);
    if secs < 0 {
        return "in the future".to_string();
    }
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0..60 => "less than a minute ago".to_string(),
        60..3600 => plural(secs / 60, "minute"),
        3600..86_400 => plural(secs / 3600, "hour"),
        86_400..1_209_600 => plural(secs / 86_400, "day"),
        1_209_600..5_184_000 => plural(secs / 604_800, "week"),
        5_184_000..63_072_000 => plural(secs / 2_592_000, "month"),
        _ => plural(secs / 31_536_000, "year"),
    }
}

/// Prints rows as columns separated by three spaces, each as wide as its widest cell.
pub fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        outln!("{}", line.trim_end())?;
    }
    Ok(())
}

/// Lists the images.
pub fn run(global: &GlobalArgs, args: &ImagesArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let mut images = store.list().map_err(explain)?;
    // By name, as a reader scans a list (the store's own order is the order images were tagged in).
    images.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
    let format = if args.json { Format::Json } else { args.format };
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for i in &images {
            if seen.insert(i.digest.clone()) {
                outln!("{}", i.digest)?;
            }
        }
        return Ok(());
    }
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&images)?)?,
        Format::Text => {
            let now = SystemTime::now();
            let mut header = vec!["REPOSITORY", "TAG"];
            if args.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
            for i in &images {
                let mut row = vec![i.repository.clone(), i.tag.clone()];
                if args.digests {
                    row.push(i.digest.to_string());
                }
                row.extend([
                    i.digest.hex().chars().take(12).collect(),
                    human_age(i.created.as_deref(), now),
                    human_size(i.size),
                ]);
                rows.push(row);
            }
            print_table(&rows)?;
            for i in images.iter().filter(|i| i.error.is_some()) {
                eprintln!(
                    "warning: `{}` is damaged: {}",
                    i.name,
                    i.error.as_deref().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes_use_binary_units_with_three_significant_digits() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1500), "1.46 KiB");
        assert_eq!(human_size(13_300_000), "12.7 MiB");
        assert_eq!(human_size(250_000_000_000), "233 GiB");
    }

    #[test]
    fn ages_are_relative_to_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_704_164_645 + 3 * 86_400);
        assert_eq!(human_age(Some("2024-01-02T03:04:05Z"), now), "3 days ago");
        assert_eq!(human_age(None, now), "unknown");
        assert_eq!(human_age(Some("garbage"), now), "unknown");
        assert_eq!(human_age(Some("1970-01-01T00:00:00Z"), now), "unknown");
        let now = UNIX_EPOCH + Duration::from_secs(1_704_164_645 + 59);
        assert_eq!(
            human_age(Some("2024-01-02T03:04:05Z"), now),
            "less than a minute ago"
        );
    }
}

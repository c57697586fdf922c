//! Side-by-side benchmarks of sealos against its peers. Each row runs ours and a peer alternately (A B A B) on
//! the same generated data after one warm-up of each, and prints median, min-max and the ratio ours/peer.
//!
//! `cargo run --release -p bench -- list`, `... -- sha256 --pairs 5 --size 64M`, `... -- all --format json`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use bench::data;
use bench::harness::{self, Outcome};
use bench::rows::{self, Context, GROUPS};

/// Side-by-side benchmarks of sealos against its peers.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// A group (`sha256`), a row id (`sha256-vs-openssl`), `all`, or `list`.
    name: String,
    /// Measured A B pairs per row (after one warm-up of each side); by default the group's own number (5, or
    /// fewer for slow groups: `bench list` shows it).
    #[arg(long)]
    pairs: Option<usize>,
    /// Seed for the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Size of the main input: bytes, or with a K, M or G suffix (binary units).
    #[arg(long, default_value = "1G", value_parser = data::parse_size)]
    size: u64,
    /// Directory for generated data, kept and reused across runs; by default a temporary directory removed at
    /// the end.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> anyhow::Result<()> {
    // The client side of the registry rows streams like `sealos` does.
    registry::allocator::tune_for_streaming();
    if let Some(result) = rows::build_child() {
        return result;
    }
    let args = Args::parse();
    if args.name == "list" {
        for group in GROUPS {
            println!(
                "{:<10} {} ({} pairs by default)",
                group.name, group.about, group.default_pairs
            );
            for row in group.rows {
                println!("  {row}");
            }
        }
        return Ok(());
    }
    // Each selected group with the row ids to keep (`None`: all of its rows).
    let selected: Vec<(&rows::Group, Option<&str>)> = if args.name == "all" {
        GROUPS.iter().map(|g| (g, None)).collect()
    } else if let Some(g) = GROUPS.iter().find(|g| g.name == args.name) {
        vec![(g, None)]
    } else if let Some(g) = GROUPS.iter().find(|g| g.rows.contains(&args.name.as_str())) {
        vec![(g, Some(args.name.as_str()))]
    } else {
        bail!(
            "unknown benchmark `{}`: run `bench list` to see the groups and rows",
            args.name
        );
    };

    let (work, temporary) = match &args.work {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("sealos-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&work)
        .with_context(|| format!("cannot create work directory {}", work.display()))?;
    let ctx = Context {
        seed: args.seed,
        size: args.size,
        work: work.clone(),
    };
    let result = run(&selected, &ctx, args.pairs, args.format);
    if temporary {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot remove work directory {}", work.display()))?;
    }
    result
}

fn run(
    selected: &[(&rows::Group, Option<&str>)],
    ctx: &Context,
    pairs: Option<usize>,
    format: Format,
) -> anyhow::Result<()> {
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (group, only) in selected {
        eprintln!(
            "preparing {} ({} bytes, seed {})",
            group.name, ctx.size, ctx.seed
        );
        let pairs = pairs.unwrap_or(group.default_pairs);
        let before = outcomes.len();
        for mut pair in (group.pairs)(ctx)? {
            if only.is_some_and(|id| id != pair.id) {
                continue;
            }
            eprintln!("running {} ({pairs} pairs)", pair.id);
            outcomes.push(harness::run_pair(&mut pair, pairs)?);
        }
        if let Some(id) = only
            && outcomes.len() == before
        {
            bail!(
                "row `{id}` of group `{}` is not run with the current settings: see the group's module docs \
                 (bench/src/rows/) for the environment variable that turns it on",
                group.name
            );
        }
    }
    // Groups may measure different numbers of pairs; each row also carries its own.
    let mut counts: Vec<usize> = outcomes.iter().map(|o| o.pairs).collect();
    counts.sort_unstable();
    counts.dedup();
    let pairs = match counts.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    match format {
        Format::Text => {
            let shown: Vec<String> = counts.iter().map(usize::to_string).collect();
            println!(
                "size {} bytes, seed {}, {} pairs after 1 warm-up each, alternating ours/peer",
                ctx.size,
                ctx.seed,
                shown.join("/")
            );
            harness::print_table(&outcomes);
        }
        Format::Json => {
            let report = serde_json::json!({
                "size": ctx.size,
                "seed": ctx.seed,
                "pairs": pairs,
                "rows": outcomes,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

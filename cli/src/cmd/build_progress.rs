//! What `sealos build` prints while it builds, on stderr: one persistent line per instruction as buildah
//! prints them (`STEP 2/3: COPY . .`), and after each COPY/ADD a line saying whether its layer came from the
//! cache or how many bytes were written, and how long it took. On a terminal a step that takes more than a
//! second also gets a progress bar (bytes of source read against the step's total, layer bytes written),
//! removed when the step ends. Lines are printed with or without a terminal (CI logs keep them); bars never
//! without one, and nothing but warnings and notes with `-q`.

use std::time::{Duration, Instant};

use builder::build::{Progress, StepReport};

use super::images::human_size;

/// A step shows a progress bar once it has run this long (on a terminal).
const BAR_AFTER: Duration = Duration::from_secs(1);

/// Draws build progress on stderr.
pub struct BuildProgress {
    lines: bool,
    multi: Option<indicatif::MultiProgress>,
    bar: Option<indicatif::ProgressBar>,
    step_started: Option<Instant>,
    layer_kind: &'static str,
    show_platform: bool,
}

/// How the layer bytes are described: `uncompressed` under `--compression none`.
fn layer_kind(compression: &str) -> &'static str {
    match compression.trim().to_ascii_lowercase().as_str() {
        "none" | "uncompressed" => "uncompressed",
        "zstd" => "zstd-compressed",
        _ => "gzip-compressed",
    }
}

impl BuildProgress {
    /// A display: `lines` prints the step lines (false with `-q`); `terminal` allows progress bars
    /// (stderr is a terminal); `compression` is `--compression`; `platforms` how many are built (their
    /// name prefixes each line when there are several).
    pub fn new(lines: bool, terminal: bool, compression: &str, platforms: usize) -> Self {
        BuildProgress {
            lines,
            multi: (lines && terminal).then(indicatif::MultiProgress::new),
            bar: None,
            step_started: None,
            layer_kind: layer_kind(compression),
            show_platform: platforms > 1,
        }
    }

    /// Prints a line on stderr, above the bars when there are some. The bars are cleared, the line written
    /// with its own newline and the bars drawn again below it: `MultiProgress::println` pads a line to the
    /// terminal width instead of ending it, which leaves one very long line in a terminal log or scrollback.
    fn println(&self, line: &str) {
        match &self.multi {
            Some(multi) => multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn prefix(&self, platform: &str) -> String {
        if self.show_platform {
            format!("[{platform}] ")
        } else {
            String::new()
        }
    }

    /// Handles one event from the builder.
    pub fn event(&mut self, event: Progress<'_>) {
        match event {
            // Warnings and notes are shown in every mode.
            Progress::Warning { message } => self.println(&format!("warning: {message}")),
            Progress::Note { message } => self.println(&format!("note: {message}")),
            _ if !self.lines => {}
            Progress::Instruction {
                platform,
                stage,
                stages,
                number,
                total,
                text,
            } => {
                let stage = if stages > 1 {
                    format!("[{stage}/{stages}] ")
                } else {
                    String::new()
                };
                let line = format!(
                    "{}{stage}STEP {number}/{total}: {text}",
                    self.prefix(platform)
                );
                self.println(&line);
            }
            Progress::StepStarted { .. } => {
                self.step_started = Some(Instant::now());
            }
            Progress::StepBytes {
                total,
                read,
                written,
                ..
            } => self.draw(total, read, written),
            Progress::StepFinished { platform, report } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                    if let Some(multi) = &self.multi {
                        multi.remove(&bar);
                    }
                }
                let took = self
                    .step_started
                    .take()
                    .map_or(Duration::ZERO, |s| s.elapsed());
                let line = format!(
                    "{}{}",
                    self.prefix(platform),
                    step_summary(report, self.layer_kind, took)
                );
                self.println(&line);
            }
        }
    }

    /// Updates (or, once the step has run long enough, starts) the bar of the running step.
    fn draw(&mut self, total: u64, read: u64, written: u64) {
        let Some(multi) = &self.multi else { return };
        if self.bar.is_none() {
            let long = self.step_started.is_some_and(|s| s.elapsed() >= BAR_AFTER);
            if !long {
                return;
            }
            let bar = multi.add(indicatif::ProgressBar::new(0));
            // indicatif's {bytes} and {total_bytes} are binary units (KiB, MiB), as every size we print.
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "     [{bar:25}] {bytes}/{total_bytes} read, {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(read));
            bar.set_position(read);
            bar.set_message(format!(
                "{} written ({})",
                human_size(written),
                self.layer_kind
            ));
        }
    }
}

/// The line after a COPY/ADD: `--> cache hit: layer sha256:1a2b3c4d5e6f (3 entries) in 0.01s` or
/// `--> wrote 1.20 MiB layer sha256:1a2b3c4d5e6f (gzip-compressed; 3 entries, 3.40 MiB read) in 0.31s`; a gzip
/// layer that copied blocks from the step's previous blob adds `; 297 of 300 blocks reused`.
pub fn step_summary(report: &StepReport, layer_kind: &str, took: Duration) -> String {
    let layer = report
        .layer
        .as_ref()
        .map(|d| {
            format!(
                "{}:{}",
                d.algorithm().as_str(),
                &d.hex()[..12.min(d.hex().len())]
            )
        })
        .unwrap_or_else(|| "-".to_string());
    let entries = match report.files {
        1 => "1 entry".to_string(),
        n => format!("{n} entries"),
    };
    let secs = took.as_secs_f64();
    if report.cached {
        format!("--> cache hit: layer {layer} ({entries}) in {secs:.2}s")
    } else {
        let reused = if report.blocks_reused > 0 {
            format!(
                "; {} of {} blocks reused",
                report.blocks_reused, report.blocks
            )
        } else {
            String::new()
        };
        format!(
            "--> wrote {} layer {layer} ({layer_kind}; {entries}, {} read{reused}) in {secs:.2}s",
            human_size(report.bytes_written),
            human_size(report.bytes_hashed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(cached: bool) -> StepReport {
        StepReport {
            stage: 0,
            line: 2,
            text: "COPY . .".to_string(),
            cached,
            layer: Some(formats::digest::Digest::sha256_of(b"x")),
            files: 3,
            files_hashed: 3,
            bytes_hashed: 3 << 20,
            bytes_written: 1_258_291,
            blocks: 0,
            blocks_reused: 0,
        }
    }

    #[test]
    fn a_step_line_says_cache_hit_or_bytes_written_in_binary_units_and_the_time() {
        let digest = formats::digest::Digest::sha256_of(b"x");
        let hex = &digest.hex()[..12];
        assert_eq!(
            step_summary(&report(true), "gzip-compressed", Duration::from_millis(10)),
            format!("--> cache hit: layer sha256:{hex} (3 entries) in 0.01s")
        );
        assert_eq!(
            step_summary(
                &report(false),
                layer_kind("none"),
                Duration::from_millis(310)
            ),
            format!(
                "--> wrote 1.20 MiB layer sha256:{hex} (uncompressed; 3 entries, 3.00 MiB read) in 0.31s"
            )
        );
        let reused = StepReport {
            blocks: 300,
            blocks_reused: 297,
            ..report(false)
        };
        assert_eq!(
            step_summary(&reused, layer_kind("gzip"), Duration::from_millis(310)),
            format!(
                "--> wrote 1.20 MiB layer sha256:{hex} (gzip-compressed; 3 entries, 3.00 MiB read; 297 of 300 blocks reused) in 0.31s"
            )
        );
        assert_eq!(layer_kind("zstd"), "zstd-compressed");
        assert_eq!(layer_kind("gzip"), "gzip-compressed");
    }
}

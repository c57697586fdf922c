//! The progress display of `sealos build` on a terminal: one bar per COPY/ADD step showing the bytes of
//! source read (hashed or downloaded) against the step's total, and the layer bytes compressed so far; a
//! summary line per finished step stays above. Nothing is drawn when stderr is not a terminal or with `-q`.

use builder::build::Progress;

use super::mirror::human_bytes;

/// Draws build progress on stderr.
pub struct BuildProgress {
    multi: Option<indicatif::MultiProgress>,
    bar: Option<indicatif::ProgressBar>,
}

impl BuildProgress {
    /// A display that draws only when `enabled` (callers pass "stderr is a terminal and not `-q`").
    pub fn new(enabled: bool) -> Self {
        BuildProgress {
            multi: enabled.then(indicatif::MultiProgress::new),
            bar: None,
        }
    }

    /// Handles one event from the builder.
    pub fn event(&mut self, event: Progress<'_>) {
        let shown = match event {
            Progress::Warning { message } => Some(format!("warning: {message}")),
            Progress::Note { message } => Some(format!("note: {message}")),
            _ => None,
        };
        if let Some(line) = shown {
            // Warnings and notes are shown with or without a terminal, above the bars when there are some.
            if self
                .multi
                .as_ref()
                .is_none_or(|m| m.println(&line).is_err())
            {
                eprintln!("{line}");
            }
            return;
        }
        let Some(multi) = &self.multi else { return };
        match event {
            Progress::Warning { .. } | Progress::Note { .. } => {}
            Progress::StepStarted {
                platform,
                line,
                text,
            } => {
                let bar = multi.add(indicatif::ProgressBar::new(0));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} [{bar:25}] {bytes}/{total_bytes} read, {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                let short: String = text.chars().take(50).collect();
                bar.set_prefix(format!("[{platform}] line {line}: {short}"));
                bar.set_message("0 B compressed");
                self.bar = Some(bar);
            }
            Progress::StepBytes {
                total,
                read,
                written,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(total.max(read));
                    bar.set_position(read);
                    bar.set_message(format!("{} compressed", human_bytes(written)));
                }
            }
            Progress::StepFinished { platform, report } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                let line = format!(
                    "[{platform}] line {}: {} ({} entries, {} hashed, {} compressed)",
                    report.line,
                    if report.cached { "cached" } else { "written" },
                    report.files,
                    human_bytes(report.bytes_hashed),
                    human_bytes(report.bytes_written),
                );
                if multi.println(&line).is_err() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

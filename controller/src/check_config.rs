//! `ferrolb-controller check-config FILE`: offline validation for GitOps CI.

use std::io::Read;
use std::path::Path;

use ferrolb_config::{AnnouncementSummary, SummaryTable, parse_document, summarize};

/// Validates the file; returns the text to print and whether it is valid.
pub fn check(path: &Path) -> (String, bool) {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        match std::io::stdin().read_to_string(&mut s) {
            Ok(_) => s,
            Err(e) => return (format!("cannot read standard input: {e}\n"), false),
        }
    } else {
        match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => return (format!("cannot read {}: {e}\n", path.display()), false),
        }
    };
    check_text(&path.display().to_string(), &text)
}

/// Validates `text` read from `origin`.
pub fn check_text(origin: &str, text: &str) -> (String, bool) {
    match parse_document(text) {
        Ok(parsed) => {
            let summary = summarize(&parsed.config);
            (
                format!(
                    "{origin}: valid {} configuration\n{}{}",
                    parsed.format,
                    SummaryTable(&summary),
                    AnnouncementSummary(&parsed.config)
                ),
                true,
            )
        }
        Err(errors) => (
            format!("{origin}: invalid configuration:\n{errors}\n"),
            false,
        ),
    }
}

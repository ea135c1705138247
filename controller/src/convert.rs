//! `ferrolb-controller convert FILE...`: reads the files and prints what
//! `ferrolb_config::convert` makes of them. The conversion itself is pure code
//! in the config crate; this only reads files and formats the outcome.

use std::io::Read;
use std::path::PathBuf;

use ferrolb_config::convert::convert;

/// Exit status when the conversion is exact.
pub const EXACT: i32 = 0;
/// Exit status on bad input (nothing printed on standard output).
pub const BAD_INPUT: i32 = 1;
/// Exit status when a manifest was printed but something could not be carried over.
pub const LOSSY: i32 = 2;

/// What to print: the manifest (standard output), the report (standard error)
/// and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The ferrolb ConfigMap manifest; empty on bad input.
    pub stdout: String,
    /// Every lost field, or every problem with the input.
    pub stderr: String,
    /// [`EXACT`], [`LOSSY`] or [`BAD_INPUT`].
    pub code: i32,
}

/// Reads `files` (`-` is standard input) and converts them.
pub fn run(files: &[PathBuf]) -> Outcome {
    let mut texts = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = if name == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(f)
        };
        match text {
            Ok(t) => texts.push((name, t)),
            Err(e) => {
                return Outcome {
                    stdout: String::new(),
                    stderr: format!("cannot read {name}: {e}\n"),
                    code: BAD_INPUT,
                };
            }
        }
    }
    let inputs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    convert_texts(&inputs)
}

/// Converts already-read inputs (name, text).
pub fn convert_texts(inputs: &[(&str, &str)]) -> Outcome {
    match convert(inputs) {
        Err(e) => Outcome {
            stdout: String::new(),
            stderr: format!("cannot convert: the input has problems:\n{e}\n"),
            code: BAD_INPUT,
        },
        Ok(c) if c.lost.is_empty() => Outcome {
            stdout: c.manifest,
            stderr: format!(
                "converted exactly: {} pool(s), nothing lost\n",
                c.config.pools.len()
            ),
            code: EXACT,
        },
        Ok(c) => {
            let mut err = format!(
                "converted {} pool(s); {} thing(s) could not be carried over exactly:\n",
                c.config.pools.len(),
                c.lost.len()
            );
            for l in &c.lost {
                err.push_str(&format!("- {l}\n"));
            }
            Outcome {
                stdout: c.manifest,
                stderr: err,
                code: LOSSY,
            }
        }
    }
}

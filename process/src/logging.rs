//! Logging for both binaries: `tracing` to standard error, as text or one JSON object
//! per line, filtered by `--log-level` (EnvFilter syntax).

use crate::flags::LogFormat;

/// Installs the global subscriber. A filter that does not parse is an error naming the
/// flag: a typo must not silently turn logging off or up.
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("invalid --log-level / FERROLB_LOG_LEVEL {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    }
    .map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_names_the_flag() {
        let e = init(LogFormat::Text, "info,=[").unwrap_err();
        assert!(e.contains("--log-level"), "{e}");
    }
}

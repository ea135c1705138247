//! Durations as operators write them in flags and env vars: `500ms`, `1.5s`, `2m`, `1h`.
//! One parser for both binaries, so that every timer flag reads and fails alike.

use std::time::Duration;

/// The longest duration accepted (about 31 years): anything longer is a typo, and
/// `Duration::from_secs_f64` would panic on values beyond `u64` seconds.
const MAX_SECS: f64 = 1e9;

/// Parses a positive duration with a unit (`ms`, `s`, `m` or `h`). The error names the
/// value and what is wrong with it.
pub fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = parse_or_zero(s)?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(d)
}

/// Like [`parse_positive`] but accepts zero (`0`, `0s`), which timers use to mean "off".
pub fn parse_or_zero(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("duration {s:?} needs a unit (ms, s, m or h)"))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("duration {s:?}: {num:?} is not a number"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "duration {s:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=MAX_SECS).contains(&secs) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_fractions_and_zero() {
        assert_eq!(parse_positive("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_positive(" 1.5s "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_positive("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_positive("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_or_zero("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn errors_name_the_value_and_the_problem() {
        assert_eq!(
            parse_positive("5").unwrap_err(),
            r#"duration "5" needs a unit (ms, s, m or h)"#
        );
        assert!(
            parse_positive("5d")
                .unwrap_err()
                .contains("unknown unit \"d\"")
        );
        assert!(
            parse_positive("0s")
                .unwrap_err()
                .contains("must be positive")
        );
        assert!(parse_positive("x1s").unwrap_err().contains("not a number"));
        assert!(
            parse_positive("1..2s")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn absurd_values_are_errors_not_panics() {
        assert!(
            parse_positive("99999999999999999999999h")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            parse_positive(&format!("{}s", "9".repeat(400)))
                .unwrap_err()
                .contains("out of range")
        );
    }
}

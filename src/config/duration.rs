//! Durations as operators write them: `500ms`, `30s`, `5m`, `1h`, `1m30s`.

use std::time::Duration;

/// Why a duration was refused; each message quotes what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: write e.g. \"30s\", \"5m\" or \"1h\"")]
    Empty,
    #[error("invalid duration {text:?}: expected a number at {at:?} (write e.g. \"30s\", \"5m\")")]
    NoNumber { text: String, at: String },
    #[error("invalid duration {0:?}: number too large")]
    NumberTooLarge(String),
    #[error("invalid duration {text:?}: missing unit after {number} (ms, s, m, h or d)")]
    NoUnit { text: String, number: u64 },
    #[error("invalid duration {text:?}: unknown unit {unit:?} (use ms, s, m, h or d)")]
    Unit { text: String, unit: String },
    #[error("invalid duration {0:?}: too large")]
    TooLarge(String),
}

/// Parses a duration made of `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`. A bare
/// `0` is zero in any unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NoNumber {
                text: text.to_string(),
                at: rest.to_string(),
            });
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::NumberTooLarge(text.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(DurationError::NoUnit {
                    text: text.to_string(),
                    number,
                });
            }
            other => {
                return Err(DurationError::Unit {
                    text: text.to_string(),
                    unit: other.to_string(),
                });
            }
        };
        let part = number
            .checked_mul(millis_per_unit)
            .ok_or_else(|| DurationError::TooLarge(text.to_string()))?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(|| DurationError::TooLarge(text.to_string()))?;
    }
    Ok(total)
}

/// Renders a duration the way [`parse`] reads it, largest units first.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert!(parse("").unwrap_err().to_string().contains("empty"));
        assert!(
            parse("30")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
        assert!(
            parse("5 mins")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(
            parse("m5")
                .unwrap_err()
                .to_string()
                .contains("expected a number")
        );
        assert!(parse("99999999999999999999s").is_err());
    }

    #[test]
    fn formats_what_it_parses() {
        for text in ["30s", "5m", "1h2m3s", "250ms", "1d"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}

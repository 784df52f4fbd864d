//! [`GoDuration`]: a signed nanosecond count that parses and prints exactly like Go's
//! `time.Duration` (`time.ParseDuration` / `Duration.String()`), which is how
//! `metav1.Duration` fields are written in a KubeProxyConfiguration (`30s`, `24h0m0s`,
//! `250ms`, `1h30m`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A Go `time.Duration`: signed nanoseconds (negative values exist in Go and are rejected by
/// validation where upstream rejects them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration {
    nanos: i64,
}

/// Why a duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    /// The text is not of the form `[-+]?(<number><unit>)+` (or `0`).
    #[error("invalid duration {0:?} (expected a Go duration such as \"30s\", \"250ms\" or \"1h30m\")")]
    Syntax(String),
    /// A number has no unit (`30` instead of `30s`).
    #[error("missing unit in duration {0:?} (write e.g. \"30s\"; units are ns, us, ms, s, m, h)")]
    MissingUnit(String),
    /// A number is followed by something that is not a unit.
    #[error("unknown unit {unit:?} in duration {text:?} (units are ns, us, ms, s, m, h)")]
    Unit {
        /// The offending unit.
        unit: String,
        /// The whole duration text.
        text: String,
    },
    /// The value does not fit in 64-bit nanoseconds (about 292 years).
    #[error("duration {0:?} is out of range")]
    Overflow(String),
}

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;
const NANOS_PER_MIN: u64 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u64 = 60 * NANOS_PER_MIN;

impl GoDuration {
    /// Zero (`0s`).
    pub const ZERO: GoDuration = GoDuration { nanos: 0 };

    /// From signed nanoseconds.
    pub const fn from_nanos(nanos: i64) -> GoDuration {
        GoDuration { nanos }
    }

    /// From milliseconds.
    pub const fn from_millis(ms: i64) -> GoDuration {
        GoDuration { nanos: ms * NANOS_PER_MILLI as i64 }
    }

    /// From seconds.
    pub const fn from_secs(secs: i64) -> GoDuration {
        GoDuration { nanos: secs * NANOS_PER_SEC as i64 }
    }

    /// From minutes.
    pub const fn from_mins(mins: i64) -> GoDuration {
        GoDuration { nanos: mins * NANOS_PER_MIN as i64 }
    }

    /// From hours.
    pub const fn from_hours(hours: i64) -> GoDuration {
        GoDuration { nanos: hours * NANOS_PER_HOUR as i64 }
    }

    /// Signed nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// Whether the duration is below zero.
    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// Whether the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// As a `std::time::Duration`; negative durations become zero (callers use validated
    /// configurations, where every duration that matters is >= 0).
    pub fn to_std(self) -> Duration {
        Duration::from_nanos(u64::try_from(self.nanos).unwrap_or(0))
    }

    /// Parse like Go's `time.ParseDuration`: an optional sign, then one or more decimal
    /// numbers with optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`,
    /// `h`), e.g. `300ms`, `-1.5h`, `2h45m`; the bare `0` is allowed.
    pub fn parse(text: &str) -> Result<GoDuration, DurationParseError> {
        let syntax = || DurationParseError::Syntax(text.to_string());
        let overflow = || DurationParseError::Overflow(text.to_string());
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(GoDuration::ZERO);
        }
        if rest.is_empty() {
            return Err(syntax());
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, after_int) = rest.split_at(int_len);
            let (frac_part, after_num) = match after_int.strip_prefix('.') {
                Some(f) => {
                    let n = f.bytes().take_while(u8::is_ascii_digit).count();
                    f.split_at(n)
                }
                None => ("", after_int),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(syntax());
            }
            let unit_len = after_num
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit() || *c == '.')
                .map_or(after_num.len(), |(i, _)| i);
            let (unit, after_unit) = after_num.split_at(unit_len);
            let scale = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => NANOS_PER_MICRO,
                "ms" => NANOS_PER_MILLI,
                "s" => NANOS_PER_SEC,
                "m" => NANOS_PER_MIN,
                "h" => NANOS_PER_HOUR,
                "" => return Err(DurationParseError::MissingUnit(text.to_string())),
                other => return Err(DurationParseError::Unit { unit: other.to_string(), text: text.to_string() }),
            };
            let int_value: u64 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| overflow())? };
            let mut value = int_value.checked_mul(scale).ok_or_else(overflow)?;
            // The fraction contributes frac * scale / 10^digits, computed digit by digit so it
            // stays exact for every unit (as Go does, truncating below a nanosecond).
            let mut unit_part = scale;
            for digit in frac_part.bytes() {
                unit_part /= 10;
                if unit_part == 0 {
                    break;
                }
                value = value.checked_add(u64::from(digit - b'0') * unit_part).ok_or_else(overflow)?;
            }
            total = total.checked_add(value).ok_or_else(overflow)?;
            rest = after_unit;
        }
        let limit = if negative { i64::MAX as u64 + 1 } else { i64::MAX as u64 };
        if total > limit {
            return Err(overflow());
        }
        let nanos = if negative { (total as i128).wrapping_neg() as i64 } else { total as i64 };
        Ok(GoDuration { nanos })
    }
}

/// Writes `value` with `precision` fractional digits, trailing zeros (and the dot) removed.
fn push_fraction(out: &mut String, value: u64, precision: u32) {
    let divisor = 10u64.pow(precision);
    out.push_str(&(value / divisor).to_string());
    let frac = value % divisor;
    if frac != 0 {
        let digits = format!("{:0width$}", frac, width = precision as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `0s`, `250ms`, `1.5s`, `15m0s`, `24h0m0s`, `-1m30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        if self.nanos < 0 {
            out.push('-');
        }
        let u = self.nanos.unsigned_abs();
        if u == 0 {
            out.push_str("0s");
        } else if u < NANOS_PER_MICRO {
            out.push_str(&format!("{u}ns"));
        } else if u < NANOS_PER_MILLI {
            push_fraction(&mut out, u, 3);
            out.push_str("µs");
        } else if u < NANOS_PER_SEC {
            push_fraction(&mut out, u, 6);
            out.push_str("ms");
        } else {
            let hours = u / NANOS_PER_HOUR;
            let mins = (u % NANOS_PER_HOUR) / NANOS_PER_MIN;
            let secs_nanos = u % NANOS_PER_MIN;
            if hours > 0 {
                out.push_str(&format!("{hours}h{mins}m"));
            } else if mins > 0 {
                out.push_str(&format!("{mins}m"));
            }
            push_fraction(&mut out, secs_nanos, 9);
            out.push('s');
        }
        f.write_str(&out)
    }
}

impl FromStr for GoDuration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoDuration::parse(s)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (250_000_000, "250ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (900_000_000_000, "15m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_400_000_000_000, "1h30m0s"),
            (86_400_000_000_000, "24h0m0s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (i64::MAX, "2562047h47m16.854775807s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(GoDuration::from_nanos(nanos).to_string(), text, "{nanos}");
        }
    }

    #[test]
    fn parses_like_go() {
        let cases = [
            ("0", 0),
            ("0s", 0),
            ("-0", 0),
            ("250ms", 250_000_000),
            ("900s", 900_000_000_000),
            ("24h0m0s", 86_400_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("-1.5s", -1_500_000_000),
            ("+2m", 120_000_000_000),
            ("3us", 3_000),
            ("3µs", 3_000),
            ("7ns", 7),
            ("1.0000000001s", 1_000_000_000),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ];
        for (text, nanos) in cases {
            assert_eq!(GoDuration::parse(text), Ok(GoDuration::from_nanos(nanos)), "{text}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for text in
            ["", "s", "1", "10", "1x", "-", ".s", "1h-1m", "1 s", "2562047h47m16.854775808s", "9999999999999999999h"]
        {
            assert!(GoDuration::parse(text).is_err(), "{text:?} should not parse");
        }
        assert!(matches!(GoDuration::parse("5d"), Err(DurationParseError::Unit { .. })));
        assert!(matches!(GoDuration::parse("10"), Err(DurationParseError::MissingUnit(_))));
    }

    #[test]
    fn round_trips_through_text() {
        for nanos in [0, 1, 999, 1_000_001, 59_999_999_999, 61_000_000_000, 86_399_999_999_999, -5] {
            let d = GoDuration::from_nanos(nanos);
            assert_eq!(GoDuration::parse(&d.to_string()), Ok(d));
        }
    }
}

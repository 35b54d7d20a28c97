//! Wall-clock time as epoch milliseconds, the unit of every time column and header, and the
//! durations settings are written in (`5s`, `30m`, `2h`, `5d`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A duration as a number and a unit: `ms`, `s`, `m`, `h` or `d` (`250ms`, `5s`, `10h`, `5d`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms).map(Duration::from_millis)
}

/// A duration in the largest unit that divides it, as [`parse_duration`] reads it back (`5d`,
/// `90s`, `1500ms`).
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let (number, unit) = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")]
        .into_iter()
        .find(|(unit_ms, _)| ms > 0 && ms.is_multiple_of(*unit_ms))
        .map_or((ms, "ms"), |(unit_ms, unit)| (ms / unit_ms, unit));
    format!("{number}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("10h"), Some(Duration::from_secs(36_000)));
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
        for bad in ["", "5", "s", "5 s", "-5s", "5w", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for (ms, text) in [(432_000_000, "5d"), (7_200_000, "2h"), (90_000, "90s"), (1_500, "1500ms"), (0, "0ms")] {
            let duration = Duration::from_millis(ms);
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Some(duration));
        }
    }
}

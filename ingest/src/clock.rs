//! RFC 3339 times as epoch milliseconds, read and written without allocating in the usual
//! case (`2026-11-24T12:00:00.123Z`, `…+02:00`), for the Tracking API's clock-skew correction
//! on every event. Other valid forms go through the `time` crate.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Epoch milliseconds of an RFC 3339 time (sub-millisecond digits dropped).
pub fn parse_ms(text: &str) -> Option<i64> {
    fast_parse(text.as_bytes()).or_else(|| {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
    })
}

fn fast_parse(b: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range)?.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        if at == start {
            return None;
        }
        let fraction = digits(start..start + (at - start).min(3))?;
        millis = fraction * [100, 10, 1][(at - start).min(3) - 1];
    }
    let offset_minutes = match &b[at..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let value = |x: &u8, y: &u8| -> Option<i64> {
                (x.is_ascii_digit() && y.is_ascii_digit()).then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            };
            let (hours, minutes) = (value(h1, h2)?, value(m1, m2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The range RFC 3339 can write: years 0000 to 9999.
pub const WRITABLE_MS: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Appends `ms` as RFC 3339 in UTC with milliseconds, as Segment writes times
/// (`2026-11-24T12:00:00.123Z`).
pub fn push(out: &mut String, ms: i64) {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, millis) = (in_day / 1000 % 60, in_day % 1000);
    if !(0..=9999).contains(&year) {
        // Outside what RFC 3339 can write; callers keep to WRITABLE_MS.
        out.push_str(&format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"));
        return;
    }
    let digits = |out: &mut String, value: i64, width: u32| {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10_i64.pow(place) % 10) as u8));
        }
    };
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, hour, 2);
    out.push(':');
    digits(out, minute, 2);
    out.push(':');
    digits(out, second, 2);
    out.push('.');
    digits(out, millis, 3);
    out.push('Z');
}

pub fn format(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    push(&mut out, ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_the_fast_path_and_agree_with_the_time_crate() {
        for text in [
            "2026-11-24T12:00:00Z",
            "2026-11-24T12:00:00.123Z",
            "2026-11-24T12:00:00.123456+02:00",
            "1999-12-31T23:59:59.9-05:30",
            "2024-02-29T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2100-03-01T00:00:00.001Z",
        ] {
            let slow = OffsetDateTime::parse(text, &Rfc3339).expect("valid");
            let expected = (slow.unix_timestamp_nanos() / 1_000_000) as i64;
            assert_eq!(fast_parse(text.as_bytes()), Some(expected), "{text}");
            let again = format(expected);
            assert_eq!(parse_ms(&again), Some(expected), "{text} -> {again}");
        }
        assert_eq!(format(1_795_521_600_123), "2026-11-24T12:00:00.123Z");
        // Valid, but not the fast path's form: the time crate reads them.
        assert_eq!(parse_ms("2026-11-24t12:00:00z"), parse_ms("2026-11-24T12:00:00Z"));
        for bad in
            ["", "2026-11-24", "2026-13-01T00:00:00Z", "2026-11-24T12:00:00", "2026-11-24T12:00:00.Z", "yesterday"]
        {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}

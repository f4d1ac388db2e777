//! Times as the wire carries them: RFC 3339 text to and from [`UnixMillis`].

use crate::UnixMillis;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in milliseconds.
pub fn iso8601(ms: UnixMillis) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Howard Hinnant's civil-from-days, valid for every date after 1970.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 date-time (e.g. 2026-11-30T09:15:00Z)")]
pub struct TimeError(pub String);

/// The last instant written with a four-digit year: 9999-12-31T23:59:59.999Z.
pub const LAST_WRITABLE_MS: UnixMillis = 253_402_300_799_999;

/// Parses an RFC 3339 `date-time` (`2026-11-30T09:15:00.250+01:00`, `…Z`) to Unix milliseconds.
/// Fractions beyond milliseconds are truncated; times before 1970, and times an offset takes
/// past the end of year 9999 in UTC (they could not be written back), are refused.
pub fn parse_rfc3339(text: &str) -> Result<UnixMillis, TimeError> {
    parse(text.trim()).ok_or_else(|| TimeError(text.chars().take(64).collect()))
}

/// Parses a calendar date, `YYYY-MM-DD`, to the first millisecond of that day (UTC).
pub fn parse_date(text: &str) -> Option<UnixMillis> {
    let t = text.trim();
    (t.len() == 10).then(|| parse(&format!("{t}T00:00:00Z")))?
}

fn parse(s: &str) -> Option<UnixMillis> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if !(1..=max_day).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(3).enumerate() {
            if i < digits {
                millis += i64::from(c - b'0') * 10i64.pow(2 - i as u32);
            }
        }
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let ob = rest.as_bytes();
            if ob.len() != 6 || ob[3] != b':' {
                return None;
            }
            let (h, m) = (num_of(&rest[1..3])?, num_of(&rest[4..6])?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    let ms = secs.checked_mul(1000)?.checked_add(millis)?;
    UnixMillis::try_from(ms).ok().filter(|&ms| ms <= LAST_WRITABLE_MS)
}

fn num_of(part: &str) -> Option<i64> {
    part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn times_past_year_9999_in_utc_are_refused() {
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Ok(LAST_WRITABLE_MS));
        assert_eq!(iso8601(LAST_WRITABLE_MS), "9999-12-31T23:59:59.999Z");
        assert!(parse_rfc3339("9999-12-31T23:59:59.999-23:59").is_err());
        assert!(parse_rfc3339("9999-12-31T12:00:00-12:01").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn formats_times() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_340_957_000), "2026-11-22T09:49:17.000Z");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 951_782_400_123, 1_795_340_957_000, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&iso8601(ms)), Ok(ms));
        }
        assert_eq!(parse_rfc3339("2026-11-22T10:49:17+01:00"), Ok(1_795_340_957_000));
        assert_eq!(parse_rfc3339("2026-11-22T04:19:17.5-05:30"), Ok(1_795_340_957_500));
        assert_eq!(parse_rfc3339("2026-11-22t09:49:17.123456789z"), Ok(1_795_340_957_123));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T09:49:17",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T09:49:17.Z",
            "2026-11-22T09:49:17+0100",
            "1969-12-31T23:59:59Z",
            "+2026-11-22T09:49:17Z",
            "２０２６-11-22T09:49:17Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_dates_to_the_start_of_their_day() {
        assert_eq!(parse_date("2026-11-22"), Some(1_795_305_600_000));
        assert_eq!(parse_date(" 2000-02-29 "), Some(951_782_400_000));
        for bad in [
            "",
            "2026-11-2",
            "2026-02-30",
            "2026-13-01",
            "2026/11/22",
            "2026-11-22T00:00:00Z",
            "2026-11-22Z",
            "1969-12-31",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }
}

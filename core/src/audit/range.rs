//! The time range of an audit query, `?from=&to=`: each an RFC 3339 time or a date.
//!
//! A date covers its whole day (UTC): `from=2026-12-07` starts at its first millisecond,
//! `to=2026-12-07` ends after its last. A time is taken as given: `from` inclusive, `to`
//! exclusive. A bound that cannot be read, or a range that holds no time, is refused.

use crate::time::{parse_date, parse_rfc3339};
use crate::UnixMillis;

const DAY_MS: UnixMillis = 24 * 3600 * 1000;

/// Longest piece of a refused value quoted back.
const QUOTED_CHARS: usize = 64;

/// Unix milliseconds: `from` inclusive, `to` exclusive; `None` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub from: Option<UnixMillis>,
    pub to: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{param}: an RFC 3339 time or a date (2026-12-07), not {value:?}")]
    Unreadable { param: &'static str, value: String },
    #[error("to must be later than from")]
    Empty,
}

impl TimeRange {
    /// The range `from`/`to` (as the query gives them) cover.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, RangeError> {
        let range = Self {
            from: from.map(|v| bound("from", v, 0)).transpose()?,
            to: to.map(|v| bound("to", v, DAY_MS)).transpose()?,
        };
        match (range.from, range.to) {
            (Some(from), Some(to)) if to <= from => Err(RangeError::Empty),
            _ => Ok(range),
        }
    }
}

/// A time as given, or the start of a date plus `date_offset`.
fn bound(param: &'static str, value: &str, date_offset: UnixMillis) -> Result<UnixMillis, RangeError> {
    parse_rfc3339(value)
        .ok()
        .or_else(|| parse_date(value).map(|day| day.saturating_add(date_offset)))
        .ok_or_else(|| RangeError::Unreadable {
            param,
            value: value.chars().take(QUOTED_CHARS).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const DEC_7: UnixMillis = 1_796_601_600_000;

    #[wasm_bindgen_test(unsupported = test)]
    fn a_date_covers_its_whole_day() {
        let day = TimeRange::parse(Some("2026-12-07"), Some("2026-12-07")).unwrap();
        assert_eq!((day.from, day.to), (Some(DEC_7), Some(DEC_7 + DAY_MS)));
        let noon = parse_rfc3339("2026-12-07T12:00:00Z").unwrap();
        assert!(day.from.unwrap() <= noon && noon < day.to.unwrap());
        let last_ms = parse_rfc3339("2026-12-07T23:59:59.999Z").unwrap();
        assert!(last_ms < day.to.unwrap());
        assert_eq!(TimeRange::parse(None, Some("2026-12-06")).unwrap().to, Some(DEC_7));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn times_are_taken_as_given() {
        let r = TimeRange::parse(Some("2026-12-07T10:00:00Z"), Some("2026-12-07T12:30:00+01:00")).unwrap();
        assert_eq!((r.from, r.to), (Some(DEC_7 + 36_000_000), Some(DEC_7 + 41_400_000)));
        assert_eq!(TimeRange::parse(None, None).unwrap(), TimeRange::default());
        let open = TimeRange::parse(Some("2026-12-07T00:00:00Z"), None).unwrap();
        assert_eq!(
            open,
            TimeRange {
                from: Some(DEC_7),
                to: None
            }
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unreadable_bounds_and_empty_ranges_are_refused() {
        for (from, to, param) in [
            (Some("yesterday"), None, "from"),
            (None, Some("2026-12-32"), "to"),
            (Some(""), None, "from"),
            (Some("2026-12-07"), Some("2026-12-07T25:00:00Z"), "to"),
            (None, Some("1796601600000"), "to"),
        ] {
            let err = TimeRange::parse(from, to).unwrap_err();
            assert!(
                matches!(err, RangeError::Unreadable { param: p, .. } if p == param),
                "{err:?}"
            );
            assert!(err.to_string().starts_with(&format!("{param}: ")), "{err}");
        }
        let long = "x".repeat(500);
        let err = TimeRange::parse(Some(&long), None).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
        for (from, to) in [
            ("2026-12-08", "2026-12-07"),
            ("2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z"),
            ("2026-12-07T10:00:00Z", "2026-12-07T09:00:00Z"),
            ("2026-12-08T00:00:00Z", "2026-12-07"),
        ] {
            assert_eq!(
                TimeRange::parse(Some(from), Some(to)),
                Err(RangeError::Empty),
                "{from} {to}"
            );
        }
        assert!(TimeRange::parse(Some("2026-12-07T23:00:00Z"), Some("2026-12-07")).is_ok());
    }
}

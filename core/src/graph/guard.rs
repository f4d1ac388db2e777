//! The deletion guard: a sync pass that would take away more accounts than a threshold allows
//! applies everything else and holds its leavers until a person approves or rejects them (a
//! directory mistake, a scope filter gone wrong, must not empty the contact centre).

use serde::{Deserialize, Serialize};

/// `DELETION_THRESHOLD`: a number of leavers (`25`) or a share of the people in scope (`10%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum DeletionThreshold {
    Count(usize),
    /// Per mille of the people in scope (`2.5%` is 25).
    PerMille(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("DELETION_THRESHOLD must be a whole number of users (25) or a share (10%), not {0:?}")]
    Unreadable(String),
    #[error("DELETION_THRESHOLD share must be above 0% and at most 100%, not {0:?}")]
    OutOfRange(String),
}

impl Default for DeletionThreshold {
    fn default() -> Self {
        Self::Count(crate::settings::defaults::DELETION_THRESHOLD)
    }
}

impl DeletionThreshold {
    pub fn parse(text: &str) -> Result<Self, ThresholdError> {
        let t = text.trim();
        if let Some(share) = t.strip_suffix('%') {
            let value: f64 = share
                .trim()
                .parse()
                .map_err(|_| ThresholdError::Unreadable(text.to_string()))?;
            if !(value > 0.0 && value <= 100.0) {
                return Err(ThresholdError::OutOfRange(text.to_string()));
            }
            // Within 0.1 ‰; the range check above keeps the cast in bounds.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return Ok(Self::PerMille((value * 10.0).round().max(1.0) as u32));
        }
        t.parse::<usize>()
            .map(Self::Count)
            .map_err(|_| ThresholdError::Unreadable(text.to_string()))
    }

    /// The most leavers a pass may apply on its own, with `in_scope` people in scope before it.
    pub fn allowed(&self, in_scope: usize) -> usize {
        match *self {
            Self::Count(n) => n,
            Self::PerMille(pm) => in_scope.saturating_mul(pm as usize) / 1000,
        }
    }

    /// Whether a pass with `leavers` disables or deletes must hold them for approval.
    pub fn holds(&self, leavers: usize, in_scope: usize) -> bool {
        leavers > self.allowed(in_scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn counts_and_shares() {
        let count = DeletionThreshold::parse(" 25 ").unwrap();
        assert_eq!(count, DeletionThreshold::Count(25));
        assert!(!count.holds(25, 10_000), "at the threshold: applied");
        assert!(count.holds(26, 10_000), "above it: held");
        let share = DeletionThreshold::parse("10%").unwrap();
        assert_eq!(share.allowed(1_000), 100);
        assert!(share.holds(101, 1_000) && !share.holds(100, 1_000));
        assert_eq!(DeletionThreshold::parse("2.5%").unwrap().allowed(1_000), 25);
        // A small tenant with a share: a single leaver among 5 is 20 %.
        assert!(share.holds(1, 5));
        assert_eq!(DeletionThreshold::default(), DeletionThreshold::Count(25));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unreadable_thresholds_say_what_is_expected() {
        for bad in ["", "many", "-3", "2.5", "x%"] {
            assert!(
                matches!(DeletionThreshold::parse(bad), Err(ThresholdError::Unreadable(_))),
                "{bad:?}"
            );
        }
        for bad in ["0%", "150%", "-1%"] {
            assert!(
                matches!(DeletionThreshold::parse(bad), Err(ThresholdError::OutOfRange(_))),
                "{bad:?}"
            );
        }
    }
}

//! When to try a request again, and how long to wait first.
//!
//! Full-jitter exponential backoff (`random(0, min(cap, base·2^attempt))`), never shorter than
//! the server's `Retry-After`, within an attempt budget. Randomness comes from a host seed.

use crate::http::HttpResponse;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub cap_ms: u64,
    /// Total tries of one request, the first included.
    pub max_attempts: u32,
    /// A `Retry-After` longer than this ends the retries instead of blocking.
    pub max_retry_after_ms: u64,
}

impl RetryPolicy {
    /// Full jitter for the `attempt`th retry (1-based): uniform in `[0, min(cap, base·2^(attempt-1))]`.
    pub fn full_jitter(&self, attempt: u32, jitter: &mut Jitter) -> u64 {
        let exp = self.base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        jitter.below_or_eq(exp.min(self.cap_ms))
    }
}

impl Default for RetryPolicy {
    /// [`crate::settings::defaults::RETRY`].
    fn default() -> Self {
        crate::settings::defaults::RETRY
    }
}

/// 429 and 5xx (but 501 and 505, which will not change) are worth another try.
/// 400/401/403/404/409/412 and the rest are not.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status) && status != 501 && status != 505
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after_ms(resp: &HttpResponse, now: UnixMillis) -> Option<u64> {
    let value = resp.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(u64::try_from(at_ms).unwrap_or(u64::MAX).saturating_sub(now))
}

/// A small deterministic generator (SplitMix64) seeded by the host, for jitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A value in `[0, bound]`.
    pub fn below_or_eq(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if bound == u64::MAX {
            z
        } else {
            z % (bound + 1)
        }
    }
}

/// Spacing between request starts, learned from the server's 429s: wider by a quarter at every
/// throttle (never narrower than the spacing that was just refused), narrower by 1/16 after
/// every 10 requests in a row that were let through. A sequential client then settles just under
/// the server's rate instead of paying a whole Retry-After each time it overshoots.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pacer {
    interval_ms: u64,
    last_start: Option<UnixMillis>,
    last_gap_ms: u64,
    passed_in_a_row: u32,
}

const PACE_FLOOR_MS: u64 = 10;
const PACE_CAP_MS: u64 = 60_000;

impl Pacer {
    /// The earliest time the next request may start.
    pub fn next_start(&self, now: UnixMillis) -> UnixMillis {
        self.last_start.map_or(now, |last| now.max(last + self.interval_ms))
    }

    pub fn started(&mut self, now: UnixMillis) {
        if let Some(last) = self.last_start {
            self.last_gap_ms = now.saturating_sub(last);
        }
        self.last_start = Some(now);
    }

    pub fn throttled(&mut self) {
        self.passed_in_a_row = 0;
        let refused = self.interval_ms.max(self.last_gap_ms).max(PACE_FLOOR_MS);
        self.interval_ms = (refused + refused / 4).min(PACE_CAP_MS);
    }

    pub fn passed(&mut self) {
        self.passed_in_a_row += 1;
        if self.passed_in_a_row >= 10 {
            self.passed_in_a_row = 0;
            self.interval_ms -= self.interval_ms / 16;
        }
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt(UnixMillis),
    GiveUp,
}

/// The retry bookkeeping of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    pub policy: RetryPolicy,
    /// Tries made so far of the current request.
    pub attempts: u32,
    jitter: Jitter,
}

impl RetryState {
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            policy,
            attempts: 0,
            jitter: Jitter::new(seed),
        }
    }

    /// A try is about to be made.
    pub fn record_attempt(&mut self) {
        self.attempts += 1;
    }

    /// Starts counting again for the next request.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// After a retryable failure: when to try again, or give up.
    pub fn after_failure(&mut self, retry_after: Option<u64>, now: UnixMillis) -> RetryDecision {
        if self.attempts >= self.policy.max_attempts {
            return RetryDecision::GiveUp;
        }
        if retry_after.is_some_and(|ra| ra > self.policy.max_retry_after_ms) {
            return RetryDecision::GiveUp;
        }
        let backoff = self.policy.full_jitter(self.attempts, &mut self.jitter);
        RetryDecision::RetryAt(now + backoff.max(retry_after.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn classifies_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 412, 501, 505] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_retry_after_in_both_forms() {
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            retry_after_ms(&HttpResponse::new(429, "").with_header("Retry-After", "7"), now),
            Some(7000)
        );
        let date = HttpResponse::new(503, "").with_header("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT");
        assert_eq!(retry_after_ms(&date, now), Some(30_000));
        let past = HttpResponse::new(503, "").with_header("Retry-After", "Wed, 21 Oct 2015 07:27:00 GMT");
        assert_eq!(retry_after_ms(&past, now), Some(0));
        assert_eq!(
            retry_after_ms(&HttpResponse::new(503, "").with_header("Retry-After", "soon"), now),
            None
        );
        assert_eq!(retry_after_ms(&HttpResponse::new(503, ""), now), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn full_jitter_is_bounded_by_cap_and_budget() {
        let policy = RetryPolicy {
            base_ms: 100,
            cap_ms: 1000,
            max_attempts: 6,
            max_retry_after_ms: 5000,
        };
        let mut seen_nonzero = false;
        for seed in 0..200 {
            let mut st = RetryState::new(policy, seed);
            for attempt in 1..=5u32 {
                st.record_attempt();
                let RetryDecision::RetryAt(at) = st.after_failure(None, 10_000) else {
                    panic!("gave up early")
                };
                let bound = (100u64 << (attempt - 1)).min(1000);
                assert!(
                    at >= 10_000 && at - 10_000 <= bound,
                    "attempt {attempt}: {}",
                    at - 10_000
                );
                seen_nonzero |= at > 10_000;
            }
            st.record_attempt();
            assert_eq!(st.after_failure(None, 0), RetryDecision::GiveUp);
        }
        assert!(seen_nonzero);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn honours_retry_after_and_gives_up_when_too_long() {
        let mut st = RetryState::new(RetryPolicy::default(), 42);
        st.record_attempt();
        assert_eq!(st.after_failure(Some(3_000), 100), RetryDecision::RetryAt(3_100));
        assert_eq!(st.after_failure(Some(60_000), 100), RetryDecision::GiveUp);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pacer_widens_on_throttle_and_narrows_on_success() {
        let mut p = Pacer::default();
        assert_eq!(p.next_start(100), 100, "no pacing until the server objects");
        p.started(100);
        p.started(400);
        p.throttled();
        assert_eq!(
            p.interval_ms(),
            375,
            "a quarter wider than the 300 ms gap that was refused"
        );
        assert_eq!(p.next_start(450), 775);
        p.throttled();
        assert_eq!(p.interval_ms(), 468);
        for _ in 0..10 {
            p.passed();
        }
        assert_eq!(p.interval_ms(), 468 - 468 / 16);
        let mut q = Pacer::default();
        for _ in 0..100 {
            q.throttled();
        }
        assert_eq!(q.interval_ms(), 60_000, "capped");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn jitter_is_deterministic_per_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut j = Jitter::new(9);
                move |_| j.below_or_eq(1000)
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut j = Jitter::new(9);
                move |_| j.below_or_eq(1000)
            })
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| *v <= 1000));
    }
}

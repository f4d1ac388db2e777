//! When to try a request again, and how long to wait first.
//!
//! Full-jitter exponential backoff (`random(0, min(cap, base·2^attempt))`), never shorter than
//! the server's `Retry-After`, within an attempt budget. Randomness comes from a host seed.
//! Request starts are spaced by a [`Pacer`], which also keeps to the quota a server announces
//! in its rate-limit headers ([`quota_from_headers`]).

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

/// What a server says is left of its rate limit, from the headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Requests the server will still take before it throttles.
    pub remaining: u64,
    /// When more quota is made available (the window resets, the next unit is refilled).
    pub reset_at: UnixMillis,
    /// The quota of a whole window, when said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The length of that window, when said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
}

/// Reset values at or above this many seconds are Unix times, not delays (`X-RateLimit-Reset`
/// is a Unix time at GitHub, a delay elsewhere; 10^9 s is September 2001, 10^9 s of delay is
/// 31 years).
const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;

/// The quota an answer announces, read from the first of these that is present and readable:
///
/// 1. `RateLimit` (with `RateLimit-Policy` for the limit and window), the structured fields of
///    draft-ietf-httpapi-ratelimit-headers (08 on): `"default";r=50;t=30`. With several
///    policies the most restrictive counts: the fewest remaining, then the latest reset.
///    Policies counting other units than requests (`qu="content-bytes"`) are left out.
/// 2. `RateLimit-Remaining` and `RateLimit-Reset` (delay seconds), from the earlier drafts,
///    with `RateLimit-Limit`.
/// 3. `X-RateLimit-Remaining` and `X-RateLimit-Reset`, a Unix time in seconds (GitHub) or,
///    below [`EPOCH_SECONDS_FROM`], a delay in seconds, with `X-RateLimit-Limit`.
///
/// `None` when none of them is there or readable. Header names are case-insensitive.
pub fn quota_from_headers(resp: &HttpResponse, now: UnixMillis) -> Option<Quota> {
    ietf_quota(resp, now)
        .or_else(|| counter_quota(resp, now, "ratelimit-", false))
        .or_else(|| counter_quota(resp, now, "x-ratelimit-", true))
}

fn ietf_quota(resp: &HttpResponse, now: UnixMillis) -> Option<Quota> {
    let limits = sf_list(&joined_header(resp, "ratelimit")?)?;
    let policies = joined_header(resp, "ratelimit-policy")
        .and_then(|v| sf_list(&v))
        .unwrap_or_default();
    let mut best: Option<Quota> = None;
    for item in &limits {
        let policy = policies.iter().find(|p| p.value == item.value);
        let unit = policy.and_then(|p| p.param("qu"));
        if unit.is_some_and(|u| u != "requests" && u != "request") {
            continue;
        }
        let Some(remaining) = item.param("r").and_then(sf_uint) else {
            continue;
        };
        let window_s = policy.and_then(|p| p.param("w")).and_then(sf_uint);
        // No reset said: at most a window away, when the window is known.
        let reset_ms = match item.param("t") {
            Some(t) => match seconds_to_ms(t) {
                Some(ms) => ms,
                None => continue,
            },
            None => window_s.unwrap_or(0).saturating_mul(1000),
        };
        let quota = Quota {
            remaining,
            reset_at: now.saturating_add(reset_ms),
            limit: policy
                .and_then(|p| p.param("q"))
                .or_else(|| item.param("q"))
                .and_then(sf_uint),
            window_ms: window_s.map(|w| w.saturating_mul(1000)),
        };
        best = match best {
            Some(b)
                if (b.remaining, std::cmp::Reverse(b.reset_at))
                    <= (quota.remaining, std::cmp::Reverse(quota.reset_at)) =>
            {
                Some(b)
            }
            _ => Some(quota),
        };
    }
    best
}

/// The three-counter styles: `{prefix}limit`, `{prefix}remaining`, `{prefix}reset`.
fn counter_quota(resp: &HttpResponse, now: UnixMillis, prefix: &str, reset_may_be_epoch: bool) -> Option<Quota> {
    let remaining = sf_uint(resp.header(&format!("{prefix}remaining"))?.trim())?;
    let reset = resp.header(&format!("{prefix}reset"))?.trim();
    let reset_ms = seconds_to_ms(reset)?;
    let reset_at = if reset_may_be_epoch && reset_ms >= EPOCH_SECONDS_FROM.saturating_mul(1000) {
        reset_ms
    } else {
        now.saturating_add(reset_ms)
    };
    // Early drafts follow the limit with its policies and their windows:
    // `RateLimit-Limit: 100, 100;w=60, 1000;w=3600`.
    let limits = resp
        .header(&format!("{prefix}limit"))
        .and_then(sf_list)
        .unwrap_or_default();
    let limit = limits.first();
    let window_s = limit.and_then(|l| {
        limits
            .iter()
            .filter(|i| i.value == l.value)
            .find_map(|i| i.param("w").and_then(sf_uint))
    });
    Some(Quota {
        remaining,
        reset_at,
        limit: limit.and_then(|i| sf_uint(&i.value)),
        window_ms: window_s.map(|w| w.saturating_mul(1000)),
    })
}

/// Every field of that name, joined as one list (RFC 9110 §5.3).
fn joined_header(resp: &HttpResponse, name: &str) -> Option<String> {
    let values: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// A non-negative integer, digits only.
fn sf_uint(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whole seconds, or seconds with a fraction (`1.25`, some servers send them), in ms.
fn seconds_to_ms(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let ms = sf_uint(whole)?.saturating_mul(1000);
    if frac.is_empty() {
        return (!text.ends_with('.')).then_some(ms);
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ms = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Some(ms.saturating_add(frac_ms))
}

/// One member of a Structured Fields list (RFC 9651 §3.1): its bare item as text (a string
/// unquoted) and its parameters, a parameter without a value as `?1`.
#[derive(Debug, PartialEq)]
struct SfItem {
    value: String,
    params: Vec<(String, String)>,
}

impl SfItem {
    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

const OWS: [char; 2] = [' ', '\t'];

/// A Structured Fields list, read leniently (parameter keys in any case, bare items other
/// than strings kept as their text); `None` when it does not parse.
fn sf_list(field: &str) -> Option<Vec<SfItem>> {
    let mut items = Vec::new();
    let mut rest = field.trim_matches(OWS);
    if rest.is_empty() {
        return None;
    }
    loop {
        let (value, after) = sf_bare_item(rest)?;
        let (params, after) = sf_params(after)?;
        items.push(SfItem { value, params });
        let after = after.trim_start_matches(OWS);
        if after.is_empty() {
            return Some(items);
        }
        rest = after.strip_prefix(',')?.trim_start_matches(OWS);
        if rest.is_empty() {
            return None;
        }
    }
}

fn sf_bare_item(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    _ => return None,
                },
                '"' => return Some((out, body.get(i + 1..)?)),
                c if c == ' ' || c.is_ascii_graphic() => out.push(c),
                _ => return None,
            }
        }
        return None;
    }
    // A token, number, boolean or byte sequence: up to the next delimiter.
    let end = s.find([';', ',', ' ', '\t', '"']).unwrap_or(s.len());
    let value = s.get(..end)?;
    if value.is_empty() {
        return None;
    }
    Some((value.to_string(), s.get(end..)?))
}

fn sf_params(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut params = Vec::new();
    while let Some(after) = s.strip_prefix(';') {
        let after = after.trim_start_matches(' ');
        let key_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*')))
            .unwrap_or(after.len());
        let key = after.get(..key_end)?;
        if key.is_empty() {
            return None;
        }
        let after = after.get(key_end..)?;
        let (value, after) = match after.strip_prefix('=') {
            Some(v) => sf_bare_item(v)?,
            None => ("?1".to_string(), after),
        };
        params.push((key.to_ascii_lowercase(), value));
        s = after;
    }
    Some((params, s))
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
///
/// When the server announces its quota ([`Pacer::observe`] with [`quota_from_headers`]), an
/// exhausted quota holds every start until it is refilled, so the client keeps to the server's
/// rate without being refused first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pacer {
    interval_ms: u64,
    last_start: Option<UnixMillis>,
    last_gap_ms: u64,
    passed_in_a_row: u32,
    /// No start before this (0: none), from an exhausted quota.
    #[serde(default, skip_serializing_if = "is_zero")]
    hold_until: UnixMillis,
    /// The spacing the server's announced policy allows (its window over its quota), 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    policy_spacing_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

const PACE_FLOOR_MS: u64 = 10;
const PACE_CAP_MS: u64 = 60_000;

impl Pacer {
    /// The earliest time the next request may start.
    pub fn next_start(&self, now: UnixMillis) -> UnixMillis {
        let interval = self.interval_ms.max(self.policy_spacing_ms);
        let paced = self
            .last_start
            .map_or(now, |last| now.max(last.saturating_add(interval)));
        paced.max(self.hold_until)
    }

    /// The quota an answer announced: none left holds every start until `reset_at` (however
    /// far; callers that will not wait that long decide by [`Pacer::hold_until`]). Room left
    /// changes nothing: a server with room is not slowed down.
    ///
    /// A policy (quota per window) also spaces every start by window / quota, a little more:
    /// at that pace a token bucket refills before each request, and a reset announced within
    /// one such step is that step rounded up to whole seconds, so no hold is needed for it.
    pub fn observe(&mut self, quota: Quota, now: UnixMillis) {
        let step = match (quota.limit, quota.window_ms) {
            (Some(limit), Some(window)) if limit > 0 && window > 0 => {
                let step = window / limit;
                Some(step.saturating_add(step / 50).saturating_add(1))
            }
            _ => None,
        };
        if let Some(step) = step {
            self.policy_spacing_ms = step.min(PACE_CAP_MS);
        }
        if quota.remaining == 0 && quota.reset_at > now {
            let rounding_of_one_step =
                step.is_some_and(|s| quota.reset_at - now <= s.div_ceil(1000).saturating_mul(1000));
            if !rounding_of_one_step {
                self.hold_until = self.hold_until.max(quota.reset_at);
            }
        }
    }

    /// The time an exhausted quota holds starts until (0 when none ever did).
    pub fn hold_until(&self) -> UnixMillis {
        self.hold_until
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
            self.interval_ms -= (self.interval_ms / 16).max(1).min(self.interval_ms);
            // Below the floor the spacing is gone: the server has kept up for a while.
            if self.interval_ms < PACE_FLOOR_MS {
                self.interval_ms = 0;
            }
        }
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// Whether starts are spaced (after a 429, or by the server's announced policy): then they
    /// go one at a time.
    pub fn spaced(&self) -> bool {
        self.interval_ms.max(self.policy_spacing_ms) > 0
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
        // A server that keeps up long enough loses its spacing altogether.
        let mut r = Pacer::default();
        r.throttled();
        assert!(r.spaced());
        for _ in 0..100 {
            r.passed();
        }
        assert_eq!((r.interval_ms(), r.spaced()), (0, false));
    }

    fn answer(headers: &[(&str, &str)]) -> HttpResponse {
        headers
            .iter()
            .fold(HttpResponse::new(200, ""), |r, (n, v)| r.with_header(n, v))
    }

    const NOW: UnixMillis = 1_700_000_000_000;

    fn quota(remaining: u64, reset_in_s: u64) -> Quota {
        Quota {
            remaining,
            reset_at: NOW + reset_in_s * 1000,
            limit: None,
            window_ms: None,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_drafts_structured_ratelimit_fields() {
        let read = |h: &[(&str, &str)]| quota_from_headers(&answer(h), NOW);
        // Examples of draft-ietf-httpapi-ratelimit-headers-10 (§4.2, appendix B).
        assert_eq!(read(&[("RateLimit", r#""default";r=50;t=30"#)]), Some(quota(50, 30)));
        assert_eq!(read(&[("RateLimit", r#""default";r=0;t=50"#)]), Some(quota(0, 50)));
        assert_eq!(
            read(&[("RateLimit", r#""default";r=999;pk=:dHJpYWwxMjEzMjM=:"#)]),
            Some(quota(999, 0)),
            "no reset said, no window known"
        );
        assert_eq!(
            read(&[
                ("RateLimit", r#""fixedwindow";r=99;t=50"#),
                ("RateLimit-Policy", r#""fixedwindow";q=100;w=60"#),
            ]),
            Some(Quota {
                limit: Some(100),
                window_ms: Some(60_000),
                ..quota(99, 50)
            })
        );
        assert_eq!(
            read(&[
                ("RateLimit-Policy", r#""hour";q=1000;w=3600, "day";q=5000;w=86400"#),
                ("RateLimit", r#""day";r=100;t=36000"#),
            ]),
            Some(Quota {
                limit: Some(5000),
                window_ms: Some(86_400_000),
                ..quota(100, 36_000)
            })
        );
        // A throttled answer (B.1.4): Retry-After and the quota agree.
        let throttled = HttpResponse::new(429, "")
            .with_header("Retry-After", "5")
            .with_header("RateLimit", r#""default";r=0;t=5"#);
        assert_eq!(quota_from_headers(&throttled, NOW), Some(quota(0, 5)));
        assert_eq!(retry_after_ms(&throttled, NOW), Some(5000));
        // Names in any case, items in any spacing.
        assert_eq!(read(&[("ratelimit", r#"  "default";r=3;T=4 "#)]), Some(quota(3, 4)));
        // Remaining missing (B.3.1): nothing to go by.
        assert_eq!(
            read(&[("RateLimit-Policy", "quota;q=100;w=1"), ("RateLimit", "quota;t=1")]),
            None
        );
        // r=0 without t: the policy's window bounds the wait.
        assert_eq!(
            read(&[
                ("RateLimit-Policy", r#""basic";q=100;w=60"#),
                ("RateLimit", r#""basic";r=0"#)
            ])
            .map(|q| q.reset_at),
            Some(NOW + 60_000)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_most_restrictive_of_several_policies_counts() {
        let read = |h: &[(&str, &str)]| quota_from_headers(&answer(h), NOW);
        assert_eq!(
            read(&[("RateLimit", r#""permin";r=0;t=20, "perhr";r=500;t=3000"#)]),
            Some(quota(0, 20))
        );
        assert_eq!(
            read(&[("RateLimit", r#""burst";r=0;t=5,"daily";r=0;t=40"#)]),
            Some(quota(0, 40)),
            "both exhausted: the later reset"
        );
        // One list split over two fields.
        assert_eq!(
            read(&[("RateLimit", r#""a";r=7;t=1"#), ("RateLimit", r#""b";r=3;t=9"#)]),
            Some(quota(3, 9))
        );
        // A policy counting bytes is not a request quota (draft §3.2's example policy).
        assert_eq!(
            read(&[
                (
                    "RateLimit-Policy",
                    r#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:"#
                ),
                ("RateLimit", r#""peruser";r=0;t=10, "req";r=40;t=10"#),
            ]),
            Some(quota(40, 10))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_older_counter_styles() {
        let read = |h: &[(&str, &str)]| quota_from_headers(&answer(h), NOW);
        // The drafts up to 06: three fields, the reset a delay.
        assert_eq!(
            read(&[
                ("RateLimit-Limit", "10"),
                ("RateLimit-Remaining", "0"),
                ("RateLimit-Reset", "7"),
            ]),
            Some(Quota {
                limit: Some(10),
                ..quota(0, 7)
            })
        );
        assert_eq!(
            read(&[
                ("ratelimit-limit", "100, 100;w=60, 1000;w=3600"),
                ("ratelimit-remaining", "42"),
                ("ratelimit-reset", "30"),
            ]),
            Some(Quota {
                limit: Some(100),
                window_ms: Some(60_000),
                ..quota(42, 30)
            })
        );
        // GitHub's fields: the reset is a Unix time in seconds.
        let github = answer(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-used", "5000"),
            ("x-ratelimit-reset", "1700000600"),
            ("x-ratelimit-resource", "core"),
        ]);
        assert_eq!(
            quota_from_headers(&github, NOW),
            Some(Quota {
                limit: Some(5000),
                ..quota(0, 600)
            })
        );
        // A reset already past holds nothing back.
        assert_eq!(
            quota_from_headers(&github, NOW + 601_000).map(|q| q.reset_at),
            Some(NOW + 600_000)
        );
        // Small X- resets are delays; fractions are kept to the millisecond.
        assert_eq!(
            read(&[("X-RateLimit-Remaining", "3"), ("X-RateLimit-Reset", "60")]),
            Some(quota(3, 60))
        );
        assert_eq!(
            read(&[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "1.25")]).map(|q| q.reset_at),
            Some(NOW + 1250)
        );
        // The structured fields win, then the draft counters, then X-.
        let all = [
            ("X-RateLimit-Remaining", "9"),
            ("X-RateLimit-Reset", "9"),
            ("RateLimit-Remaining", "8"),
            ("RateLimit-Reset", "8"),
            ("RateLimit", r#""default";r=7;t=7"#),
        ];
        assert_eq!(read(&all).map(|q| q.remaining), Some(7));
        assert_eq!(read(&all[..4]).map(|q| q.remaining), Some(8));
        assert_eq!(read(&all[..2]).map(|q| q.remaining), Some(9));
        // An unreadable style gives way to the next one.
        assert_eq!(
            read(&[
                ("RateLimit", "garbage=;;"),
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "2")
            ]),
            Some(quota(1, 2))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unreadable_quota_headers_give_none() {
        let read = |h: &[(&str, &str)]| quota_from_headers(&answer(h), NOW);
        for bad in [
            "",
            ",",
            r#""default";r=-1;t=5"#,
            r#""default";r=abc;t=5"#,
            r#""default";r=5;t=soon"#,
            r#""default";r=5;t=-3"#,
            r#""default";r=1.5;t=1"#,
            r#""unterminated;r=1;t=1"#,
            r#""default";r=1;t=1,"#,
            r#""default";;r=1"#,
            r#""a\qb";r=1"#,
            "\"default\";r=99999999999999999999999;t=1",
            "\"d\u{e9}fault\";r=1;t=1",
        ] {
            assert_eq!(read(&[("RateLimit", bad)]), None, "{bad:?}");
        }
        assert_eq!(read(&[("RateLimit-Remaining", "5")]), None, "no reset");
        assert_eq!(read(&[("RateLimit-Remaining", "five"), ("RateLimit-Reset", "1")]), None);
        assert_eq!(
            read(&[("X-RateLimit-Remaining", "1"), ("X-RateLimit-Reset", "1.")]),
            None
        );
        assert_eq!(read(&[]), None);
        // Huge values saturate instead of overflowing.
        assert_eq!(
            quota_from_headers(&answer(&[("RateLimit", r#""d";r=0;t=18446744073709551615"#)]), NOW).map(|q| q.reset_at),
            Some(u64::MAX)
        );
        // Whatever the bytes, no panic.
        let alphabet: Vec<char> = "\"\\;,=:?*. \t-0123456789rtqwRTx\u{e9}".chars().collect();
        let mut jitter = Jitter::new(3);
        for _ in 0..2000 {
            let len = jitter.below_or_eq(24) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[jitter.below_or_eq(alphabet.len() as u64 - 1) as usize])
                .collect();
            for name in ["RateLimit", "RateLimit-Reset", "X-RateLimit-Reset", "RateLimit-Limit"] {
                let _ = quota_from_headers(
                    &answer(&[
                        (name, &text),
                        ("RateLimit-Remaining", "1"),
                        ("X-RateLimit-Remaining", "1"),
                        ("RateLimit-Policy", &text),
                    ]),
                    NOW,
                );
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_exhausted_quota_holds_starts_until_its_reset() {
        let mut p = Pacer::default();
        p.started(NOW);
        p.observe(quota(5, 30), NOW);
        assert_eq!(p.next_start(NOW + 1), NOW + 1, "room left: no slower");
        assert_eq!(p, {
            let mut q = Pacer::default();
            q.started(NOW);
            q
        });
        p.observe(quota(0, 2), NOW);
        assert_eq!(p.next_start(NOW + 1), NOW + 2000);
        assert_eq!(p.next_start(NOW + 2500), NOW + 2500);
        p.observe(quota(0, 1), NOW);
        assert_eq!(
            p.next_start(NOW),
            NOW + 2000,
            "an earlier reset does not shorten the hold"
        );
        p.observe(quota(3, 0), NOW + 10);
        assert_eq!(p.next_start(NOW), NOW + 2000, "nor does room announced meanwhile");
        // The 429 pacing still applies on top.
        p.started(NOW + 2000);
        p.throttled();
        assert!(p.next_start(NOW + 2000) > NOW + 2000);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pacer_state_stays_compatible() {
        let old = r#"{"intervalMs":375,"lastStart":100,"lastGapMs":300,"passedInARow":2}"#;
        let p: Pacer = serde_json::from_str(old).unwrap();
        assert_eq!(p.interval_ms(), 375);
        assert_eq!(p.hold_until(), 0);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            old,
            "nothing new written while unused"
        );
        let mut held = p.clone();
        held.observe(quota(0, 1), NOW);
        let back: Pacer = serde_json::from_str(&serde_json::to_string(&held).unwrap()).unwrap();
        assert_eq!(back, held);
    }

    /// A client sending `total` requests one at a time, paced by a [`Pacer`] and, when
    /// `use_quota`, by the quota the answers announce; refused requests are sent again.
    struct PacedClient {
        pacer: Pacer,
        use_quota: bool,
        left: u32,
        passed_at: Vec<UnixMillis>,
        sent_at: Option<UnixMillis>,
        refused: u32,
    }

    impl crate::flows::Flow for PacedClient {
        type Output = ();

        fn next_step(&mut self, now: UnixMillis) -> crate::flows::Step<()> {
            if self.left == 0 {
                return crate::flows::Step::Done(());
            }
            let at = self.pacer.next_start(now);
            if at > now {
                return crate::flows::Step::Wait { until: at };
            }
            self.pacer.started(now);
            self.sent_at = Some(now);
            crate::flows::Step::Send(crate::http::HttpRequest::scim(
                crate::http::Method::Get,
                "http://cxone.test/scim/v2/Users?count=1",
            ))
        }

        fn on_response(&mut self, resp: HttpResponse, now: UnixMillis) {
            if self.use_quota {
                if let Some(q) = quota_from_headers(&resp, now) {
                    self.pacer.observe(q, now);
                }
            }
            if resp.status == 429 {
                self.refused += 1;
                self.pacer.throttled();
            } else {
                self.pacer.passed();
                self.left -= 1;
                self.passed_at.extend(self.sent_at);
            }
        }

        fn on_transport_error(&mut self, _: crate::http::TransportError, _: UnixMillis) {}
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn quota_headers_keep_a_client_at_the_servers_rate_without_429s() {
        let (rate, burst, total) = (2.0, 2.0, 40);
        let run = |use_quota: bool, service_ms: u64| {
            let mut server = crate::testutil::SimServer::default();
            server.limit_rate(rate, burst);
            server.quota_headers = true;
            server.service_ms = service_ms;
            let mut client = PacedClient {
                pacer: Pacer::default(),
                use_quota,
                left: total,
                passed_at: Vec::new(),
                sent_at: None,
                refused: 0,
            };
            crate::testutil::drive(&mut client, &mut server);
            assert_eq!(client.passed_at.len(), total as usize);
            (client, server.throttled)
        };
        // Quick answers, and answers as slow as a 50-user Bulk request: the whole-second resets
        // of the headers must not cost the sub-second refills.
        for service_ms in [5, 150, 300] {
            let (client, throttled) = run(true, service_ms);
            assert_eq!((client.refused, throttled), (0, 0), "no 429 at all ({service_ms} ms)");
            // The bucket's ceiling: the burst at once, then `rate` a second.
            let ceiling_ms = (f64::from(total) - burst) / rate * 1000.0;
            let took_ms = (client.passed_at[total as usize - 1] - client.passed_at[0]) as f64;
            assert!(
                ceiling_ms / took_ms >= 0.95,
                "{:.1} % of the ceiling ({took_ms} ms for {ceiling_ms} ms, {service_ms} ms a request)",
                100.0 * ceiling_ms / took_ms
            );
        }
        // The same client deaf to the headers learns the rate from 429s only.
        let (_, throttled) = run(false, 5);
        assert!(throttled > 0);
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

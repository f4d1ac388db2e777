//! The subrequests an invocation may still make, and what each kind of work costs. Cloudflare
//! caps subrequests (fetches, KV operations, Durable Object calls) per invocation: 50 on the
//! Free plan, 1,000 on paid (`SUBREQUEST_BUDGET`). Every count the hosts use is named here.

use crate::ledger::request_deadline;
use crate::UnixMillis;

/// Kept back from a request's budget for what comes around its work: the token read from KV
/// and one call to the audit trail.
pub const AROUND_REQUEST: u32 = 2;
/// Kept back from a change's flow for its records: the audit record, and a failure record
/// (read, then written) or a conflict record, with room to clear superseded failures.
pub const RESERVED_FOR_RECORDS: u32 = 6;
/// What one Graph change applied through its person's ledger may cost: the ledger call, a
/// link, the CXone requests of a lookup, write and read-back, and the records.
pub const PER_APPLY: u32 = 12;
/// What one leaver applied through its person's ledger may cost: the ledger call and a link, a
/// token, the lookups, the agent's search and its three dependencies, the deactivation, the
/// logout, two read-backs, and the records (the audit record, the leaver's record, HR's notice).
pub const PER_LEAVER: u32 = 20;
/// Ledger calls one bulk row's hold may take: the begin, and either the userName's link (a row
/// with an externalId) or a forward's begin (a row without), and the commit that gives it back.
pub const HOLD_CALLS: u32 = 3;
/// What planning one change's first write may send in a dry run: a token and up to two
/// lookups, and more for a read back or a retry.
pub const PLAN_ONE_WRITE: u32 = 5;
/// What planning a leaver's first write may send: a token, up to two lookups, the agent's
/// search and its three dependencies, and one more for a retry.
pub const PLAN_ONE_LEAVER: u32 = 9;
/// A request that takes longer than this counts as lost (and is retried), unless a lease says
/// otherwise (`CXONE_REQUEST_TIMEOUT_MS`).
pub const REQUEST_TIMEOUT_MS: u64 = 15_000;

/// What is left of an invocation's subrequests, and when requests must stop starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    remaining: u32,
    /// Subrequests one step costs: the request, plus a checkpoint written after it.
    per_send: u32,
    /// No request starts at or after this time (set from a ledger lease).
    deadline: Option<UnixMillis>,
    /// How long one request may take before it counts as lost.
    timeout_ms: u64,
}

impl Budget {
    pub fn new(remaining: u32, per_send: u32) -> Self {
        Self {
            remaining,
            per_send: per_send.max(1),
            deadline: None,
            timeout_ms: REQUEST_TIMEOUT_MS,
        }
    }

    /// A request's budget: `subrequests` less what comes around its work ([`AROUND_REQUEST`]).
    pub fn for_request(subrequests: u32) -> Self {
        Self::new(subrequests.saturating_sub(AROUND_REQUEST), 1)
    }

    /// A change's flow: what the change was allowed, less the ledger calls it made and what
    /// its records need ([`RESERVED_FOR_RECORDS`]), within the lease it holds.
    pub fn for_change(allowance: u32, ledger_calls: u32, lease_until: UnixMillis, timeout_ms: u64) -> Self {
        Self::new(allowance.saturating_sub(ledger_calls + RESERVED_FOR_RECORDS), 1)
            .within_lease(lease_until, timeout_ms)
    }

    /// The same budget for the holder of a ledger lease that ends at `lease_until`: each request
    /// may take `timeout_ms`, and none starts unless the lease outlives it.
    pub fn within_lease(self, lease_until: UnixMillis, timeout_ms: u64) -> Self {
        Self {
            deadline: Some(request_deadline(lease_until, timeout_ms)),
            timeout_ms,
            ..self
        }
    }

    /// How long one request may take.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Takes what `n` steps sent at once need, if it is all there and it is not too late.
    pub fn take_steps(&mut self, n: u32, now: UnixMillis) -> bool {
        let needed = self.per_send.saturating_mul(n);
        if self.remaining < needed || self.deadline.is_some_and(|d| now >= d) {
            return false;
        }
        self.remaining -= needed;
        true
    }

    /// How many steps the budget still has room for.
    pub fn steps_left(&self) -> u32 {
        self.remaining / self.per_send
    }

    /// Counts `n` subrequests made outside the budget's own steps.
    pub fn spend(&mut self, n: u32) {
        self.remaining = self.remaining.saturating_sub(n);
    }

    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// How many Graph changes the budget pays for at once ([`PER_APPLY`] each), at most `of`.
    pub fn applies(&self, of: usize) -> usize {
        of.min((self.remaining / PER_APPLY) as usize)
    }

    /// What one change costs: [`PER_LEAVER`] for a leaver, else [`PER_APPLY`].
    pub fn cost_of(leaver: bool) -> u32 {
        if leaver {
            PER_LEAVER
        } else {
            PER_APPLY
        }
    }

    /// How many of the changes costing `costs`, taken in order, this budget pays for.
    pub fn fits(&self, costs: impl IntoIterator<Item = u32>) -> usize {
        let mut left = self.remaining;
        costs
            .into_iter()
            .take_while(|c| {
                let fits = *c <= left;
                left = left.saturating_sub(*c);
                fits
            })
            .count()
    }

    /// What a change costing `cost` may spend when changes costing `total` share this budget:
    /// its share of what is left, at least its cost.
    pub fn share(&self, cost: u32, total: u32) -> u32 {
        let share = u64::from(self.remaining) * u64::from(cost) / u64::from(total.max(1));
        u32::try_from(share).unwrap_or(u32::MAX).max(cost.min(self.remaining))
    }

    /// A budget carved out of this one for planning a change's first write in a dry run
    /// ([`PLAN_ONE_WRITE`] requests, [`PLAN_ONE_LEAVER`] for a leaver), when this one still pays
    /// for them and the token cache's read; give back what it did not use with [`Budget::settle`].
    pub fn carve_plan(&self, leaver: bool) -> Option<Budget> {
        let cost = if leaver { PLAN_ONE_LEAVER } else { PLAN_ONE_WRITE };
        (self.remaining > cost).then(|| Budget::new(cost, 1))
    }

    /// Counts what a carved budget spent, and the token cache's read that went with it.
    pub fn settle(&mut self, carved: &Budget) {
        self.spend(PLAN_ONE_WRITE.saturating_sub(carved.remaining) + 1);
    }

    /// How many bulk rows' holds the budget pays for, one step kept for the request they are for.
    pub fn holds(&self) -> usize {
        (self.remaining.saturating_sub(1) / HOLD_CALLS) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn leavers_cost_more_and_changes_share_by_cost() {
        let b = Budget::new(48, 1);
        let costs = [PER_APPLY, PER_LEAVER, PER_APPLY, PER_APPLY];
        assert_eq!(b.fits(costs), 3, "12 + 20 + 12 = 44 fits 48, one more does not");
        assert_eq!(b.fits([PER_LEAVER, PER_LEAVER, PER_LEAVER]), 2);
        assert_eq!(Budget::new(5, 1).fits([PER_APPLY]), 0);
        assert_eq!(b.share(PER_LEAVER, 2 * PER_LEAVER), 24);
        assert_eq!(b.share(PER_APPLY, PER_APPLY + PER_LEAVER), 18);
        assert_eq!(
            Budget::new(10, 1).share(PER_LEAVER, PER_LEAVER),
            10,
            "never more than there is"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn steps_are_taken_while_they_are_paid_for_and_the_lease_lasts() {
        let mut b = Budget::new(10, 2);
        assert_eq!(b.steps_left(), 5);
        assert!(b.take_steps(3, 0));
        assert_eq!(b.remaining(), 4);
        assert!(!b.take_steps(3, 0), "6 needed, 4 left");
        assert!(b.take_steps(2, 0));
        b.spend(9);
        assert_eq!(b.remaining(), 0);

        let lease_until = 100_000;
        let mut b = Budget::for_change(50, 2, lease_until, 10_000);
        assert_eq!(b.remaining(), 50 - 2 - RESERVED_FOR_RECORDS);
        assert_eq!(b.timeout_ms(), 10_000);
        let last_start = request_deadline(lease_until, 10_000);
        assert!(b.take_steps(1, last_start - 1));
        assert!(!b.take_steps(1, last_start), "a request must end within the lease");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_budget_says_how_much_work_it_pays_for() {
        let b = Budget::for_request(50);
        assert_eq!(b.remaining(), 48);
        assert_eq!(b.timeout_ms(), REQUEST_TIMEOUT_MS);
        assert_eq!(b.applies(6), 4, "48 / 12");
        assert_eq!(b.applies(2), 2);
        assert_eq!(b.holds(), 15, "47 / 3");
        assert_eq!(Budget::new(0, 1).holds(), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_dry_run_plans_a_write_within_what_it_carves_out() {
        let mut b = Budget::new(20, 1);
        let mut carved = b.carve_plan(false).unwrap();
        assert!(carved.take_steps(2, 0));
        b.settle(&carved);
        assert_eq!(b.remaining(), 20 - 2 - 1, "two requests and the token cache's read");
        assert_eq!(Budget::new(PLAN_ONE_WRITE, 1).carve_plan(false), None);
        assert_eq!(
            Budget::new(PLAN_ONE_WRITE + 1, 1).carve_plan(true),
            None,
            "a leaver reads more first"
        );
        assert_eq!(
            Budget::new(PLAN_ONE_LEAVER + 1, 1)
                .carve_plan(true)
                .map(|b| b.remaining()),
            Some(PLAN_ONE_LEAVER)
        );
    }
}

//! Looking rows up in CXone (the pre-check, a 409, an answer that said nothing certain) and
//! deciding what the accounts found mean, by the same rules as the lifecycle path: the
//! externalId first; a userName match counts only for an account with no externalId or the
//! same one; anything else is a conflict and nothing is written.

use super::entry::{Entry, Stage};
use super::report::RowOutcome;
use crate::event::Lookup;
use crate::flows::lookup::{judge, Found};
use crate::flows::{ConflictReason, FlowError};
use crate::http::{HttpRequest, Method};
use crate::profile::Capabilities;
use crate::scim::build::patch_to;
use crate::scim::{filter, User};

/// Users per lookup request where the server takes any filter (each contributes up to two
/// clauses); one where it takes `userName eq` alone.
pub(super) fn users_per_lookup(caps: &Capabilities) -> usize {
    if caps.filters_by_external_id() {
        10
    } else {
        1
    }
}

/// `GET /Users?filter=externalId eq … or userName eq … …`, one page; `userName eq …` alone
/// where the server takes nothing else.
pub(super) fn request<'a>(
    base_url: &str,
    caps: &Capabilities,
    rows: impl Iterator<Item = &'a Entry>,
    start_index: u64,
) -> HttpRequest {
    let mut clauses = Vec::new();
    for e in rows {
        if let Some(ext) = e.external_id.as_ref().filter(|_| caps.filters_by_external_id()) {
            clauses.push(filter::eq("externalId", ext));
        }
        clauses.push(filter::eq("userName", &e.user_name));
    }
    let url = format!(
        "{}&startIndex={start_index}&count={}",
        filter::users_filter_url(base_url, &clauses.join(" or ")),
        clauses.len()
    );
    HttpRequest::scim(Method::Get, url)
}

/// Whether an account answers this row's lookup at all (a server that ignores the filter sends
/// others, which are dropped here).
pub(super) fn answers(e: &Entry, user: &User) -> bool {
    let by_ext = e.external_id.is_some() && user.external_id == e.external_id;
    by_ext || crate::scim::same_user_name(&user.user_name, &e.user_name)
}

/// How much earlier than the run CXone's clock may say an account was created and still count
/// as a creation of this run.
const CLOCK_SKEW_MS: u64 = 60_000;

/// Settles a looked-up row from the accounts that answer it (deduplicated by id), by the same
/// matching rule as every other lookup ([`crate::flows::lookup::judge`]).
/// `run_started` (Unix ms) tells a lost create of this run from an account that was already
/// there, by the account's `meta.created`.
/// What a row's accounts are judged with, beside them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Judging {
    /// When the run began (Unix ms): tells a lost create of this run from an older account.
    pub run_started: u64,
    /// Tries a row's write gets; once spent, a row whose last answers were lost ends with what
    /// is read, and nothing is sent again.
    pub max_attempts: u32,
    /// The server deletes accounts (else an account the ledger knows cannot be gone).
    pub can_delete: bool,
}

pub(super) fn resolve(e: &mut Entry, found: &[User], j: &Judging) {
    let mut distinct: Vec<User> = Vec::new();
    for u in found {
        if !distinct.iter().any(|d| d.id == u.id) {
            distinct.push(u.clone());
        }
    }
    let person = Lookup {
        user_name: Some(e.user_name.clone()),
        external_id: e.external_id.clone(),
        cxone_id: None,
    };
    let filter = filter::eq("userName", &e.user_name);
    let user = match judge(&person, distinct, filter) {
        Found::None => return not_found(e, j),
        Found::One(user) => user,
        Found::Conflict(c) => {
            let ids: Vec<&str> = c.accounts.iter().filter_map(|u| u.id.as_deref()).collect();
            if c.reason == ConflictReason::OtherExternalId {
                e.id = c.accounts.first().and_then(|u| u.id.clone());
            }
            e.finish(RowOutcome::Conflict, None);
            e.detail = Some(match (c.reason, c.accounts.first()) {
                (ConflictReason::OtherExternalId, Some(u)) => format!(
                    "CXone account {} has userName {:?} for another externalId; nothing written",
                    u.id.as_deref().unwrap_or("?"),
                    u.user_name
                ),
                _ => format!(
                    "several CXone accounts match this user ({}); nothing written",
                    ids.join(", ")
                ),
            });
            return;
        }
    };
    let user = user.as_ref();
    // A create whose answer was lost counts as ours only if the account carries our externalId.
    let created_before_run = user
        .meta
        .as_ref()
        .and_then(|m| m.created.as_deref())
        .and_then(|t| crate::time::parse_rfc3339(t).ok())
        .is_some_and(|t| t.saturating_add(CLOCK_SKEW_MS) < j.run_started);
    if e.maybe_created && (e.external_id.is_none() || user.external_id != e.external_id || created_before_run) {
        e.maybe_created = false;
    }
    if !e.conflicted && !e.maybe_created {
        e.existed_before = Some(true);
    }
    let (Some(id), Some(desired)) = (user.id.clone(), e.desired.as_ref()) else {
        e.fail(502, None, "CXone listed the user without an id");
        return;
    };
    if !crate::scim::is_usable_id(&id) {
        e.fail(502, None, FlowError::unusable_id(&id).to_string());
        return;
    }
    e.id = Some(id.clone());
    // What the account held when first found (a later read, after a write, shows the result).
    if e.roles_before.is_none() {
        e.roles_before = Some(desired.role_values_held_by(user));
    }
    match patch_to(user, desired) {
        // The tries are spent on answers that were lost: nothing more is sent.
        Some(_) if e.attempts >= j.max_attempts => e.fail(
            502,
            None,
            format!("gave up after {} attempts: CXone's answers were lost", e.attempts),
        ),
        Some(patch) => e.stage = Stage::Patch { id, patch },
        None => {
            let outcome = if e.ours() {
                RowOutcome::Created
            } else if e.maybe_updated {
                // A PATCH of ours whose answer was lost: the account is now as asked.
                RowOutcome::Updated
            } else {
                RowOutcome::Exists
            };
            e.finish(outcome, None);
        }
    }
}

fn not_found(e: &mut Entry, j: &Judging) {
    if e.conflicted {
        e.fail(
            409,
            Some("uniqueness".into()),
            "CXone reports a conflict but no user has this userName or externalId",
        );
        return;
    }
    // The account the ledger knows is not there and cannot have been deleted: a create could
    // make the person a second one.
    if e.known_gone && !j.can_delete {
        e.finish(RowOutcome::Conflict, None);
        e.detail = Some(
            "CXone answers 404 for the account this person's ledger knows and cannot delete accounts; \
             nothing written"
                .into(),
        );
        return;
    }
    if e.attempts >= j.max_attempts {
        e.fail(
            502,
            None,
            format!("gave up after {} attempts: CXone's answers were lost", e.attempts),
        );
        return;
    }
    if e.existed_before.is_none() && !e.maybe_created {
        e.existed_before = Some(false);
    }
    e.maybe_created = false;
    e.stage = Stage::Create;
}

//! Looking rows up in CXone (the pre-check, a 409, an answer that said nothing certain) and
//! deciding what the accounts found mean, by the same rules as the lifecycle path: the
//! externalId first; a userName match counts only for an account with no externalId or the
//! same one; anything else is a conflict and nothing is written.

use super::entry::{Entry, Stage};
use super::report::Outcome;
use crate::flows::FlowError;
use crate::http::{HttpRequest, Method};
use crate::scim::build::patch_to;
use crate::scim::{filter, User};

/// Users per lookup request (each contributes up to two clauses to the filter).
pub(super) const USERS_PER_LOOKUP: usize = 10;

/// `GET /Users?filter=externalId eq … or userName eq … …`, one page.
pub(super) fn request<'a>(base_url: &str, rows: impl Iterator<Item = &'a Entry>, start_index: u64) -> HttpRequest {
    let mut clauses = Vec::new();
    for e in rows {
        if let Some(ext) = &e.external_id {
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

/// Settles a looked-up row from the accounts that answer it (deduplicated by id).
/// `run_started` (Unix ms) tells a lost create of this run from an account that was already
/// there, by the account's `meta.created`.
pub(super) fn resolve(e: &mut Entry, found: &[User], run_started: u64) {
    let mut distinct: Vec<&User> = Vec::new();
    for u in found {
        if !distinct.iter().any(|d| d.id == u.id) {
            distinct.push(u);
        }
    }
    let user = match distinct.as_slice() {
        [] => return not_found(e),
        [one] => *one,
        several => {
            let ids: Vec<&str> = several.iter().filter_map(|u| u.id.as_deref()).collect();
            e.finish(Outcome::Conflict, None);
            e.detail = Some(format!(
                "several CXone accounts match this user ({}); nothing written",
                ids.join(", ")
            ));
            return;
        }
    };
    if user.external_id.is_some() && user.external_id != e.external_id {
        e.id = user.id.clone();
        e.finish(Outcome::Conflict, None);
        e.detail = Some(format!(
            "CXone account {} has userName {:?} for another externalId; nothing written",
            user.id.as_deref().unwrap_or("?"),
            user.user_name
        ));
        return;
    }
    // A create whose answer was lost counts as ours only if the account carries our externalId.
    let created_before_run = user
        .meta
        .as_ref()
        .and_then(|m| m.created.as_deref())
        .and_then(|t| crate::time::parse_rfc3339(t).ok())
        .is_some_and(|t| t.saturating_add(CLOCK_SKEW_MS) < run_started);
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
    e.roles_before = Some(desired.role_values_held_by(user));
    match patch_to(user, desired) {
        Some(patch) => e.stage = Stage::Patch { id, patch },
        None => {
            let outcome = if e.ours() {
                Outcome::Created
            } else if e.maybe_updated {
                // A PATCH of ours whose answer was lost: the account is now as asked.
                Outcome::Updated
            } else {
                Outcome::Exists
            };
            e.finish(outcome, None);
        }
    }
}

fn not_found(e: &mut Entry) {
    if e.conflicted {
        e.fail(
            409,
            Some("uniqueness".into()),
            "CXone reports a conflict but no user has this userName or externalId",
        );
        return;
    }
    if e.existed_before.is_none() && !e.maybe_created {
        e.existed_before = Some(false);
    }
    e.maybe_created = false;
    e.stage = Stage::Create;
}

//! Finding the one CXone account an event or a role sync may write.
//!
//! A person is looked up by `externalId eq`, then by `userName eq`. Every answer is checked
//! against the filter it answers (externalId exactly, userName in any case, as RFC 7643 makes
//! it case-insensitive); a `userName` match counts only when the account has no externalId or
//! the person's. Anything else (another externalId, several matches, an answer that ignores the
//! filter, an answer that counts more accounts than it lists) is a [`Conflict`]: the caller
//! writes nothing.

use super::FlowError;
use crate::event::Lookup;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::scim::{filter, ListResponse, User};
use serde::Serialize;

/// Why an account found in CXone was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReason {
    /// The account matched by userName belongs to another externalId (a recycled userName).
    OtherExternalId,
    /// More than one account answers the lookup.
    SeveralMatches,
    /// The lookup answer holds accounts its filter does not match.
    FilterIgnored,
    /// The answer counts a matching account (`totalResults`) it does not list.
    IncompleteAnswer,
}

/// A lookup CXone answered with an account this event may not write.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub reason: ConflictReason,
    /// The filter whose answer conflicted.
    pub filter: String,
    /// The CXone accounts involved, as CXone returned them.
    pub accounts: Vec<User>,
}

/// Accounts kept in a conflict report (a server that ignores the filter may list thousands).
const MAX_CONFLICT_ACCOUNTS: usize = 5;

/// The attribute a lookup filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    ExternalId,
    UserName,
}

/// What a lookup answer says, once checked against its filter and the userName rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    None,
    /// The account this person may write.
    One(Box<User>),
    Conflict(Conflict),
}

/// The lookup to start with: by externalId when the person has one, else by userName.
pub(crate) fn first_by(lookup: &Lookup) -> By {
    if lookup.external_id.is_some() {
        By::ExternalId
    } else {
        By::UserName
    }
}

/// The filter for a lookup `by`, `None` when the person does not carry that attribute.
pub(crate) fn filter_for(lookup: &Lookup, by: By) -> Option<String> {
    match by {
        By::ExternalId => lookup.external_id.as_deref().map(|ext| filter::eq("externalId", ext)),
        By::UserName => lookup.user_name.as_deref().map(|name| filter::eq("userName", name)),
    }
}

/// `GET {base}/Users?filter=…` for a lookup `by`, `None` when the person lacks the attribute.
pub(crate) fn request(base_url: &str, lookup: &Lookup, by: By) -> Option<HttpRequest> {
    filter_for(lookup, by).map(|f| HttpRequest::scim(Method::Get, filter::users_filter_url(base_url, &f)))
}

/// Reads a lookup answer (`request` describes the request it answers, for errors) and checks
/// every account in it against its filter, then a single userName match against the person's
/// externalId.
pub(crate) fn read_answer(lookup: &Lookup, by: By, resp: &HttpResponse, request: String) -> Result<Found, FlowError> {
    let list: ListResponse<User> =
        serde_json::from_str(&resp.body).map_err(|e| FlowError::unreadable(request, resp.status, e, &resp.body))?;
    let matches = |u: &User| match by {
        By::ExternalId => u.external_id.is_some() && u.external_id == lookup.external_id,
        By::UserName => lookup
            .user_name
            .as_deref()
            .is_some_and(|n| crate::scim::same_user_name(&u.user_name, n)),
    };
    let filter = filter_for(lookup, by).unwrap_or_default();
    let mut users = list.resources;
    // What the server counts and does not list could be another match, or this person's account.
    let unlisted = list.total_results > users.len() as u64;
    let reason = if users.iter().any(|u| !matches(u)) {
        ConflictReason::FilterIgnored
    } else if users.len() > 1 || (unlisted && list.total_results > 1) {
        ConflictReason::SeveralMatches
    } else if unlisted {
        ConflictReason::IncompleteAnswer
    } else {
        return Ok(match users.pop() {
            None => Found::None,
            Some(user)
                if by == By::UserName && user.external_id.is_some() && user.external_id != lookup.external_id =>
            {
                Found::Conflict(Conflict {
                    reason: ConflictReason::OtherExternalId,
                    filter,
                    accounts: vec![user],
                })
            }
            Some(user) => Found::One(Box::new(user)),
        });
    };
    users.truncate(MAX_CONFLICT_ACCOUNTS);
    Ok(Found::Conflict(Conflict {
        reason,
        filter,
        accounts: users,
    }))
}

/// The id of an account a lookup found, for the URL of the request that reads or writes it:
/// an account listed without an id, or with one that cannot address it, ends the flow.
pub(crate) fn id_of(user: &User) -> Result<String, FlowError> {
    match user.id.as_deref() {
        None => Err(FlowError::Ambiguous(format!(
            "CXone listed user {:?} without an id",
            user.user_name
        ))),
        Some(id) if !crate::scim::is_usable_id(id) => Err(FlowError::unusable_id(id)),
        Some(id) => Ok(id.to_string()),
    }
}

/// Whether `user`, read again by its id after a lookup found it, is still the person's: the same
/// id, and an externalId that is the person's, or none and the person's userName. `None` when it
/// is; otherwise why it no longer is (it changed hands between the lookup and the read).
pub(crate) fn still_theirs(lookup: &Lookup, id: &str, user: &User) -> Option<ConflictReason> {
    if user.id.as_deref() != Some(id) {
        return Some(ConflictReason::FilterIgnored);
    }
    match &user.external_id {
        Some(ext) if lookup.external_id.as_ref() == Some(ext) => None,
        Some(_) => Some(ConflictReason::OtherExternalId),
        None => {
            let named = lookup
                .user_name
                .as_deref()
                .is_some_and(|n| crate::scim::same_user_name(&user.user_name, n));
            (!named).then_some(ConflictReason::OtherExternalId)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn person(user_name: Option<&str>, external_id: Option<&str>) -> Lookup {
        Lookup {
            user_name: user_name.map(str::to_string),
            external_id: external_id.map(str::to_string),
        }
    }

    fn answer(users: serde_json::Value) -> HttpResponse {
        let total = users.as_array().map_or(0, Vec::len);
        HttpResponse::new(200, json!({"totalResults": total, "Resources": users}).to_string())
    }

    fn read_counted(lookup: &Lookup, by: By, total: u64, users: serde_json::Value) -> Found {
        let resp = HttpResponse::new(200, json!({"totalResults": total, "Resources": users}).to_string());
        read_answer(lookup, by, &resp, "GET /scim/v2/Users".into()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_user_name_answered_in_another_case_beyond_ascii_is_the_account() {
        let p = person(Some("ünal.öz@x.io"), None);
        let found = read(&p, By::UserName, json!([{"id": "u1", "userName": "Ünal.Öz@x.io"}]));
        assert!(matches!(found, Found::One(_)), "{found:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_answer_that_counts_accounts_it_does_not_list_is_a_conflict() {
        let p = person(Some("jdoe@x.io"), Some("e-1"));
        let a = json!([{"id": "u1", "userName": "jdoe@x.io", "externalId": "e-1"}]);
        // One listed of two counted: the other could be the person's too.
        match read_counted(&p, By::ExternalId, 2, a.clone()) {
            Found::Conflict(c) => assert_eq!((c.reason, c.accounts.len()), (ConflictReason::SeveralMatches, 1)),
            other => panic!("{other:?}"),
        }
        // One counted, none listed: not "absent" (that would create a second account).
        for by in [By::ExternalId, By::UserName] {
            match read_counted(&p, by, 1, json!([])) {
                Found::Conflict(c) => assert_eq!((c.reason, c.accounts.len()), (ConflictReason::IncompleteAnswer, 0)),
                other => panic!("{other:?}"),
            }
        }
        // Counted and listed agree: as before.
        assert!(matches!(read_counted(&p, By::ExternalId, 1, a), Found::One(_)));
        assert_eq!(read_counted(&p, By::UserName, 0, json!([])), Found::None);
    }

    fn read(lookup: &Lookup, by: By, users: serde_json::Value) -> Found {
        read_answer(lookup, by, &answer(users), "GET /scim/v2/Users".into()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn external_id_first_and_filters_escaped() {
        let p = person(Some("a\"b@x.io"), Some("e-1"));
        assert_eq!(first_by(&p), By::ExternalId);
        assert_eq!(first_by(&person(Some("a@x.io"), None)), By::UserName);
        assert_eq!(
            filter_for(&p, By::UserName).as_deref(),
            Some(r#"userName eq "a\"b@x.io""#)
        );
        assert_eq!(filter_for(&person(None, Some("e-1")), By::UserName), None);
        let req = request("http://h/scim/v2", &p, By::ExternalId).unwrap();
        assert_eq!(req.url, "http://h/scim/v2/Users?filter=externalId%20eq%20%22e-1%22");
        assert!(request("http://h/scim/v2", &person(Some("a@x.io"), None), By::ExternalId).is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_user_name_match_counts_only_without_another_external_id() {
        let p = person(Some("jdoe@x.io"), Some("e-1"));
        let mine = read(&p, By::UserName, json!([{"id":"u1","userName":"JDoe@x.io"}]));
        assert!(matches!(mine, Found::One(u) if u.id.as_deref() == Some("u1")));
        let same = read(
            &p,
            By::UserName,
            json!([{"id":"u1","userName":"jdoe@x.io","externalId":"e-1"}]),
        );
        assert!(matches!(same, Found::One(_)));
        let Found::Conflict(c) = read(
            &p,
            By::UserName,
            json!([{"id":"u1","userName":"jdoe@x.io","externalId":"e-9"}]),
        ) else {
            panic!("another externalId is a conflict")
        };
        assert_eq!(
            (c.reason, c.filter.as_str()),
            (ConflictReason::OtherExternalId, "userName eq \"jdoe@x.io\"")
        );
        // By externalId, the externalId is the match itself.
        let by_ext = read(
            &p,
            By::ExternalId,
            json!([{"id":"u1","userName":"other@x.io","externalId":"e-1"}]),
        );
        assert!(matches!(by_ext, Found::One(_)));
        assert_eq!(read(&p, By::ExternalId, json!([])), Found::None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn several_or_unfiltered_answers_are_conflicts_kept_short() {
        let p = person(Some("jdoe@x.io"), Some("e-1"));
        let Found::Conflict(c) = read(
            &p,
            By::ExternalId,
            json!([{"userName":"a@x.io","externalId":"e-1"},{"userName":"b@x.io","externalId":"e-1"}]),
        ) else {
            panic!("two matches")
        };
        assert_eq!((c.reason, c.accounts.len()), (ConflictReason::SeveralMatches, 2));
        let many: Vec<_> = (0..9).map(|i| json!({"userName": format!("u{i}@x.io")})).collect();
        let Found::Conflict(c) = read(&p, By::UserName, json!(many)) else {
            panic!("an ignored filter")
        };
        assert_eq!(
            (c.reason, c.accounts.len()),
            (ConflictReason::FilterIgnored, MAX_CONFLICT_ACCOUNTS)
        );
        let err = read_answer(&p, By::UserName, &HttpResponse::new(200, "<html>"), "GET /x".into()).unwrap_err();
        assert!(matches!(err, FlowError::Unreadable { status: 200, .. }), "{err:?}");
    }
}

//! Finding the one CXone account an event or a role sync may write.
//!
//! A person is looked up by the CXone id their ledger knows (`GET /Users/{id}`), then by
//! `externalId eq` where the server can filter by it, then by `userName eq`
//! ([`next_by`] gives the order for a server's [`Capabilities`]). Every answer is checked
//! against the lookup it answers (externalId exactly, userName in any case, as RFC 7643 makes
//! it case-insensitive); a `userName` match counts only when the account has no externalId or
//! the person's; an account read by its known id counts unless it holds another externalId.
//! Anything else (another externalId, several matches, an answer that ignores the filter, an
//! answer that counts more accounts than it lists) is a [`Conflict`]: the caller writes
//! nothing.

use super::FlowError;
use crate::event::Lookup;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::profile::Capabilities;
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
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub reason: ConflictReason,
    /// The filter whose answer conflicted (`id eq "…"` for a read by the known id).
    pub filter: String,
    /// The CXone accounts involved, as CXone returned them.
    pub accounts: Vec<User>,
}

/// Accounts kept in a conflict report (a server that ignores the filter may list thousands).
const MAX_CONFLICT_ACCOUNTS: usize = 5;

/// What a lookup goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    /// The CXone id the person's ledger knows: `GET /Users/{id}`.
    Id,
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

/// The lookup after `after` (the first one for `None`) for a person on a server with `caps`,
/// `None` when there is no other way to find them.
pub(crate) fn next_by(lookup: &Lookup, caps: &Capabilities, after: Option<By>) -> Option<By> {
    let order = [
        (By::Id, lookup.cxone_id.is_some()),
        (
            By::ExternalId,
            lookup.external_id.is_some() && caps.filters_by_external_id(),
        ),
        (By::UserName, lookup.user_name.is_some()),
    ];
    let skip = after.map_or(0, |a| {
        order.iter().position(|(b, _)| *b == a).map_or(order.len(), |p| p + 1)
    });
    order
        .into_iter()
        .skip(skip)
        .find(|(_, possible)| *possible)
        .map(|(by, _)| by)
}

/// Whether the person can be looked up at all on a server with `caps`.
pub(crate) fn findable(lookup: &Lookup, caps: &Capabilities) -> bool {
    next_by(lookup, caps, None).is_some()
}

/// Why a person cannot be looked up on a server with `caps` (see [`findable`]).
pub(crate) fn unfindable(lookup: &Lookup) -> FlowError {
    FlowError::Ambiguous(format!(
        "CXone can only search by userName and this event has none{}; nothing written",
        lookup
            .external_id
            .as_deref()
            .map(|e| format!(" (externalId {e:?} and no CXone id known for it)"))
            .unwrap_or_default()
    ))
}

/// The filter for a lookup `by`, `None` when the person does not carry that attribute.
pub(crate) fn filter_for(lookup: &Lookup, by: By) -> Option<String> {
    match by {
        By::Id => lookup.cxone_id.as_deref().map(|id| filter::eq("id", id)),
        By::ExternalId => lookup.external_id.as_deref().map(|ext| filter::eq("externalId", ext)),
        By::UserName => lookup.user_name.as_deref().map(|name| filter::eq("userName", name)),
    }
}

/// The request of a lookup `by`: `GET {base}/Users/{id}` or `GET {base}/Users?filter=…`;
/// `None` when the person lacks the attribute. A known id that cannot address an account
/// ends the flow.
pub(crate) fn request(base_url: &str, lookup: &Lookup, by: By) -> Result<Option<HttpRequest>, FlowError> {
    if by == By::Id {
        return match lookup.cxone_id.as_deref() {
            None => Ok(None),
            Some(id) if !crate::scim::is_usable_id(id) => Err(FlowError::unusable_id(id)),
            Some(id) => Ok(Some(HttpRequest::scim(Method::Get, filter::user_url(base_url, id)))),
        };
    }
    Ok(filter_for(lookup, by).map(|f| HttpRequest::scim(Method::Get, filter::users_filter_url(base_url, &f))))
}

/// Reads the answer to a read by the known id: 404 is no account; an account counts unless it
/// has another id or holds another externalId (the ledger wrote this account for this person,
/// so a renamed userName or an externalId CXone does not keep is still theirs).
pub(crate) fn read_by_id(lookup: &Lookup, resp: &HttpResponse, request: String) -> Result<Found, FlowError> {
    if resp.status == 404 {
        return Ok(Found::None);
    }
    let user: User =
        serde_json::from_str(&resp.body).map_err(|e| FlowError::unreadable(request, resp.status, e, &resp.body))?;
    let reason = if user.id != lookup.cxone_id {
        Some(ConflictReason::FilterIgnored)
    } else if user.external_id.is_some() && user.external_id != lookup.external_id {
        Some(ConflictReason::OtherExternalId)
    } else {
        None
    };
    Ok(match reason {
        None => Found::One(Box::new(user)),
        Some(reason) => Found::Conflict(Conflict {
            reason,
            filter: filter_for(lookup, By::Id).unwrap_or_default(),
            accounts: vec![user],
        }),
    })
}

/// Reads a lookup answer (`request` describes the request it answers, for errors) and checks
/// every account in it against its filter, then a single userName match against the person's
/// externalId.
pub(crate) fn read_answer(lookup: &Lookup, by: By, resp: &HttpResponse, request: String) -> Result<Found, FlowError> {
    if by == By::Id {
        return read_by_id(lookup, resp, request);
    }
    let list: ListResponse<User> =
        serde_json::from_str(&resp.body).map_err(|e| FlowError::unreadable(request, resp.status, e, &resp.body))?;
    let matches = |u: &User| match by {
        By::Id => u.id.is_some() && u.id == lookup.cxone_id,
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
    } else if unlisted && list.total_results > 1 {
        ConflictReason::SeveralMatches
    } else if unlisted {
        ConflictReason::IncompleteAnswer
    } else {
        return Ok(judge(lookup, users, filter));
    };
    users.truncate(MAX_CONFLICT_ACCOUNTS);
    Ok(Found::Conflict(Conflict {
        reason,
        filter,
        accounts: users,
    }))
}

/// The one matching rule, for every path that looks people up (events, role sync, bulk runs,
/// Graph): given the accounts that answer a person's lookup `filter` (each already checked
/// against it, none twice), none; the one account, when it has no externalId or theirs; else
/// a conflict (several accounts, or one holding another externalId: a recycled userName).
pub(crate) fn judge(lookup: &Lookup, mut accounts: Vec<User>, filter: String) -> Found {
    let reason = match accounts.as_slice() {
        [] => return Found::None,
        [one] if one.external_id.is_some() && one.external_id != lookup.external_id => ConflictReason::OtherExternalId,
        [_] => return accounts.pop().map_or(Found::None, |one| Found::One(Box::new(one))),
        _ => ConflictReason::SeveralMatches,
    };
    accounts.truncate(MAX_CONFLICT_ACCOUNTS);
    Found::Conflict(Conflict {
        reason,
        filter,
        accounts,
    })
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
            cxone_id: None,
        }
    }

    const RFC: Capabilities = crate::profile::Profile::Rfc7644.capabilities();

    fn order(lookup: &Lookup, caps: &Capabilities) -> Vec<By> {
        std::iter::successors(next_by(lookup, caps, None), |b| next_by(lookup, caps, Some(*b))).collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_known_id_first_then_external_id_where_the_server_filters_by_it_then_user_name() {
        let cxone = Capabilities::default();
        let mut p = person(Some("jdoe@x.io"), Some("e-1"));
        assert_eq!(order(&p, &RFC), [By::ExternalId, By::UserName]);
        assert_eq!(order(&p, &cxone), [By::UserName]);
        p.cxone_id = Some("u1".into());
        assert_eq!(order(&p, &RFC), [By::Id, By::ExternalId, By::UserName]);
        assert_eq!(order(&p, &cxone), [By::Id, By::UserName]);
        let ext_only = person(None, Some("e-1"));
        assert!(findable(&ext_only, &RFC) && !findable(&ext_only, &cxone));
        assert!(unfindable(&ext_only).to_string().contains("only search by userName"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_account_read_by_its_known_id_is_theirs_unless_it_holds_another_external_id() {
        let mut p = person(Some("new.name@x.io"), Some("e-1"));
        p.cxone_id = Some("u1".into());
        let req = request("http://h/scim/v2", &p, By::Id).unwrap().unwrap();
        assert_eq!(req.url, "http://h/scim/v2/Users/u1");
        let read = |body: serde_json::Value, status| {
            read_answer(
                &p,
                By::Id,
                &HttpResponse::new(status, body.to_string()),
                "GET /Users/u1".into(),
            )
            .unwrap()
        };
        // Renamed (a UPN change) and CXone keeping no externalId: still theirs.
        assert!(matches!(
            read(json!({"id":"u1","userName":"old@x.io"}), 200),
            Found::One(_)
        ));
        assert!(matches!(
            read(json!({"id":"u1","userName":"old@x.io","externalId":"e-1"}), 200),
            Found::One(_)
        ));
        match read(json!({"id":"u1","userName":"old@x.io","externalId":"e-9"}), 200) {
            Found::Conflict(c) => assert_eq!(
                (c.reason, c.filter.as_str()),
                (ConflictReason::OtherExternalId, "id eq \"u1\"")
            ),
            other => panic!("{other:?}"),
        }
        match read(json!({"id":"u2","userName":"new.name@x.io"}), 200) {
            Found::Conflict(c) => assert_eq!(c.reason, ConflictReason::FilterIgnored),
            other => panic!("{other:?}"),
        }
        assert_eq!(read(json!({"detail":"no such user"}), 404), Found::None);
        p.cxone_id = Some("../x".into());
        assert!(matches!(
            request("http://h/scim/v2", &p, By::Id),
            Err(FlowError::UnusableId(_))
        ));
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
        assert_eq!(next_by(&p, &RFC, None), Some(By::ExternalId));
        assert_eq!(next_by(&person(Some("a@x.io"), None), &RFC, None), Some(By::UserName));
        assert_eq!(
            filter_for(&p, By::UserName).as_deref(),
            Some(r#"userName eq "a\"b@x.io""#)
        );
        assert_eq!(filter_for(&person(None, Some("e-1")), By::UserName), None);
        let req = request("http://h/scim/v2", &p, By::ExternalId).unwrap().unwrap();
        assert_eq!(req.url, "http://h/scim/v2/Users?filter=externalId%20eq%20%22e-1%22");
        assert!(
            request("http://h/scim/v2", &person(Some("a@x.io"), None), By::ExternalId)
                .unwrap()
                .is_none()
        );
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

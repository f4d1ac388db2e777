//! What the SCIM server on the other side offers (`CXONE_PROFILE`), as one typed set of
//! capabilities every flow reads: flows ask "can I filter by externalId?", never "is this
//! CXone?".
//!
//! - `cxone` (the default): CXone as NICE publishes it. `GET /Users` only with a
//!   `userName eq` filter; one user per `POST`/`PUT`/`PATCH`; no `/Bulk`, no
//!   `/ServiceProviderConfig`, no `DELETE` (accounts are deactivated, never deleted); a create
//!   needs userName, given name, family name and an email; the RFC 7643 enterprise extension
//!   (department, employeeNumber) is not part of what NICE publishes and is not written.
//! - `rfc7644`: a server with all of RFC 7644 that matters here: Bulk, DELETE, any filter.

use crate::scim::build::DesiredUser;
use crate::scim::User;
use serde::{Deserialize, Serialize};

/// `CXONE_PROFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Cxone,
    Rfc7644,
}

impl Profile {
    /// `cxone` or `rfc7644` (any case, trimmed); anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cxone" => Some(Self::Cxone),
            "rfc7644" => Some(Self::Rfc7644),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cxone => "cxone",
            Self::Rfc7644 => "rfc7644",
        }
    }

    pub const fn capabilities(self) -> Capabilities {
        match self {
            Self::Cxone => Capabilities {
                bulk: false,
                delete: false,
                filters: Filters::UserNameOnly,
                create_requires_names_and_email: true,
                enterprise_extension: false,
            },
            Self::Rfc7644 => Capabilities {
                bulk: true,
                delete: true,
                filters: Filters::Any,
                create_requires_names_and_email: false,
                enterprise_extension: true,
            },
        }
    }
}

/// Which `GET /Users` filters the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filters {
    /// `userName eq "…"` and nothing else (one user per request).
    UserNameOnly,
    /// Any RFC 7644 filter, `externalId eq` and `or` included.
    Any,
}

/// What the server offers, read by every flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// `POST /Bulk` (and `/ServiceProviderConfig` to read its limits).
    pub bulk: bool,
    /// `DELETE /Users/{id}` removes an account; without it a leaver is deactivated.
    pub delete: bool,
    pub filters: Filters,
    /// A create is refused without a given name, a family name and an email.
    pub create_requires_names_and_email: bool,
    /// The RFC 7643 enterprise extension (department, employeeNumber) is kept.
    pub enterprise_extension: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Profile::default().capabilities()
    }
}

/// The attributes a create needs that a joiner lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CXone needs {} to create a user; nothing was sent", .0.join(", "))]
pub struct MissingForCreate(pub Vec<&'static str>);

impl Capabilities {
    /// Whether lookups may filter by externalId (else: the known id, then `userName eq`).
    pub fn filters_by_external_id(&self) -> bool {
        self.filters == Filters::Any
    }

    /// `desired` without what this server does not keep (the enterprise attributes where it has
    /// no enterprise extension), so that nothing is sent that it would refuse.
    pub fn fit(&self, desired: &mut DesiredUser) {
        if !self.enterprise_extension {
            desired.department = None;
            desired.employee_number = None;
            if let Some(initial) = desired.initial.as_deref_mut() {
                initial.department = None;
                initial.employee_number = None;
            }
        }
    }

    /// What a create `payload` (as [`crate::scim::build::create_payload`] makes it) lacks on
    /// this server; blank counts as missing.
    pub fn check_create(&self, payload: &User) -> Result<(), MissingForCreate> {
        if !self.create_requires_names_and_email {
            return Ok(());
        }
        let given = |v: Option<&String>| v.is_some_and(|t| !t.trim().is_empty());
        let name = payload.name.as_ref();
        let missing: Vec<&'static str> = [
            ("givenName", given(name.and_then(|n| n.given_name.as_ref()))),
            ("familyName", given(name.and_then(|n| n.family_name.as_ref()))),
            ("email", payload.emails.iter().any(|e| given(Some(&e.value)))),
        ]
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(attribute, _)| attribute)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(MissingForCreate(missing))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn cxone_is_the_default_and_offers_what_nice_publishes() {
        assert_eq!(Profile::default(), Profile::Cxone);
        let c = Capabilities::default();
        assert!(!c.bulk && !c.delete && !c.filters_by_external_id() && c.create_requires_names_and_email);
        assert!(!c.enterprise_extension && Profile::Rfc7644.capabilities().enterprise_extension);
        let r = Profile::Rfc7644.capabilities();
        assert!(r.bulk && r.delete && r.filters_by_external_id() && !r.create_requires_names_and_email);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn profiles_parse_by_name_only() {
        assert_eq!(Profile::parse(" CXone "), Some(Profile::Cxone));
        assert_eq!(Profile::parse("rfc7644"), Some(Profile::Rfc7644));
        assert_eq!(Profile::parse("rfc"), None);
        assert_eq!(Profile::parse(""), None);
        for p in [Profile::Cxone, Profile::Rfc7644] {
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn enterprise_attributes_are_left_out_where_the_server_has_no_enterprise_extension() {
        let desired = DesiredUser {
            user_name: "jdoe@x.io".into(),
            title: Some("Agent".into()),
            department: Some("Support".into()),
            employee_number: Some("E-1".into()),
            initial: Some(Box::new(crate::person::Attributes {
                department: Some("Sales".into()),
                ..Default::default()
            })),
            ..DesiredUser::default()
        };
        let mut on_cxone = desired.clone();
        Capabilities::default().fit(&mut on_cxone);
        assert_eq!((on_cxone.department, on_cxone.employee_number), (None, None));
        assert_eq!(on_cxone.initial.and_then(|i| i.department), None);
        assert_eq!(on_cxone.title.as_deref(), Some("Agent"), "core attributes stay");
        let mut on_rfc = desired.clone();
        Profile::Rfc7644.capabilities().fit(&mut on_rfc);
        assert_eq!(on_rfc, desired);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_create_on_cxone_needs_names_and_an_email() {
        use crate::scim::build::{create_payload, DesiredUser};
        let mut d = DesiredUser {
            given_name: Some("Jane".into()),
            family_name: Some(" ".into()),
            user_name: "jdoe".into(),
            ..DesiredUser::default()
        };
        let cxone = Capabilities::default();
        assert_eq!(
            cxone.check_create(&create_payload(&d)).unwrap_err().to_string(),
            "CXone needs familyName, email to create a user; nothing was sent"
        );
        assert_eq!(
            Profile::Rfc7644.capabilities().check_create(&create_payload(&d)),
            Ok(())
        );
        d.family_name = Some("Doe".into());
        d.user_name = "jdoe@x.io".into();
        assert_eq!(
            cxone.check_create(&create_payload(&d)),
            Ok(()),
            "the userName is the email"
        );
    }
}

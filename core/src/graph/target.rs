//! The SCIM attributes a Graph property can be mapped onto, and who owns each one.

use serde::{Deserialize, Serialize};

/// A SCIM attribute of a CXone user that the attribute map can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    UserName,
    ExternalId,
    GivenName,
    FamilyName,
    /// `emails[type eq "work"].value`.
    WorkEmail,
    Active,
    DisplayName,
    Title,
    /// Enterprise extension `department`.
    Department,
    /// Enterprise extension `employeeNumber`.
    EmployeeNumber,
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:";

impl Target {
    pub const ALL: [Target; 10] = [
        Target::UserName,
        Target::ExternalId,
        Target::GivenName,
        Target::FamilyName,
        Target::WorkEmail,
        Target::Active,
        Target::DisplayName,
        Target::Title,
        Target::Department,
        Target::EmployeeNumber,
    ];

    /// The attribute's full SCIM name.
    pub fn name(self) -> &'static str {
        match self {
            Target::UserName => "userName",
            Target::ExternalId => "externalId",
            Target::GivenName => "name.givenName",
            Target::FamilyName => "name.familyName",
            Target::WorkEmail => "emails[type eq \"work\"].value",
            Target::Active => "active",
            Target::DisplayName => "displayName",
            Target::Title => "title",
            Target::Department => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            Target::EmployeeNumber => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        }
    }

    /// The target a name denotes: the full name, `emails`/`email` for the work email, and
    /// `department`/`employeeNumber` without the extension URN; in any case, as SCIM
    /// attribute names are.
    pub fn parse(text: &str) -> Option<Target> {
        let text = text.trim();
        let (in_extension, short) = match text.get(..ENTERPRISE.len()) {
            Some(urn) if urn.eq_ignore_ascii_case(ENTERPRISE) => (true, &text[ENTERPRISE.len()..]),
            _ => (false, text),
        };
        match (in_extension, short.to_ascii_lowercase().as_str()) {
            (_, "department") => Some(Target::Department),
            (_, "employeenumber") => Some(Target::EmployeeNumber),
            (true, _) => None,
            (false, "emails" | "email") => Some(Target::WorkEmail),
            (false, _) => Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(text)),
        }
    }

    /// `userName`, `externalId` and `active` follow Entra only: they find the person and
    /// decide whether they may sign in.
    pub fn entra_only(self) -> bool {
        matches!(self, Target::UserName | Target::ExternalId | Target::Active)
    }
}

/// Which side's value counts for a mapped attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Entra's value is written on every change.
    #[default]
    Entra,
    /// Entra's value is written only when the account is created; CXone keeps it after.
    Cxone,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn every_target_reads_back_from_its_name_and_the_aliases() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name()), Some(t), "{}", t.name());
        }
        assert_eq!(Target::parse("emails"), Some(Target::WorkEmail));
        assert_eq!(Target::parse("Email"), Some(Target::WorkEmail));
        assert_eq!(Target::parse("department"), Some(Target::Department));
        assert_eq!(Target::parse(" EMPLOYEENUMBER "), Some(Target::EmployeeNumber));
        assert_eq!(Target::parse("name.GIVENNAME"), Some(Target::GivenName));
        assert_eq!(
            Target::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"),
            None
        );
        assert_eq!(
            Target::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:emails"),
            None
        );
        assert_eq!(Target::parse("nickName"), None);
        assert_eq!(Target::parse("emails[type eq \"home\"].value"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn owners_are_written_lowercase() {
        assert_eq!(serde_json::to_string(&Owner::Cxone).unwrap(), r#""cxone""#);
        assert_eq!(serde_json::from_str::<Owner>(r#""entra""#).unwrap(), Owner::Entra);
        assert_eq!(Owner::default(), Owner::Entra);
    }
}

//! SCIM 2.0 resources and messages (RFC 7643 / RFC 7644), serde-ready.
//!
//! Open resources (User, Group) keep attributes they do not model in a flattened map, so a
//! read-modify-write never drops what the server holds. Closed sub-objects (name, patch
//! operations) are strict. Input adapters in [`lenient`] absorb common IdP quirks.

pub mod attr_path;
pub mod build;
pub mod bulk;
pub mod error;
pub mod filter;
pub mod group;
pub mod id;
pub mod initial;
pub mod lenient;
pub mod list;
pub mod patch;
pub mod provider_config;
pub mod user;

pub use error::ScimError;
pub use group::Group;
pub use id::is_usable_id;
pub use list::ListResponse;
pub use patch::{PatchOp, PatchOpKind, PatchOperation};
pub use provider_config::{BulkFeature, BulkLimits, Feature, FilterFeature, ServiceProviderConfig};
pub use user::{same_user_name, Email, EnterpriseUser, Meta, Name, Role, User};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

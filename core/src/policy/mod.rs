//! The group→role (and group→team) policy: one versioned JSON document (`ROLE_POLICY`).
//!
//! ```json
//! {"version":1,"mode":"strict","ignoreGroups":["All Staff"],
//!  "mappings":[{"group":"cxone-agent","role":"Agent"},{"groupId":"<object id>","role":"Supervisor"},
//!              {"group":"support-emea","team":"<team id>","teamName":"Support EMEA"}],
//!  "roles":[{"roleId":"Agent","displayName":"Agent","inheritsFrom":[]},
//!           {"roleId":"Supervisor","inheritsFrom":["Agent"],"priority":10}],
//!  "maxRolesPerUser":5,"maxInheritanceDepth":3,"expandInherited":false}
//! ```
//!
//! [`RolePolicy::resolve`] maps groups to granted roles; [`RolePolicy::verdict`] adds what
//! inheritance means (a granted role covers its closure, a request beyond that is an
//! escalation); [`RoleTarget`] says where the roles are written.
//!
//! A mapping names a `role` or a `team`, never both. [`RolePolicy::team_for`] gives a person's
//! one team: the first team mapping, in document order, that their groups match. A group mapped
//! only to a team grants no role and is not an unmapped group.

mod document;
mod resolve;
mod target;
mod verdict;

pub use document::{Mapping, Mode, PolicyError, RoleDef, RolePolicy};
pub use resolve::{GroupInput, RbacViolation, Resolution};
pub use target::{RoleTarget, RoleTargetError, TargetWrite};
pub use verdict::{Verdict, Via};

pub use crate::scim::user::TeamRef;

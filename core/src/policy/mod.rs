//! The group→role policy: one versioned JSON document (`ROLE_POLICY`).
//!
//! ```json
//! {"version":1,"mode":"strict","ignoreGroups":["All Staff"],
//!  "mappings":[{"group":"cxone-agent","role":"Agent"},{"groupId":"<object id>","role":"Supervisor"}],
//!  "roles":[{"roleId":"Agent","displayName":"Agent","inheritsFrom":[]}],
//!  "maxRolesPerUser":5,"maxInheritanceDepth":3}
//! ```

mod document;
mod resolve;

pub use document::{Mapping, Mode, PolicyError, RoleDef, RolePolicy};
pub use resolve::{GroupInput, RbacViolation, Resolution};

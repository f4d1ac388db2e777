//! Microsoft Graph: `/users/delta` pages read one flow per page, group memberships, scope, the
//! sync pass and its deletion guard, change notifications and their subscriptions.

mod delta;
mod guard;
mod members;
mod notify;
mod pass;
mod reader;
mod scope;
mod subscribe;
mod wire;

pub use delta::{DeltaPage, DeltaUser, Removed};
pub use guard::{DeletionThreshold, ThresholdError};
pub use members::{MemberOfFlow, Membership};
pub use notify::{
    read_notifications, validation_token, Lifecycle, LifecycleEvent, Notifications, NotifyError, ResourceChange,
    MAX_VALIDATION_TOKEN,
};
pub use pass::{Leaver, Outcome, Plan, Skip, Slot, Summary, SyncPass, Work};
pub use reader::{Change, DeltaReader, PageRead, Position, Removal};
pub use scope::{Scope, ScopeError, UserScope};
pub use subscribe::{
    Subscription, SubscriptionFlow, Watched, CHANGE_TYPE, LIFETIME_MS, MAX_LIFETIME_MINUTES, RENEW_WITHIN_MS,
};

//! Microsoft Graph: `/users/delta` pages read one flow per page, the attribute map that turns an
//! entry into a lifecycle event, group memberships and scope, the sync pass and its deletion
//! guard, change notifications and their subscriptions.

mod delta;
mod guard;
mod map;
mod members;
mod notify;
mod pass;
mod plan;
mod reader;
mod schedule;
mod scope;
mod subscribe;
mod target;
mod to_event;
mod user_read;
mod wire;

pub use delta::{DeltaPage, DeltaUser, Removed};
pub use guard::{DeletionThreshold, ThresholdError};
pub use map::{AttributeMap, MapError, Mapping};
pub use members::{MemberOfFlow, Membership};
pub use notify::{
    notification_post, read_notifications, sync_off, validation_token, Lifecycle, NotificationPost, Notifications,
    NotifyError, ResourceChange, SubscriptionEvent, MAX_VALIDATION_TOKEN, VALIDATION_HEADERS,
};
pub use pass::{delivery_id, Apply, ChangeOutcome, Leaver, Plan, Skip, Slot, Summary, SyncPass, Work, APPLY_LANES};
pub use plan::{DeleteMode, KnownPerson, PlanError, Planner};
pub use reader::{Change, DeltaReader, PageRead, Position, Removal};
pub use schedule::{
    group_round_due, hold_superseded, next_round, record_of, retry_plan, unseen_leaver, PlanRetry, Record, Round,
    RoundFacts, PLAN_RETRIES,
};
pub use scope::{Scope, ScopeError, UserScope};
pub use subscribe::{
    Subscription, SubscriptionFlow, Watched, CHANGE_TYPE, LIFETIME_MS, MAX_LIFETIME_MINUTES, RENEW_WITHIN_MS,
};
pub use target::{Owner, Target};
pub use user_read::UserReadFlow;

//! Microsoft Graph: reading `/users/delta` pages, one flow per page, the attribute map that
//! turns an entry into a lifecycle event, and the deletion guard.

mod delta;
mod guard;
mod map;
mod reader;
mod target;
mod to_event;

pub use delta::{DeltaPage, DeltaUser, Removed};
pub use guard::{DeletionThreshold, ThresholdError};
pub use map::{AttributeMap, MapError, Mapping};
pub use reader::{Change, DeltaReader, PageRead, Position, Removal};
pub use target::{Owner, Target};

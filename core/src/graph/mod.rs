//! Microsoft Graph: reading `/users/delta` pages, one flow per page, and the deletion guard.

mod delta;
mod guard;
mod reader;

pub use delta::{DeltaPage, DeltaUser, Removed};
pub use guard::{DeletionThreshold, ThresholdError};
pub use reader::{Change, DeltaReader, PageRead, Position, Removal};

//! Microsoft Graph: reading `/users/delta` pages.

mod delta;

pub use delta::{DeltaPage, DeltaUser, Removed};

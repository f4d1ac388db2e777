//! What the hostile-input targets share: documents to mutate, strategies, and a reader for
//! the filters the builders write.

pub mod doc;
pub mod filter_syntax;
pub mod values;

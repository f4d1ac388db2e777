//! Turning input users into rows, one at a time: validation, the role policy, repeats folded.
//! Memory grows only with the set of userNames seen, never with the rows (the host stores
//! those as they come).

use super::entry::{Entry, Stage};
use super::input::BulkUser;
use super::report::{Counts, Outcome};
use crate::event::Command;
use crate::policy::{RolePolicy, RoleTarget};
use std::collections::HashMap;

pub struct Intake<'a> {
    policy: &'a RolePolicy,
    target: &'a RoleTarget,
    precheck: bool,
    first_by_name: HashMap<String, usize>,
    first_by_external_id: HashMap<String, usize>,
    counts: Counts,
    next_index: usize,
}

impl<'a> Intake<'a> {
    /// Rows for a run under `policy`, writing roles to `target`.
    pub fn new(policy: &'a RolePolicy, target: &'a RoleTarget, precheck: bool) -> Self {
        Self {
            policy,
            target,
            precheck,
            first_by_name: HashMap::new(),
            first_by_external_id: HashMap::new(),
            counts: Counts::default(),
            next_index: 0,
        }
    }

    /// The row of the next input user (its index is the number of users taken before it).
    pub fn take(&mut self, user: &BulkUser) -> Entry {
        let index = self.next_index;
        self.next_index += 1;
        let entry = self.row(index, user);
        self.counts.add(entry.outcome());
        entry
    }

    fn row(&mut self, index: usize, u: &BulkUser) -> Entry {
        let stage = if self.precheck { Stage::Lookup } else { Stage::Create };
        let mut e = Entry::new(u.user_name.trim().to_string(), u.external_id.clone(), stage);
        let event = u.as_event();
        if let Err(err) = event.validate() {
            e.fail(400, Some("invalidValue".into()), err.to_string());
            return e;
        }
        match event.command(self.policy, self.target) {
            Ok((Command::Upsert { desired, .. }, _)) => e.desired = Some(*desired),
            Ok(_) => {
                e.fail(400, Some("invalidValue".into()), "not a provisioning request");
                return e;
            }
            Err(v) => {
                e.fail(400, Some("invalidValue".into()), v.to_string());
                return e;
            }
        }
        // One externalId is one person: under another userName it cannot be told which is right.
        if let Some(ext) = &e.external_id {
            match self.first_by_external_id.get(ext) {
                Some(&first)
                    if self
                        .first_by_name
                        .get(&e.user_name.to_lowercase())
                        .is_none_or(|&same| same != first) =>
                {
                    e.fail(
                        400,
                        Some("uniqueness".into()),
                        format!("externalId {ext:?} is already given to input user {first} with another userName"),
                    );
                    return e;
                }
                Some(_) => {}
                None => {
                    self.first_by_external_id.insert(ext.clone(), index);
                }
            }
        }
        match self.first_by_name.get(&e.user_name.to_lowercase()) {
            Some(&first) => {
                e.duplicate_of = Some(first);
                e.stage = Stage::Done {
                    outcome: Outcome::Exists,
                };
            }
            None => {
                self.first_by_name.insert(e.user_name.to_lowercase(), index);
            }
        }
        e
    }

    /// Counts over the rows taken so far (pending = still to send).
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

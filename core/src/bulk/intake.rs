//! Turning input users into rows, one at a time: validation, the role policy, repeats folded.
//! Memory grows only with the set of userNames seen, never with the rows (the host stores
//! those as they come).

use super::entry::{Entry, Stage};
use super::input::BulkUser;
use super::report::{Counts, RowOutcome};
use crate::event::Command;
use crate::policy::{RolePolicy, RoleTarget};
use std::collections::HashMap;

pub struct Intake<'a> {
    policy: &'a RolePolicy,
    target: &'a RoleTarget,
    precheck: bool,
    /// The first row of each userName (lowercase), and whether it carries an externalId.
    first_by_name: HashMap<String, (usize, bool)>,
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
            Ok((Command::Upsert { desired, .. }, _)) => {
                e.desired = Some(*desired);
            }
            Ok(_) => {
                e.fail(400, Some("invalidValue".into()), "not a provisioning request");
                return e;
            }
            Err(v) => {
                e.fail(400, Some("invalidValue".into()), v.to_string());
                return e;
            }
        }
        // One externalId is one person, and one userName one account: a row that pairs either
        // with something else than its first row did cannot be told apart from another person.
        let name = e.user_name.to_lowercase();
        let first_named = self.first_by_name.get(&name).copied();
        let first_with_id = e
            .external_id
            .as_ref()
            .and_then(|ext| self.first_by_external_id.get(ext).copied());
        let refused = match (first_with_id, first_named) {
            (Some(f), Some((n, _))) if f == n => None,
            (Some(f), _) => Some(format!(
                "externalId {:?} is already given to input user {f} with another userName",
                e.external_id.as_deref().unwrap_or_default()
            )),
            (None, Some((n, named_has_id))) if named_has_id || e.external_id.is_some() => Some(format!(
                "userName {:?} is already given to input user {n} with another externalId",
                e.user_name
            )),
            (None, _) => None,
        };
        if let Some(detail) = refused {
            e.fail(400, Some("uniqueness".into()), detail);
            return e;
        }
        match first_named {
            Some((first, _)) => {
                e.duplicate_of = Some(first);
                e.stage = Stage::Done {
                    outcome: RowOutcome::Exists,
                };
            }
            None => {
                self.first_by_name.insert(name, (index, e.external_id.is_some()));
                if let Some(ext) = &e.external_id {
                    self.first_by_external_id.insert(ext.clone(), index);
                }
                // A leaver takes every leaver's steps, not a bulk write: the host hands it to
                // the run's batch of leavers ([`Entry::leaver`]).
                if e.disables() {
                    e.finish(RowOutcome::Leaver, None);
                    e.detail = Some("a leaver: taken by the run's batch of leavers".into());
                }
            }
        }
        e
    }

    /// Counts over the rows taken so far (pending = still to send).
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

//! A hash-chained audit trail of role changes, written as JSON lines.
//!
//! Every [`AuditEntry`] holds `prevHash`, the `hash` of the entry before it (the first one holds
//! [`GENESIS_HASH`], or the last hash of the previous segment), and its own `hash`: SHA-256 (hex)
//! of the [canonical JSON](canonical_json) of the entry without `hash`. Changing any field breaks
//! that entry's hash; recomputing it breaks the next entry's `prevHash`; removing or reordering
//! entries breaks the `seq` run. Removing entries at the *end* leaves a valid, shorter chain: keep
//! the last record's [`Link`] (the head) somewhere else and check it with [`check_end`].

use super::Outcome;
use crate::deprovision::StepRecord;
use crate::digest::sha256_hex;
use crate::flows::Action;
use crate::time::iso8601;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `prevHash` of the first entry of a chain that continues nothing: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical JSON text of a value: no whitespace, object keys sorted by their UTF-8 bytes
/// (which is Unicode code point order; RFC 8785 sorts by UTF-16 code units instead, which
/// differs only between keys above U+FFFF and keys in U+E000..U+FFFF), array order kept,
/// strings escaped and numbers printed as serde_json prints them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        // Scalars: serde_json's compact form (strings escaped, numbers as it prints them).
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 (lowercase hex) of a payload's canonical JSON: the same for any key order or spacing.
pub fn payload_sha256(value: &Value) -> String {
    sha256_hex(canonical_json(value).as_bytes())
}

/// Whom an entry is about; only what is known is written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Who {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// What started the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Webhook,
    RoleSync,
    Bulk,
    Delta,
    Admin,
}

/// An entry before it is chained: everything but `seq`, `prevHash` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditDraft {
    /// When the change was decided (the host's clock).
    pub at: UnixMillis,
    pub who: Who,
    /// What was done to the account; `None` when nothing was (a refused request).
    pub action: Option<Action>,
    /// Role ids before and after; `[]` for an account that had or keeps none.
    pub roles_before: Vec<String>,
    pub roles_after: Vec<String>,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub latency_ms: u64,
    /// [`payload_sha256`] of what triggered the change; the payload itself is never kept.
    pub payload_sha256: String,
    /// A leaver's steps, each with its outcome and latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepRecord>>,
}

/// One line of the trail.
///
/// ```json
/// {"seq":1,"at":"2026-11-22T09:49:17.000Z","who":{"userName":"a@x.io"},"action":"updated",
///  "rolesBefore":["Agent"],"rolesAfter":["Supervisor"],"trigger":"role_sync","outcome":"success",
///  "latencyMs":42,"payloadSha256":"…","prevHash":"000…0","hash":"…"}
/// ```
///
/// Unknown fields are refused when reading: a field this build does not know would not be
/// covered by the hash it recomputes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339, milliseconds, UTC.
    pub at: String,
    pub who: Who,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    pub roles_before: Vec<String>,
    pub roles_after: Vec<String>,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub latency_ms: u64,
    pub payload_sha256: String,
    /// A leaver's steps (absent from every other entry, so older hashes still hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepRecord>>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// SHA-256 (hex) of the canonical JSON of this entry without `hash`.
    pub fn compute_hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.remove("hash");
        }
        sha256_hex(canonical_json(&value).as_bytes())
    }

    /// The entry as one line of JSON (no newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The entry after `prev` (or the first of a new chain, `seq` 1 after [`GENESIS_HASH`]).
pub fn chain_next(prev: Option<&AuditEntry>, draft: AuditDraft) -> AuditEntry {
    match prev {
        Some(p) => chain_from(&p.hash, p.seq.saturating_add(1), draft),
        None => chain_from(GENESIS_HASH, 1, draft),
    }
}

/// The entry numbered `seq` after an entry whose hash is `prev_hash`, for a segment that
/// continues one whose last entry is not at hand.
pub fn chain_from(prev_hash: &str, seq: u64, draft: AuditDraft) -> AuditEntry {
    let mut entry = AuditEntry {
        seq,
        at: iso8601(draft.at),
        who: draft.who,
        action: draft.action,
        roles_before: draft.roles_before,
        roles_after: draft.roles_after,
        trigger: draft.trigger,
        outcome: draft.outcome,
        latency_ms: draft.latency_ms,
        payload_sha256: draft.payload_sha256,
        steps: draft.steps,
        prev_hash: prev_hash.to_string(),
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    entry
}

/// The first entry where a chain does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("record {seq} (entry {}): {reason}", .index + 1)]
pub struct ChainBreak {
    /// The `seq` the entry carries.
    pub seq: u64,
    /// Its position in the input, from 0.
    pub index: usize,
    pub reason: BreakReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakReason {
    /// The entry's content does not hash to its `hash`: it was changed after it was written.
    #[error("its hash does not match its content (changed after it was written)")]
    Altered,
    /// `seq` jumps past `expected`, which does not follow either: entries were removed.
    #[error("record {expected} is missing before it (removed)")]
    Missing { expected: u64 },
    /// `seq` is not `expected`, which follows right after (a swap), or goes back (a repeat).
    #[error("out of order: record {expected} belongs here")]
    OutOfOrder { expected: u64 },
    /// `prevHash` is not the previous entry's hash (or the expected start of the chain): the
    /// previous entry was changed and rehashed, or this one was spliced in.
    #[error("prevHash does not match the hash before it ({expected_prev})")]
    Unlinked {
        #[serde(rename = "expectedPrev")]
        expected_prev: String,
    },
}

/// Checks a chain in order and returns how many entries it holds.
///
/// `expected_first_prev` is the previous segment's last hash, or `None` for a chain that starts
/// at [`GENESIS_HASH`] with `seq` 1. For each entry, in this order: its own hash, its `seq`
/// (one more than the previous entry's), its `prevHash`. The first failure is reported at the
/// entry where it shows.
pub fn verify_chain(
    entries: impl IntoIterator<Item = AuditEntry>,
    expected_first_prev: Option<&str>,
) -> Result<usize, ChainBreak> {
    let mut entries = entries.into_iter().peekable();
    let mut prev_hash = expected_first_prev.unwrap_or(GENESIS_HASH).to_string();
    // A continued segment may start at any seq; a new chain starts at 1.
    let mut expected_seq = expected_first_prev.is_none().then_some(1u64);
    let mut index = 0usize;
    while let Some(entry) = entries.next() {
        let fail = |reason| ChainBreak {
            seq: entry.seq,
            index,
            reason,
        };
        if entry.compute_hash() != entry.hash {
            return Err(fail(BreakReason::Altered));
        }
        if let Some(expected) = expected_seq {
            if entry.seq != expected {
                let swapped = entries.peek().is_some_and(|next| next.seq == expected);
                let reason = if entry.seq > expected && !swapped {
                    BreakReason::Missing { expected }
                } else {
                    BreakReason::OutOfOrder { expected }
                };
                return Err(fail(reason));
            }
        }
        if entry.prev_hash != prev_hash {
            return Err(fail(BreakReason::Unlinked {
                expected_prev: prev_hash,
            }));
        }
        expected_seq = Some(entry.seq.saturating_add(1));
        prev_hash = entry.hash;
        index += 1;
    }
    Ok(index)
}

/// A record's place in the chain: its `seq` and `hash` (the trail's head, or the anchor the
/// kept chain continues after pruning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub seq: u64,
    pub hash: String,
}

impl From<&AuditEntry> for Link {
    fn from(e: &AuditEntry) -> Self {
        Self {
            seq: e.seq,
            hash: e.hash.clone(),
        }
    }
}

/// Why the kept entries do not end where the head says the trail ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndBreak {
    /// The head names a record, and nothing is kept after the anchor (or ever written).
    #[error("the trail holds no records but its head is record {head}: records were removed")]
    Emptied { head: u64 },
    /// The last kept entry comes before the head.
    #[error("the trail ends at record {last} but its head is record {head}: records were cut from the end")]
    Truncated { last: u64, head: u64 },
    /// The last kept entry comes after the head.
    #[error("the trail holds record {last} past its head, record {head}")]
    PastHead { last: u64, head: u64 },
    /// The last kept entry has the head's seq and another hash.
    #[error("record {seq} is not the record the head names (another hash)")]
    Replaced { seq: u64 },
    /// The last kept entry does not hash to its `hash`.
    #[error("record {seq}: its hash does not match its content (changed after it was written)")]
    Altered { seq: u64 },
    /// Records are kept, or were pruned, but no head says where the trail ends.
    #[error("the trail holds records but has no head")]
    NoHead,
}

/// Checks the end of the kept trail against its head, whatever range is being verified: the
/// last kept entry (`last`) must be the record the head names, unaltered; with no entry kept,
/// the head must be where pruning left the chain (`anchor`), or nothing was ever written.
pub fn check_end(head: Option<&Link>, anchor: Option<&Link>, last: Option<&AuditEntry>) -> Result<(), EndBreak> {
    let Some(head) = head else {
        return match (last, anchor) {
            (None, None) => Ok(()),
            _ => Err(EndBreak::NoHead),
        };
    };
    let Some(last) = last else {
        return match anchor {
            Some(anchor) if anchor == head => Ok(()),
            _ => Err(EndBreak::Emptied { head: head.seq }),
        };
    };
    if last.compute_hash() != last.hash {
        return Err(EndBreak::Altered { seq: last.seq });
    }
    match last.seq.cmp(&head.seq) {
        std::cmp::Ordering::Less => Err(EndBreak::Truncated {
            last: last.seq,
            head: head.seq,
        }),
        std::cmp::Ordering::Greater => Err(EndBreak::PastHead {
            last: last.seq,
            head: head.seq,
        }),
        std::cmp::Ordering::Equal if last.hash != head.hash => Err(EndBreak::Replaced { seq: last.seq }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn draft(n: u64) -> AuditDraft {
        AuditDraft {
            at: 1_795_340_957_000 + n * 1000,
            who: Who {
                user_name: Some(format!("user{n}@x.io")),
                ..Who::default()
            },
            action: Some(Action::Updated),
            roles_before: vec!["Agent".into()],
            roles_after: vec!["Supervisor".into()],
            trigger: Trigger::RoleSync,
            outcome: Outcome::Success,
            latency_ms: 40 + n,
            payload_sha256: payload_sha256(&json!({"n": n})),
            steps: None,
        }
    }

    fn chain(len: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for n in 1..=len {
            let next = chain_next(out.last(), draft(n));
            out.push(next);
        }
        out
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{ "b": [3, {"z": null, "a": true}], "a": "x\"y", "é": 1.5, "Z": 7 }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"é":1.5,"Z":7,"a":"x\"y","b":[3,{"a":true,"z":null}]}"#).unwrap();
        let text = canonical_json(&a);
        assert_eq!(text, r#"{"Z":7,"a":"x\"y","b":[3,{"a":true,"z":null}],"é":1.5}"#);
        assert_eq!(canonical_json(&b), text);
        // Byte order: "Z" (0x5A) before "a" (0x61) before "é" (0xC3 0xA9); U+FFFD before U+1F600.
        let astral = json!({"\u{1F600}": 1, "\u{FFFD}": 2});
        assert_eq!(canonical_json(&astral), "{\"\u{FFFD}\":2,\"\u{1F600}\":1}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn payload_hash_is_stable_across_key_orders() {
        let one: Value =
            serde_json::from_str(r#"{"userName":"a@x.io","groups":[{"id":"1","displayName":"g"}]}"#).unwrap();
        let two: Value = serde_json::from_str(
            "{\n  \"groups\": [ {\"displayName\": \"g\", \"id\": \"1\"} ],\n  \"userName\": \"a@x.io\"\n}",
        )
        .unwrap();
        assert_eq!(payload_sha256(&one), payload_sha256(&two));
        assert_eq!(payload_sha256(&one), sha256_hex(canonical_json(&one).as_bytes()));
        assert_eq!(payload_sha256(&one).len(), 64);
        // Array order and values count.
        let swapped = json!({"userName":"a@x.io","groups":[{"id":"2","displayName":"g"}]});
        assert_ne!(payload_sha256(&one), payload_sha256(&swapped));
        // An entry's hash is the same whatever order its fields are read in.
        let e = chain(1).remove(0);
        let mut fields: Vec<(String, Value)> = match serde_json::to_value(&e).unwrap() {
            Value::Object(m) => m.into_iter().collect(),
            _ => unreachable!(),
        };
        fields.reverse();
        let text = format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let reread: AuditEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(reread.compute_hash(), e.hash);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn entries_link_to_the_one_before() {
        let c = chain(3);
        assert_eq!(c[0].seq, 1);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[1].prev_hash, c[0].hash);
        assert_eq!(c[2].seq, 3);
        assert_eq!(c[0].at, "2026-11-22T09:49:18.000Z");
        assert_eq!(c[0].hash, c[0].compute_hash());
        let v: Value = serde_json::from_str(&c[0].to_json_line()).unwrap();
        assert_eq!(v["rolesAfter"], json!(["Supervisor"]));
        assert_eq!(v["trigger"], "role_sync");
        assert_eq!(v["who"], json!({"userName": "user1@x.io"}));
        assert_eq!(v["payloadSha256"], payload_sha256(&json!({"n": 1})));
        // The hash covers the entry without "hash", canonically.
        let mut body = v.clone();
        body.as_object_mut().unwrap().remove("hash");
        assert_eq!(v["hash"], sha256_hex(canonical_json(&body).as_bytes()));
        assert_eq!(verify_chain(c, None), Ok(3));
        assert_eq!(verify_chain(Vec::new(), None), Ok(0));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_changed_entry_is_found_where_it_was_changed() {
        let mut c = chain(5);
        c[2].roles_after = vec!["Admin".into()];
        assert_eq!(
            verify_chain(c.clone(), None),
            Err(ChainBreak {
                seq: 3,
                index: 2,
                reason: BreakReason::Altered
            })
        );
        // Rehashed after the change: the next entry no longer links to it.
        c[2].hash = c[2].compute_hash();
        let err = verify_chain(c.clone(), None).unwrap_err();
        assert_eq!((err.seq, err.index), (4, 3));
        assert!(matches!(err.reason, BreakReason::Unlinked { ref expected_prev } if *expected_prev == c[2].hash));
        assert!(err.to_string().starts_with("record 4 (entry 4): prevHash"), "{err}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_removed_entry_is_found_at_the_gap() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(
            verify_chain(c, None),
            Err(ChainBreak {
                seq: 4,
                index: 2,
                reason: BreakReason::Missing { expected: 3 }
            })
        );
        // The first one removed: the chain no longer starts at 1.
        let mut c = chain(3);
        c.remove(0);
        assert_eq!(
            verify_chain(c, None),
            Err(ChainBreak {
                seq: 2,
                index: 0,
                reason: BreakReason::Missing { expected: 1 }
            })
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn swapped_or_repeated_entries_are_out_of_order() {
        let mut c = chain(5);
        c.swap(1, 2);
        let err = verify_chain(c, None).unwrap_err();
        assert_eq!(
            err,
            ChainBreak {
                seq: 3,
                index: 1,
                reason: BreakReason::OutOfOrder { expected: 2 }
            }
        );
        assert_eq!(
            err.to_string(),
            "record 3 (entry 2): out of order: record 2 belongs here"
        );
        let mut c = chain(3);
        let again = c[1].clone();
        c.insert(2, again);
        assert_eq!(
            verify_chain(c, None),
            Err(ChainBreak {
                seq: 2,
                index: 2,
                reason: BreakReason::OutOfOrder { expected: 3 }
            })
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn segments_continue_from_the_last_hash() {
        let first = chain(2);
        let head = first[1].hash.clone();
        let second = vec![chain_from(&head, 3, draft(3))];
        let next = chain_next(second.last(), draft(4));
        let second = [second, vec![next]].concat();
        assert_eq!(verify_chain(second.clone(), Some(&head)), Ok(2));
        // Against the genesis (or another head) the segment does not link.
        let err = verify_chain(second.clone(), Some(GENESIS_HASH)).unwrap_err();
        assert_eq!((err.seq, err.index), (3, 0));
        assert!(matches!(err.reason, BreakReason::Unlinked { .. }));
        assert_eq!(
            verify_chain(second, None).unwrap_err().reason,
            BreakReason::Missing { expected: 1 }
        );
        // A spliced entry from elsewhere, even with a valid hash and the right seq.
        let mut c = chain(3);
        c[1] = chain_from(GENESIS_HASH, 2, draft(9));
        assert!(matches!(
            verify_chain(c, None),
            Err(ChainBreak {
                seq: 2,
                index: 1,
                reason: BreakReason::Unlinked { .. }
            })
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reading_refuses_unknown_fields() {
        let line = chain(1)[0].to_json_line();
        let extra = line.replacen('{', r#"{"note":"x","#, 1);
        assert_ne!(extra, line);
        assert!(serde_json::from_str::<AuditEntry>(&extra).is_err());
        assert_eq!(serde_json::from_str::<AuditEntry>(&line).unwrap(), chain(1)[0]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_kept_end_must_be_the_head() {
        let c = chain(5);
        let head = Link::from(&c[4]);
        assert_eq!(check_end(Some(&head), None, c.last()), Ok(()));
        assert_eq!(check_end(None, None, None), Ok(()), "nothing written yet");
        // Every entry gone while the head says 5: not an empty, valid trail.
        assert_eq!(check_end(Some(&head), None, None), Err(EndBreak::Emptied { head: 5 }));
        assert_eq!(
            check_end(Some(&head), Some(&Link::from(&c[1])), None),
            Err(EndBreak::Emptied { head: 5 })
        );
        // Everything pruned up to the head: the anchor is the head.
        assert_eq!(check_end(Some(&head), Some(&head), None), Ok(()));
        // Cut from the end.
        let err = check_end(Some(&head), None, Some(&c[2])).unwrap_err();
        assert_eq!(err, EndBreak::Truncated { last: 3, head: 5 });
        assert_eq!(
            err.to_string(),
            "the trail ends at record 3 but its head is record 5: records were cut from the end"
        );
        assert_eq!(
            check_end(Some(&Link::from(&c[2])), None, Some(&c[4])),
            Err(EndBreak::PastHead { last: 5, head: 3 })
        );
        // The last entry replaced by another with a valid hash, or changed in place.
        let other = chain_from(&c[3].hash, 5, draft(9));
        assert_eq!(
            check_end(Some(&head), None, Some(&other)),
            Err(EndBreak::Replaced { seq: 5 })
        );
        let mut changed = c[4].clone();
        changed.roles_after = vec!["Admin".into()];
        assert_eq!(
            check_end(Some(&head), None, Some(&changed)),
            Err(EndBreak::Altered { seq: 5 })
        );
        // Records without a head.
        assert_eq!(check_end(None, None, Some(&c[0])), Err(EndBreak::NoHead));
        assert_eq!(check_end(None, Some(&head), None), Err(EndBreak::NoHead));
        let v = serde_json::to_value(EndBreak::Truncated { last: 3, head: 5 }).unwrap();
        assert_eq!(v, json!({"kind": "truncated", "last": 3, "head": 5}));
    }
}

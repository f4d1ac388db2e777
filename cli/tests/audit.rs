//! `cxone-scim audit verify`: "ok: N records" and exit 0, or the first broken record and exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should stop loudly

use cxone_scim_core::audit::{chain_next, payload_sha256, AuditDraft, AuditEntry, Outcome, Trigger, Who};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cxone-scim");

fn trail(len: u64) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for n in 1..=len {
        let draft = AuditDraft {
            at: 1_795_340_957_000 + n * 1000,
            who: Who {
                external_id: Some(format!("ext-{n}")),
                ..Who::default()
            },
            action: None,
            roles_before: vec!["Agent".into()],
            roles_after: vec!["Supervisor".into()],
            trigger: Trigger::RoleSync,
            outcome: Outcome::Success,
            latency_ms: 10,
            payload_sha256: payload_sha256(&serde_json::json!({ "n": n })),
            steps: None,
        };
        let next = chain_next(out.last(), draft);
        out.push(next);
    }
    out
}

/// Writes the entries as JSON lines and runs `audit verify` on them: (exit code, stdout).
fn verify(name: &str, entries: &[AuditEntry]) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("cxone-scim-audit-{}-{name}.jsonl", std::process::id()));
    let text: String = entries.iter().map(|e| e.to_json_line() + "\n").collect();
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&path)
        .output()
        .expect("the cxone-scim binary runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn an_intact_trail_is_counted() {
    assert_eq!(verify("intact", &trail(3)), (Some(0), "ok: 3 records\n".into()));
}

#[test]
fn a_broken_trail_names_the_first_broken_record() {
    let mut changed = trail(4);
    changed[1].outcome = Outcome::Failure;
    let (code, out) = verify("changed", &changed);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("line 2: record 2 (entry 2): its hash does not match"),
        "{out}"
    );

    let mut removed = trail(4);
    removed.remove(1);
    let (code, out) = verify("removed", &removed);
    assert_eq!(code, Some(1));
    assert!(out.contains("line 2: record 3 (entry 2): record 2 is missing"), "{out}");

    let mut swapped = trail(4);
    swapped.swap(2, 3);
    let (code, out) = verify("swapped", &swapped);
    assert_eq!(code, Some(1));
    assert!(out.contains("line 3: record 4 (entry 3): out of order"), "{out}");
}

#[test]
fn a_missing_file_is_an_error() {
    let out = Command::new(BIN)
        .args(["audit", "verify", "/nonexistent/audit.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/audit.jsonl"));
}

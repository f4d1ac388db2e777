//! `--help` never shows values taken from the environment: several are secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should stop loudly

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cxone-scim");

/// Every variable the CLI (or the Worker, whose names it shares) reads.
const VARS: [&str; 14] = [
    "CXONE_SCIM_BASE_URL",
    "CXONE_TOKEN_URL",
    "CXONE_PROFILE",
    "CXONE_AUTH",
    "CXONE_CLIENT_ID",
    "CXONE_CLIENT_SECRET",
    "CXONE_ACCESS_KEY_ID",
    "CXONE_ACCESS_KEY_SECRET",
    "CXONE_SCOPE",
    "ROLE_POLICY_FILE",
    "ROLE_POLICY",
    "WEBHOOK_SECRETS",
    "ADMIN_TOKEN",
    "CXONE_API_BASE_URL",
];

fn marker(var: &str) -> String {
    format!("marker-{}-d41d8c", var.to_lowercase())
}

/// Runs the binary with every variable set to its marker; standard output and error together.
fn run(args: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in VARS {
        cmd.env(var, marker(var));
    }
    let out = cmd.output().expect("the cxone-scim binary runs");
    assert!(out.status.success(), "{args:?} failed: {out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The subcommands the top-level help lists (`help` aside).
fn subcommands() -> Vec<String> {
    let help = run(&["--help"]);
    let listed = help.split("Commands:").nth(1).expect("a Commands section");
    listed
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn help_never_shows_environment_values() {
    let commands = subcommands();
    assert_eq!(
        commands,
        [
            "policy",
            "plan",
            "sign",
            "bulk",
            "deprovision",
            "provider-config",
            "audit"
        ]
    );
    let mut invocations: Vec<Vec<&str>> = vec![vec!["--help"], vec!["-h"], vec!["help"]];
    for c in &commands {
        invocations.push(vec![c.as_str(), "--help"]);
        invocations.push(vec![c.as_str(), "-h"]);
        invocations.push(vec!["help", c.as_str()]);
    }
    for args in invocations {
        let text = run(&args);
        for var in VARS {
            assert!(!text.contains(&marker(var)), "{args:?} shows {var}:\n{text}");
        }
    }
    // The arguments are still documented as read from the environment, by name.
    let sign = run(&["sign", "--help"]);
    assert!(sign.contains("[env: WEBHOOK_SECRETS]"), "{sign}");
    let bulk = run(&["bulk", "--help"]);
    for var in [
        "CXONE_SCIM_BASE_URL",
        "CXONE_TOKEN_URL",
        "CXONE_CLIENT_ID",
        "CXONE_SCOPE",
        "ROLE_POLICY_FILE",
    ] {
        assert!(bulk.contains(&format!("[env: {var}]")), "{var} in {bulk}");
    }
    let deprovision = run(&["deprovision", "--help"]);
    assert!(deprovision.contains("[env: CXONE_API_BASE_URL]"), "{deprovision}");
}

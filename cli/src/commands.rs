//! The subcommands.

use crate::driver::{now_ms, run, run_reads, seed, Http};
use crate::Target;
use cxone_scim_core::audit::{verify_chain, AuditEntry};
use cxone_scim_core::bulk::{BulkConfig, BulkUser, InMemoryRun, RowOutcome};
use cxone_scim_core::deprovision::{AdminApi, DeprovisionFlow, DeprovisionRequest, Options};
use cxone_scim_core::event::Lookup;
use cxone_scim_core::flows::Authorized;
use cxone_scim_core::policy::RolePolicy;
use cxone_scim_core::policy::RoleTarget;
use cxone_scim_core::profile::Profile;
use cxone_scim_core::retry::RetryPolicy;
use cxone_scim_core::secret::{split_list, SecretString};
use cxone_scim_core::settings::{endpoint_url, Settings};
use cxone_scim_core::token::{ClientCredentials, Grant};
use cxone_scim_core::webhook::{sign as sign_body, WebhookSecret};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;

type Res = Result<ExitCode, String>;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn load_policy(path: &str) -> Result<RolePolicy, String> {
    RolePolicy::from_json(&read(path)?).map_err(|e| format!("{path}: {e}"))
}

/// Users from `[...]` or `{"users":[...]}`.
fn load_users(path: &str) -> Result<Vec<BulkUser>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<BulkUser>),
        Wrapped { users: Vec<BulkUser> },
    }
    let text = read(path)?;
    match serde_json::from_str::<File>(&text).map_err(|e| format!("{path}: {e}"))? {
        File::List(users) | File::Wrapped { users } => Ok(users),
    }
}

pub fn policy(file: &str) -> Res {
    match RolePolicy::from_json(&read(file)?) {
        Ok(p) => {
            println!(
                "{file}: valid ({:?} mode, {} mappings, {} roles)",
                p.mode,
                p.mappings.len(),
                p.roles.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{file}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn plan(
    users: &str,
    policy: &str,
    base_url: &str,
    batch_size: usize,
    role_target: RoleTarget,
    profile: Profile,
) -> Res {
    let config = BulkConfig {
        batch_size,
        role_target,
        caps: profile.capabilities(),
        ..BulkConfig::new(base_url)
    };
    let run = InMemoryRun::new(&load_users(users)?, &load_policy(policy)?, config, 0);
    println!("{}", serde_json::to_string(&run.dry_run()).map_err(|e| e.to_string())?);
    Ok(ExitCode::SUCCESS)
}

pub fn sign(secret: &str, id: Option<String>, timestamp: Option<i64>) -> Res {
    let first = split_list(secret).next().ok_or("no secret given")?;
    let secret = WebhookSecret::parse(first).map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).map_err(|e| e.to_string())?;
    let ts = timestamp.unwrap_or_else(|| i64::try_from(now_ms() / 1000).unwrap_or(0));
    let id = id.unwrap_or_else(|| format!("msg_{:016x}", seed()));
    println!("webhook-id: {id}");
    println!("webhook-timestamp: {ts}");
    println!("webhook-signature: {}", sign_body(&secret, &id, ts, &body));
    Ok(ExitCode::SUCCESS)
}

/// Audit entries from JSON lines (blank lines skipped), remembering each entry's line and
/// stopping at the first line that is not an entry.
struct EntryLines<R> {
    lines: std::io::Lines<R>,
    line_no: usize,
    line_of: Vec<usize>,
    error: Option<(usize, String)>,
}

impl<R: BufRead> Iterator for EntryLines<R> {
    type Item = AuditEntry;

    fn next(&mut self) -> Option<AuditEntry> {
        if self.error.is_some() {
            return None;
        }
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(e) => {
                    self.error = Some((self.line_no + 1, e.to_string()));
                    return None;
                }
            };
            self.line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<AuditEntry>(&line) {
                Ok(entry) => {
                    self.line_of.push(self.line_no);
                    return Some(entry);
                }
                Err(e) => {
                    self.error = Some((self.line_no, format!("not an audit entry: {e}")));
                    return None;
                }
            }
        }
    }
}

/// Checks an audit trail file: `Ok((true, "ok: N records"))`, or `Ok((false, what broke where))`.
fn check_audit(file: &str, prev_hash: Option<&str>) -> Result<(bool, String), String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let mut entries = EntryLines {
        lines: BufReader::new(f).lines(),
        line_no: 0,
        line_of: Vec::new(),
        error: None,
    };
    let result = verify_chain(&mut entries, prev_hash);
    match (result, entries.error) {
        (Err(brk), _) => {
            let line = entries.line_of.get(brk.index).copied().unwrap_or(0);
            Ok((false, format!("broken: {file} line {line}: {brk}")))
        }
        (Ok(n), Some((line, why))) => Ok((
            false,
            format!("broken: {file} line {line} (after {n} good records): {why}"),
        )),
        (Ok(n), None) => Ok((true, format!("ok: {n} records"))),
    }
}

/// `audit verify`: exits 1 at the first broken record.
pub fn audit_verify(file: &str, prev_hash: Option<&str>) -> Res {
    let (ok, message) = check_audit(file, prev_hash)?;
    println!("{message}");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// How a bulk run sends.
pub struct BulkOptions {
    pub batch_size: usize,
    pub precheck: bool,
    pub role_target: RoleTarget,
}

/// Exits 1 when any user failed or conflicts with another account, so scripts notice.
/// NICE's Admin API, when `--admin-api-url` (`CXONE_API_BASE_URL`) is set: https, plain http
/// only on loopback.
fn admin_api(target: &Target) -> Result<Option<AdminApi>, String> {
    match target.admin_api_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(url) => endpoint_url(url)
            .map(|u| Some(AdminApi::new(&u)))
            .map_err(|e| format!("--admin-api-url (CXONE_API_BASE_URL) {e}")),
        None => Ok(None),
    }
}

/// Where CXone is and how to get a token, checked: the SCIM root, the credentials, the retry
/// policy (`RETRY_*` as the Worker reads them).
fn connection(target: &Target) -> Result<(String, ClientCredentials, RetryPolicy), String> {
    let (id, id_var, secret_var) = match target.auth {
        Grant::ClientCredentials => (
            &target.client_id,
            "CXONE_CLIENT_ID (--client-id)",
            "CXONE_CLIENT_SECRET",
        ),
        Grant::AccessKey => (
            &target.access_key_id,
            "CXONE_ACCESS_KEY_ID (--access-key-id)",
            "CXONE_ACCESS_KEY_SECRET",
        ),
    };
    let client_id = id
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or(format!("{id_var} is not set"))?;
    let secret = target
        .secret
        .clone()
        .ok_or(format!("{secret_var} is not set in the environment"))?;
    // Where the client secret and the bearer token go: https, plain http only on loopback.
    let base_url = endpoint_url(&target.base_url).map_err(|e| format!("--base-url (CXONE_SCIM_BASE_URL) {e}"))?;
    let token_url = endpoint_url(&target.token_url).map_err(|e| format!("--token-url (CXONE_TOKEN_URL) {e}"))?;
    let retry = Settings::retry_from_vars(|name| std::env::var(name).ok()).map_err(|p| p.join("; "))?;
    let creds = ClientCredentials {
        token_url,
        client_id,
        client_secret: SecretString::new(secret),
        scope: target
            .scope
            .clone()
            .filter(|s| !s.is_empty() && target.auth == Grant::ClientCredentials),
        grant: target.auth,
    };
    Ok((base_url, creds, retry))
}

pub fn bulk(
    users: &str,
    policy: &str,
    target: &Target,
    options: BulkOptions,
    report_path: Option<&str>,
    quiet: bool,
) -> Res {
    let (base_url, creds, retry) = connection(target)?;
    let users = load_users(users)?;
    let config = BulkConfig {
        retry,
        batch_size: options.batch_size,
        precheck: options.precheck,
        role_target: options.role_target,
        caps: target.profile.capabilities(),
        ..BulkConfig::new(&base_url)
    };
    let run_state = InMemoryRun::new(&users, &load_policy(policy)?, config, seed());
    drop(users);
    let total = run_state.progress().total as u64;
    let mut flow = Authorized::new(run_state, creds.clone(), None, retry, seed());
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} users  {msg}  [{elapsed_precise}]")
            .map_err(|e| e.to_string())?,
    );
    let out = run(&mut flow, &Http::new(), |f| {
        let p = f.inner().progress();
        bar.set_position(p.done as u64);
        bar.set_message(format!(
            "created {} updated {} exists {} failed {}",
            p.counts.created, p.counts.updated, p.counts.exists, p.counts.failed
        ));
    });
    bar.finish();
    let report = out.map_err(|e| e.to_string())?;
    // Rows with `active:false` are leavers: each takes the leaver's steps, as in the Worker.
    let admin = admin_api(target)?;
    let mut leavers = Vec::new();
    for user in report.users.iter().filter(|u| u.outcome == RowOutcome::Leaver) {
        let lookup = Lookup {
            user_name: Some(user.user_name.clone()).filter(|n| !n.is_empty()),
            external_id: user.external_id.clone(),
            cxone_id: user.id.clone(),
        };
        let flow = DeprovisionFlow::new(
            &base_url,
            target.profile.capabilities(),
            admin.clone(),
            lookup,
            Options::default(),
            retry,
            seed(),
            now_ms(),
        );
        let mut flow = Authorized::new(flow, creds.clone(), None, retry, seed());
        let ran = run(&mut flow, &Http::new(), |_| {});
        leavers.push(match ran {
            Ok(r) => serde_json::json!({"index": user.index, "userName": user.user_name, "report": r}),
            Err(e) => serde_json::json!({"index": user.index, "userName": user.user_name, "error": e.to_string()}),
        });
    }
    let unverified = leavers
        .iter()
        .filter(|l| l["report"]["verified"] != serde_json::json!(true))
        .count();
    let mut out = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    if !leavers.is_empty() {
        out["leavers"] = serde_json::json!(leavers);
        eprintln!(
            "{} leavers: {} verified, {} not",
            leavers.len(),
            leavers.len() - unverified,
            unverified
        );
    }
    let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
    match report_path {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?,
        None => println!("{text}"),
    }
    let c = report.progress.counts;
    eprintln!(
        "{} users: created {} updated {} exists {} failed {} conflict {} ({} Bulk requests, {} single-user writes, {} lookups)",
        report.progress.total,
        c.created,
        c.updated,
        c.exists,
        c.failed,
        c.conflict,
        report.progress.bulk_requests,
        report.progress.user_writes,
        report.progress.lookups
    );
    Ok(if c.failed + c.conflict + unverified > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One leaver, as the Worker takes it (core's `DeprovisionFlow`): the report as JSON; exits 0
/// when verified (or held, or for a dry run), 1 otherwise. `--dry-run` reads and prints the
/// writes it would send.
pub fn deprovision(target: &Target, request: DeprovisionRequest, dry_run: bool) -> Res {
    let (base_url, creds, retry) = connection(target)?;
    let admin = admin_api(target)?;
    let token_url = creds.token_url.clone();
    let flow = DeprovisionFlow::new(
        &base_url,
        target.profile.capabilities(),
        admin,
        request.lookup,
        request.options,
        retry,
        seed(),
        now_ms(),
    );
    let mut flow = Authorized::new(flow, creds, None, retry, seed());
    let http = Http::new();
    if dry_run {
        let finished = run_reads(&mut flow, &http, &token_url);
        let plan = flow.inner().plan();
        let would_send: Vec<serde_json::Value> = plan
            .would_send
            .iter()
            .map(|r| serde_json::json!({"method": r.method.as_str(), "url": r.url}))
            .collect();
        let mut out = serde_json::json!({"dryRun": true, "wouldSend": would_send, "steps": plan.steps,
            "cxoneId": plan.cxone_id, "agentId": plan.agent_id, "dependencies": plan.dependencies});
        match (finished, plan.finished) {
            (_, Some(Ok(report))) => out["finished"] = serde_json::json!(report),
            (Some(Err(e)), _) | (_, Some(Err(e))) => out["error"] = serde_json::json!(e.to_string()),
            _ => {}
        }
        println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    let report = run(&mut flow, &http, |_| {}).map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    let held = report.outcome == cxone_scim_core::deprovision::DeprovisionOutcome::Held;
    Ok(if report.verified || held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("cxone-scim-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn users_files_may_be_a_list_or_wrapped() {
        let list = write(
            "list.json",
            r#"[{"userName":"a@x.io"},{"userName":"b@x.io","active":"False"}]"#,
        );
        let wrapped = write("wrapped.json", r#"{"users":[{"userName":"a@x.io"}]}"#);
        let users = load_users(&list).unwrap();
        assert_eq!(users.len(), 2);
        assert!(!users[1].active);
        assert_eq!(load_users(&wrapped).unwrap()[0].user_name, "a@x.io");
        let broken = write("broken.json", r#"{"people":[]}"#);
        assert!(load_users(&broken).unwrap_err().contains("broken.json"));
        assert!(load_users("/nonexistent/users.json")
            .unwrap_err()
            .contains("/nonexistent/users.json"));
    }

    #[test]
    fn bulk_refuses_plain_http_off_loopback_before_reading_anything() {
        let target = |base_url: &str, token_url: &str| Target {
            base_url: base_url.into(),
            token_url: token_url.into(),
            profile: Profile::Rfc7644,
            auth: Grant::ClientCredentials,
            client_id: Some("cid".into()),
            access_key_id: None,
            secret: Some("secret".into()),
            scope: None,
            admin_api_url: None,
        };
        let run = |t: &Target| {
            bulk(
                "/nonexistent/users.json",
                "/nonexistent/policy.json",
                t,
                BulkOptions {
                    batch_size: 50,
                    precheck: true,
                    role_target: RoleTarget::Roles,
                },
                None,
                true,
            )
        };
        let err = run(&target(
            "http://cxone.example/scim/v2",
            "https://cxone.example/oauth/token",
        ))
        .unwrap_err();
        assert_eq!(
            err,
            "--base-url (CXONE_SCIM_BASE_URL) must be https (plain http only on loopback)"
        );
        let err = run(&target(
            "https://cxone.example/scim/v2",
            "http://cxone.example/oauth/token",
        ))
        .unwrap_err();
        assert_eq!(
            err,
            "--token-url (CXONE_TOKEN_URL) must be https (plain http only on loopback)"
        );
        // Loopback passes the check (and then fails on the missing users file).
        let err = run(&target("http://127.0.0.1:9/scim/v2", "http://localhost:9/oauth/token")).unwrap_err();
        assert!(err.contains("/nonexistent/users.json"), "{err}");
        // An access key needs its id (and its own secret), not the client's.
        let mut keyed = target("https://cxone.example/scim/v2", "https://cxone.example/token");
        keyed.auth = Grant::AccessKey;
        assert_eq!(
            run(&keyed).unwrap_err(),
            "CXONE_ACCESS_KEY_ID (--access-key-id) is not set"
        );
        keyed.access_key_id = Some("key-1".into());
        assert!(run(&keyed).unwrap_err().contains("/nonexistent/users.json"));
    }

    fn trail(len: u64) -> Vec<AuditEntry> {
        use cxone_scim_core::audit::{chain_next, payload_sha256, AuditDraft, Outcome, Trigger, Who};
        let mut out: Vec<AuditEntry> = Vec::new();
        for n in 1..=len {
            let draft = AuditDraft {
                at: 1_795_340_957_000 + n,
                who: Who {
                    user_name: Some(format!("u{n}@x.io")),
                    ..Who::default()
                },
                action: None,
                roles_before: vec![],
                roles_after: vec!["Agent".into()],
                trigger: Trigger::Admin,
                outcome: Outcome::Success,
                latency_ms: n,
                payload_sha256: payload_sha256(&serde_json::json!({ "n": n })),
                steps: None,
            };
            let next = chain_next(out.last(), draft);
            out.push(next);
        }
        out
    }

    fn lines(entries: &[AuditEntry]) -> String {
        entries.iter().map(|e| e.to_json_line() + "\n").collect()
    }

    #[test]
    fn audit_verify_counts_or_names_the_broken_line() {
        let good = trail(4);
        let path = write("audit-good.jsonl", &lines(&good));
        assert_eq!(check_audit(&path, None).unwrap(), (true, "ok: 4 records".into()));
        // A blank line in between does not count, and line numbers stay those of the file.
        let mut text = lines(&good);
        text.insert(text.find('\n').unwrap() + 1, '\n');
        let mut changed = good.clone();
        changed[2].roles_after = vec!["Admin".into()];
        let spaced = write(
            "audit-spaced.jsonl",
            &(lines(&changed[..1]) + "\n" + &lines(&changed[1..])),
        );
        let (ok, msg) = check_audit(&spaced, None).unwrap();
        assert!(!ok);
        assert!(msg.contains("line 4: record 3 (entry 3): its hash"), "{msg}");
        let blank_ok = write("audit-blank.jsonl", &text);
        assert_eq!(check_audit(&blank_ok, None).unwrap().1, "ok: 4 records");
        // A line that is not an entry, after good ones.
        let garbage = write("audit-garbage.jsonl", &(lines(&good[..2]) + "{\"seq\":3}\n"));
        let (ok, msg) = check_audit(&garbage, None).unwrap();
        assert!(!ok);
        assert!(
            msg.contains("line 3 (after 2 good records): not an audit entry"),
            "{msg}"
        );
        // A continued segment verifies only with the previous segment's last hash.
        let tail = write("audit-tail.jsonl", &lines(&good[2..]));
        assert_eq!(check_audit(&tail, Some(&good[1].hash)).unwrap().1, "ok: 2 records");
        assert!(!check_audit(&tail, None).unwrap().0);
        assert!(check_audit("/nonexistent/audit.jsonl", None)
            .unwrap_err()
            .contains("/nonexistent/audit.jsonl"));
    }

    #[test]
    fn policy_errors_name_the_file() {
        let bad = write("policy.json", r#"{"version":2,"mode":"strict","mappings":[]}"#);
        let err = load_policy(&bad).unwrap_err();
        assert!(err.contains("policy.json") && err.contains("$.version"), "{err}");
    }
}

//! Configuration, read from the Worker's vars and secrets in one place.

use cxone_scim_core::admin::AdminTokens;
use cxone_scim_core::policy::RolePolicy;
use cxone_scim_core::retry::RetryPolicy;
use cxone_scim_core::secret::SecretString;
use cxone_scim_core::token::ClientCredentials;
use cxone_scim_core::webhook::WebhookSecrets;
use worker::Env;

pub const KV_BINDING: &str = "STATE";
pub const LEDGER_BINDING: &str = "LEDGER";

#[derive(Debug)]
pub struct Config {
    /// CXone's SCIM root, `/scim/v2` included.
    pub scim_base_url: String,
    pub credentials: ClientCredentials,
    pub policy: RolePolicy,
    pub webhook_secrets: WebhookSecrets,
    pub admin_tokens: AdminTokens,
    pub retry: RetryPolicy,
    /// Subrequests one invocation may make (Free plan 50, paid 1,000).
    pub subrequest_budget: u32,
    pub bulk: BulkSettings,
    pub ledger: LedgerSettings,
}

#[derive(Debug, Clone, Copy)]
pub struct LedgerSettings {
    /// How long a delivery holds its person (LEDGER_LEASE_MS).
    pub lease_ms: u64,
    /// How long a delivery waits for a busy person before answering 503 (LEDGER_WAIT_MS).
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct BulkSettings {
    pub batch_size: usize,
    pub precheck: bool,
    pub fail_on_errors: Option<u32>,
}

/// A var or secret as text, `None` when unset or blank.
fn text(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

fn url(env: &Env, name: &str, problems: &mut Vec<String>) -> String {
    match text(env, name) {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => u.trim().trim_end_matches('/').to_string(),
        Some(_) => {
            problems.push(format!("{name} must be an http(s) URL"));
            String::new()
        }
        None => {
            problems.push(format!("{name} is not set"));
            String::new()
        }
    }
}

fn number(env: &Env, name: &str, default: u64, problems: &mut Vec<String>) -> u64 {
    match text(env, name).map(|v| v.trim().parse::<u64>()) {
        None => default,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            problems.push(format!("{name} must be a whole number"));
            default
        }
    }
}

impl Config {
    /// Loads everything, or lists every problem found (never a secret's value).
    pub fn load(env: &Env) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let scim_base_url = url(env, "CXONE_SCIM_BASE_URL", &mut problems);
        let token_url = url(env, "CXONE_TOKEN_URL", &mut problems);
        let mut required = |name: &str| {
            text(env, name).unwrap_or_else(|| {
                problems.push(format!("{name} is not set"));
                String::new()
            })
        };
        let client_id = required("CXONE_CLIENT_ID");
        let client_secret = SecretString::new(required("CXONE_CLIENT_SECRET"));
        let policy_text = required("ROLE_POLICY");
        let secrets_text = required("WEBHOOK_SECRETS");
        let admin_text = required("ADMIN_TOKEN");
        let policy = match RolePolicy::from_json(&policy_text) {
            Ok(p) => Some(p),
            Err(e) if !policy_text.is_empty() => {
                problems.push(e.to_string());
                None
            }
            Err(_) => None,
        };
        let webhook_secrets = match WebhookSecrets::parse_list(&secrets_text) {
            Ok(s) => Some(s),
            Err(e) if !secrets_text.is_empty() => {
                problems.push(format!("WEBHOOK_SECRETS: {e}"));
                None
            }
            Err(_) => None,
        };
        let admin_tokens = AdminTokens::parse_list(&admin_text);
        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            base_ms: number(env, "RETRY_BASE_MS", defaults.base_ms, &mut problems),
            cap_ms: number(env, "RETRY_CAP_MS", defaults.cap_ms, &mut problems),
            max_attempts: u32::try_from(number(
                env,
                "RETRY_MAX_ATTEMPTS",
                u64::from(defaults.max_attempts),
                &mut problems,
            ))
            .unwrap_or(defaults.max_attempts)
            .max(1),
            max_retry_after_ms: number(
                env,
                "RETRY_MAX_RETRY_AFTER_MS",
                defaults.max_retry_after_ms,
                &mut problems,
            ),
        };
        let subrequest_budget = u32::try_from(number(env, "SUBREQUEST_BUDGET", 50, &mut problems)).unwrap_or(50);
        if subrequest_budget < 20 {
            problems.push("SUBREQUEST_BUDGET must be at least 20".to_string());
        }
        let bulk = BulkSettings {
            batch_size: usize::try_from(number(env, "BULK_BATCH_SIZE", 50, &mut problems))
                .unwrap_or(50)
                .max(1),
            precheck: match text(env, "BULK_PRECHECK").as_deref().map(str::trim) {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => {
                    problems.push("BULK_PRECHECK must be true or false".to_string());
                    true
                }
            },
            fail_on_errors: text(env, "BULK_FAIL_ON_ERRORS")
                .map(|_| number(env, "BULK_FAIL_ON_ERRORS", 0, &mut problems))
                .and_then(|n| u32::try_from(n).ok()),
        };
        let ledger = LedgerSettings {
            lease_ms: number(env, "LEDGER_LEASE_MS", 30_000, &mut problems).max(1_000),
            wait_ms: number(env, "LEDGER_WAIT_MS", 3_000, &mut problems),
        };
        if env.kv(KV_BINDING).is_err() {
            problems.push(format!("KV namespace binding {KV_BINDING} is missing"));
        }
        match (policy, webhook_secrets, admin_tokens, problems.is_empty()) {
            (Some(policy), Some(webhook_secrets), Some(admin_tokens), true) => Ok(Self {
                scim_base_url,
                credentials: ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    scope: text(env, "CXONE_SCOPE"),
                },
                policy,
                webhook_secrets,
                admin_tokens,
                retry,
                subrequest_budget,
                bulk,
                ledger,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
pub(crate) mod tests {
    use super::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_test::wasm_bindgen_test;

    pub const POLICY: &str = r#"{"version":1,"mode":"strict","mappings":[{"group":"cxone-agent","role":"Agent"}]}"#;
    pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// An `Env` made of plain string bindings (no KV).
    pub fn env_of(pairs: &[(&str, &str)]) -> Env {
        let obj = js_sys::Object::new();
        for (k, v) in pairs {
            js_sys::Reflect::set(&obj, &JsValue::from_str(k), &JsValue::from_str(v)).unwrap();
        }
        obj.unchecked_into::<Env>()
    }

    pub fn full_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CXONE_SCIM_BASE_URL", "http://127.0.0.1:1/scim/v2/"),
            ("CXONE_TOKEN_URL", "http://127.0.0.1:1/oauth/token"),
            ("CXONE_CLIENT_ID", "cid"),
            ("CXONE_CLIENT_SECRET", "csecret"),
            ("ROLE_POLICY", POLICY),
            ("WEBHOOK_SECRETS", SECRET),
            ("ADMIN_TOKEN", "a1, a2"),
        ]
    }

    #[wasm_bindgen_test]
    fn lists_every_problem_without_values() {
        let problems = Config::load(&env_of(&[
            ("ROLE_POLICY", "{\"version\":1,"),
            ("CXONE_CLIENT_SECRET", "topsecret"),
        ]))
        .unwrap_err();
        let all = problems.join("\n");
        for want in [
            "CXONE_SCIM_BASE_URL is not set",
            "CXONE_TOKEN_URL is not set",
            "WEBHOOK_SECRETS is not set",
            "ADMIN_TOKEN is not set",
            "ROLE_POLICY is not valid JSON at line 1",
            "KV namespace binding STATE is missing",
        ] {
            assert!(all.contains(want), "{want:?} missing from {all}");
        }
        assert!(!all.contains("topsecret"));
    }

    #[wasm_bindgen_test]
    fn reads_a_complete_configuration_except_kv() {
        let problems = Config::load(&env_of(&full_env())).unwrap_err();
        assert_eq!(problems, ["KV namespace binding STATE is missing"]);
        let mut bad = full_env();
        bad.push(("RETRY_MAX_ATTEMPTS", "many"));
        bad[5] = ("WEBHOOK_SECRETS", "plain-text");
        let problems = Config::load(&env_of(&bad)).unwrap_err().join("\n");
        assert!(
            problems.contains("RETRY_MAX_ATTEMPTS must be a whole number"),
            "{problems}"
        );
        assert!(
            problems.contains("WEBHOOK_SECRETS: webhook secret #1 does not start with \"whsec_\""),
            "{problems}"
        );
    }
}

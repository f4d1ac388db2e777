//! Configuration: the settings core reads from the Worker's vars and secrets, and the bindings.

use cxone_scim_core::admin::AdminTokens;
use cxone_scim_core::settings::Settings;
use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;
use worker::Env;

pub const KV_BINDING: &str = "STATE";
pub const LEDGER_BINDING: &str = "LEDGER";
pub const BULK_BINDING: &str = "BULK_RUNS";
pub const SYNC_BINDING: &str = "GRAPH_SYNC";
pub const AUDIT_BINDING: &str = "AUDIT";
pub const LEAVER_BATCH_BINDING: &str = "DEPROVISION_BATCHES";

/// [`Settings`] from a Worker environment whose bindings are all there.
#[derive(Debug, Clone)]
pub struct Config(Settings);

impl Deref for Config {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.0
    }
}

/// A var or secret as text (`Settings` treats blank as unset).
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

/// The admin tokens alone, readable when the rest of the configuration is broken.
pub fn admin_tokens(env: &Env) -> Option<AdminTokens> {
    var(env, "ADMIN_TOKEN").and_then(|raw| AdminTokens::parse_list(&raw).ok())
}

thread_local! {
    /// The configuration as first loaded in this isolate: vars and secrets do not change under
    /// a running isolate (a new value is a new deployment), so the policy is parsed once.
    static LOADED: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

impl Config {
    /// [`Config::load`] once per isolate; a configuration with problems is not kept (each call
    /// reports them afresh).
    pub fn shared(env: &Env) -> Result<Rc<Self>, Vec<String>> {
        if let Some(config) = LOADED.with(|l| l.borrow().clone()) {
            return Ok(config);
        }
        let config = Rc::new(Self::load(env)?);
        LOADED.with(|l| *l.borrow_mut() = Some(config.clone()));
        Ok(config)
    }

    /// Loads everything, or lists every problem found (never a secret's value).
    pub fn load(env: &Env) -> Result<Self, Vec<String>> {
        let settings = Settings::from_vars(|name| var(env, name));
        let mut problems = settings.as_ref().err().cloned().unwrap_or_default();
        if env.kv(KV_BINDING).is_err() {
            problems.push(format!("KV namespace binding {KV_BINDING} is missing"));
        }
        if env.durable_object(LEDGER_BINDING).is_err() {
            problems.push(format!("Durable Object binding {LEDGER_BINDING} is missing"));
        }
        if env.durable_object(BULK_BINDING).is_err() {
            problems.push(format!("Durable Object binding {BULK_BINDING} is missing"));
        }
        if env.durable_object(AUDIT_BINDING).is_err() {
            problems.push(format!("Durable Object binding {AUDIT_BINDING} is missing"));
        }
        if env.durable_object(LEAVER_BATCH_BINDING).is_err() {
            problems.push(format!("Durable Object binding {LEAVER_BATCH_BINDING} is missing"));
        }
        let graph = settings.as_ref().is_ok_and(|s| s.graph.is_some());
        if graph && env.durable_object(SYNC_BINDING).is_err() {
            problems.push(format!(
                "Durable Object binding {SYNC_BINDING} is missing (Graph sync is configured)"
            ));
        }
        match settings {
            Ok(settings) if problems.is_empty() => Ok(Self(settings)),
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

    pub const BINDING_PROBLEMS: [&str; 5] = [
        "KV namespace binding STATE is missing",
        "Durable Object binding LEDGER is missing",
        "Durable Object binding BULK_RUNS is missing",
        "Durable Object binding AUDIT is missing",
        "Durable Object binding DEPROVISION_BATCHES is missing",
    ];

    /// An `Env` made of plain string bindings (no KV, no Durable Object).
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
            (
                "ADMIN_TOKEN",
                "edge-admin-token-one-0123456789abcdef, edge-admin-token-two-0123456789abcdef",
            ),
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
            "Durable Object binding LEDGER is missing",
            "Durable Object binding BULK_RUNS is missing",
        ] {
            assert!(all.contains(want), "{want:?} missing from {all}");
        }
        assert!(!all.contains("topsecret"));
    }

    #[wasm_bindgen_test]
    fn reads_a_complete_configuration_except_the_bindings() {
        let problems = Config::load(&env_of(&full_env())).unwrap_err();
        assert_eq!(problems, BINDING_PROBLEMS);
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

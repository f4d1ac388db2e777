//! The webhook's CPU cost inside wasm32 (release build, as deployed), for `make bench`:
//! an ignored test that prints one `BENCH {...}` line. It asserts only that the work succeeds.

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use cxone_scim_core::event::LifecycleEvent;
    use cxone_scim_core::flows::{Flow, LifecycleFlow};
    use cxone_scim_core::policy::RolePolicy;
    use cxone_scim_core::retry::RetryPolicy;
    use cxone_scim_core::webhook::{sign, verify, SignatureHeaders, WebhookSecret, WebhookSecrets};
    use wasm_bindgen::JsValue;
    use wasm_bindgen_test::{console_log, wasm_bindgen_test};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const POLICY: &str = include_str!("../../core/tests/fixtures/role_policy.json");

    fn now_ms() -> f64 {
        let perf = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance")).unwrap();
        let now = js_sys::Reflect::get(&perf, &JsValue::from_str("now")).unwrap();
        js_sys::Function::from(now).call0(&perf).unwrap().as_f64().unwrap()
    }

    fn per_op_us(n: u32, mut f: impl FnMut()) -> f64 {
        for _ in 0..n / 10 {
            f();
        }
        let start = now_ms();
        for _ in 0..n {
            f();
        }
        (now_ms() - start) * 1000.0 / f64::from(n)
    }

    #[wasm_bindgen_test]
    #[ignore = "benchmark: `make bench` runs it"]
    fn webhook_cost_in_wasm() {
        let mut event = serde_json::json!({"operation":"update","userName":"jdoe@example.com","externalId":"e-1",
            "firstName":"Jane","lastName":"Doe","groups":[{"displayName":"cxone-agent"}],"accountEnabled":true});
        let pad = 2048 - serde_json::to_vec(&event).unwrap().len() - 10;
        event["note"] = serde_json::Value::String("x".repeat(pad));
        let body = serde_json::to_vec(&event).unwrap();
        assert_eq!(body.len(), 2048);
        let sig = sign(
            &WebhookSecret::parse(SECRET).unwrap(),
            "msg_bench",
            1_700_000_000,
            &body,
        );
        let secrets = WebhookSecrets::parse_list(SECRET).unwrap();
        let headers = SignatureHeaders {
            id: Some("msg_bench"),
            timestamp: Some("1700000000"),
            signature: Some(&sig),
        };
        let policy = RolePolicy::from_json(POLICY).unwrap();
        let verify_us = per_op_us(5000, || {
            verify(&secrets, headers, &body, 1_700_000_000).unwrap();
        });
        let handle_us = per_op_us(5000, || {
            verify(&secrets, headers, &body, 1_700_000_000).unwrap();
            let event = LifecycleEvent::from_json(&body).unwrap();
            let (command, _) = event.command(&policy, &Default::default()).unwrap();
            let mut flow = LifecycleFlow::new(
                "https://cxone.example/scim/v2",
                Default::default(),
                command,
                RetryPolicy::default(),
                1,
            );
            assert!(matches!(flow.next_step(0), cxone_scim_core::flows::Step::Send(_)));
        });
        console_log!("BENCH {{\"wasmVerify2KiBUs\":{verify_us:.3},\"wasmHandleCore2KiBUs\":{handle_us:.3}}}");
    }
}

//! `/ServiceProviderConfig` (RFC 7643 §5): which optional features the server supports and its
//! Bulk and filter limits.
//!
//! Read leniently: the document is advisory, so an attribute that is missing or of an odd shape
//! reads as "not said" (`None`, empty) instead of making the whole document unreadable, booleans
//! may be `"true"`/`"False"` strings and numbers may be strings.

use super::lenient;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProviderConfig {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub schemas: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::or_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub documentation_uri: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub patch: Feature,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub bulk: BulkFeature,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub filter: FilterFeature,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub change_password: Feature,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub sort: Feature,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub etag: Feature,
    /// Kept as sent: nothing here authenticates with them.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub authentication_schemes: Vec<Value>,
}

/// An optional feature: `supported` is `None` when the server did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feature {
    #[serde(default, deserialize_with = "said_bool", skip_serializing_if = "Option::is_none")]
    pub supported: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkFeature {
    #[serde(default, deserialize_with = "said_bool", skip_serializing_if = "Option::is_none")]
    pub supported: Option<bool>,
    /// Operations per Bulk request.
    #[serde(default, deserialize_with = "said_count", skip_serializing_if = "Option::is_none")]
    pub max_operations: Option<u64>,
    /// Bytes per Bulk request.
    #[serde(default, deserialize_with = "said_count", skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterFeature {
    #[serde(default, deserialize_with = "said_bool", skip_serializing_if = "Option::is_none")]
    pub supported: Option<bool>,
    /// Resources per answer to a filtered query.
    #[serde(default, deserialize_with = "said_count", skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u64>,
}

/// The Bulk limits the server states; a limit of 0 is taken as not stated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkLimits {
    pub max_operations: Option<usize>,
    pub max_payload_bytes: Option<usize>,
}

impl ServiceProviderConfig {
    /// Reads the document; fails only when the body is not a JSON object.
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// Whether Bulk is supported; `None` when the server did not say.
    pub fn bulk_supported(&self) -> Option<bool> {
        self.bulk.supported
    }

    pub fn bulk_limits(&self) -> BulkLimits {
        BulkLimits {
            max_operations: positive(self.bulk.max_operations),
            max_payload_bytes: positive(self.bulk.max_payload_size),
        }
    }
}

/// A stated limit: 0 says nothing, and one beyond `usize` is no limit here.
fn positive(n: Option<u64>) -> Option<usize> {
    n.filter(|n| *n > 0).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A lenient boolean; anything else (`null`, `"maybe"`, `1`) is not said.
fn said_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    struct B(#[serde(deserialize_with = "lenient::bool_")] bool);
    Ok(lenient::or_default::<_, Option<B>>(d)?.map(|B(b)| b))
}

/// A count as a number or a string; anything else (`null`, `-1`, `1.5`, `"many"`) is not said.
fn said_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct N(#[serde(deserialize_with = "lenient::count")] u64);
    Ok(lenient::or_default::<_, Option<N>>(d)?.map(|N(n)| n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const RFC: &str = include_str!("../../tests/fixtures/rfc7643_service_provider_config.json");
    const STANDIN: &str = include_str!("../../tests/fixtures/standin_service_provider_config.json");

    fn supported(f: Feature) -> Option<bool> {
        f.supported
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_rfc_sample() {
        let c = ServiceProviderConfig::parse(RFC).unwrap();
        assert_eq!(c.schemas, [SERVICE_PROVIDER_CONFIG_SCHEMA]);
        assert_eq!(
            c.documentation_uri.as_deref(),
            Some("http://example.com/help/scim.html")
        );
        for f in [c.patch, c.change_password, c.sort, c.etag] {
            assert_eq!(supported(f), Some(true));
        }
        assert_eq!(
            c.bulk,
            BulkFeature {
                supported: Some(true),
                max_operations: Some(1000),
                max_payload_size: Some(1_048_576)
            }
        );
        assert_eq!(
            c.filter,
            FilterFeature {
                supported: Some(true),
                max_results: Some(200)
            }
        );
        assert_eq!(c.bulk_supported(), Some(true));
        assert_eq!(
            c.bulk_limits(),
            BulkLimits {
                max_operations: Some(1000),
                max_payload_bytes: Some(1_048_576)
            }
        );
        let types: Vec<&str> = c
            .authentication_schemes
            .iter()
            .filter_map(|s| s["type"].as_str())
            .collect();
        assert_eq!(types, ["oauthbearertoken", "httpbasic"]);
        assert_eq!(c.authentication_schemes[0]["primary"], true);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_what_scim2_server_answers() {
        let c = ServiceProviderConfig::parse(STANDIN).unwrap();
        assert_eq!(c.bulk_supported(), Some(true));
        assert_eq!(
            c.bulk_limits(),
            BulkLimits {
                max_operations: Some(1000),
                max_payload_bytes: Some(1_048_576)
            }
        );
        assert_eq!(c.filter.max_results, Some(1000));
        assert_eq!(c.documentation_uri, None);
        assert_eq!(c.authentication_schemes.len(), 1);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_empty_document_says_nothing() {
        let c = ServiceProviderConfig::parse("{}").unwrap();
        assert_eq!(c, ServiceProviderConfig::default());
        assert_eq!(c.bulk_supported(), None);
        assert_eq!(c.bulk_limits(), BulkLimits::default());
        let c = ServiceProviderConfig::parse(r#"{"bulk":{}}"#).unwrap();
        assert_eq!(c.bulk_supported(), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn strings_for_booleans_and_numbers() {
        let c = ServiceProviderConfig::parse(
            r#"{"bulk":{"supported":"True","maxOperations":"50","maxPayloadSize":" 65536 "},
                "filter":{"supported":"FALSE","maxResults":"100"},"etag":{"supported":"false"}}"#,
        )
        .unwrap();
        assert_eq!(c.bulk_supported(), Some(true));
        assert_eq!(
            c.bulk_limits(),
            BulkLimits {
                max_operations: Some(50),
                max_payload_bytes: Some(65_536)
            }
        );
        assert_eq!(
            c.filter,
            FilterFeature {
                supported: Some(false),
                max_results: Some(100)
            }
        );
        assert_eq!(c.etag.supported, Some(false));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn odd_attributes_read_as_not_said_and_hide_nothing_else() {
        let c = ServiceProviderConfig::parse(
            r#"{"schemas":"urn:x","documentationUri":7,"patch":true,"filter":null,
                "sort":{"supported":"maybe"},"authenticationSchemes":{"type":"httpbasic"},
                "bulk":{"supported":false,"maxOperations":-1,"maxPayloadSize":1.5}}"#,
        )
        .unwrap();
        assert_eq!(c.bulk_supported(), Some(false));
        assert_eq!(c.bulk_limits(), BulkLimits::default());
        assert_eq!(
            (c.patch.supported, c.sort.supported, c.filter.supported),
            (None, None, None)
        );
        assert!(c.schemas.is_empty() && c.authentication_schemes.is_empty());
        assert_eq!(c.documentation_uri, None);
        // A limit of 0 is not a limit.
        let c = ServiceProviderConfig::parse(r#"{"bulk":{"maxOperations":0,"maxPayloadSize":"0"}}"#).unwrap();
        assert_eq!(c.bulk_limits(), BulkLimits::default());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_a_body_that_is_not_json_fails() {
        assert!(ServiceProviderConfig::parse("<html>").is_err());
        assert!(ServiceProviderConfig::parse(r#"{"bulk":"#).is_err());
        assert!(ServiceProviderConfig::parse("42").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn writes_back_what_it_read() {
        let c = ServiceProviderConfig::parse(RFC).unwrap();
        let again = ServiceProviderConfig::parse(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }
}

//! What a Microsoft Entra ID non-gallery enterprise application needs to provision NICE CXone
//! users over SCIM: the Tenant URL, how the bearer token is obtained, the attribute mappings, and
//! what CXone does not do. Plain data built by [`provider_config`]; no I/O.
//!
//! Sources, and how far they go:
//! - Paths: NICE's UserHub SCIM API (`/scim/v2/Users`: search with a `userName eq` filter,
//!   create, read, replace, patch; no DELETE, no `/Bulk`, no `/Groups`).
//! - Token: NICE's developer documentation ("UserHub: Getting Started") posts
//!   `{"accessKeyId","accessKeySecret"}` as JSON to
//!   `https://na1.nice-incontact.com/authentication/v1/token/access-key` and names the areas
//!   `na1`, `au1` and `eu1`.
//! - Hosts: only the `na1` host appears in NICE's documents. The `au1` and `eu1` hosts come from
//!   public CXone client code (`eu1` is on `niceincontact.com`, without the hyphen). NICE
//!   publishes no host for dev/test tenants: [`DEVTEST_HOST_PATTERN`] is an unconfirmed default.
//!   Every host is replaced by a base URL when one is given.
//! - CXone help ("Provision employee accounts with SCIM"): accounts cannot be deleted, only
//!   deactivated; Username, First Name, Last Name and Email are required.
//! - Microsoft Entra documentation: a non-gallery application takes a Tenant URL and one fixed
//!   Secret Token, and quarantines the provisioning job when that token expires.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use url::{Host, Url};

/// Which CXone environment the Entra application provisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Prod,
    Devtest,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Prod => "prod",
            Environment::Devtest => "devtest",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = ProviderConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "prod" => Ok(Environment::Prod),
            "devtest" => Ok(Environment::Devtest),
            _ => Err(ProviderConfigError::UnknownEnvironment(s.to_string())),
        }
    }
}

/// Why no configuration could be built. Nothing here carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderConfigError {
    #[error("unknown environment {0:?}: expected prod or devtest")]
    UnknownEnvironment(String),
    #[error("region {0:?} is not an area name (letters and digits, e.g. na1)")]
    InvalidRegion(String),
    #[error(
        "no known CXone host for region {region:?}: the known areas are na1, au1 and eu1; \
         give your CXone host as the base URL (--base-url)"
    )]
    UnknownRegion { region: String },
    #[error("base URL {0:?} is not an absolute URL (e.g. https://na1.nice-incontact.com)")]
    BaseUrlMalformed(String),
    #[error("base URL {url:?}: scheme {scheme:?} is not http or https")]
    BaseUrlScheme { url: String, scheme: String },
    #[error("base URL {0:?} has no host")]
    BaseUrlNoHost(String),
    #[error("base URL {0:?} must be https (plain http only on loopback): the bearer token is sent there")]
    BaseUrlNotHttps(String),
    #[error("base URL must not carry a user name or password")]
    BaseUrlUserInfo,
    #[error("base URL {0:?} must not carry a query or a fragment")]
    BaseUrlQuery(String),
}

/// Where the host in a configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostSource {
    /// The host appears in NICE's own documents.
    Documented,
    /// NICE names the area; the host is taken from public CXone client code.
    Observed,
    /// No source confirms the host: a default pattern, to be replaced by a base URL.
    UnconfirmedDefault,
    /// The caller's base URL.
    BaseUrl,
}

struct Area {
    region: &'static str,
    host: &'static str,
    source: HostSource,
    note: &'static str,
}

/// The areas NICE names ("UserHub: Getting Started"), with their production hosts.
const AREAS: [Area; 3] = [
    Area {
        region: "na1",
        host: "https://na1.nice-incontact.com",
        source: HostSource::Documented,
        note: "NICE's developer documentation (UserHub: Getting Started) uses this host for the access-key token",
    },
    Area {
        region: "au1",
        host: "https://au1.nice-incontact.com",
        source: HostSource::Observed,
        note: "NICE names the au1 area; this host is taken from public CXone client code, not from a NICE document",
    },
    Area {
        region: "eu1",
        host: "https://eu1.niceincontact.com",
        source: HostSource::Observed,
        note: "NICE names the eu1 area; this host (niceincontact.com, no hyphen) is taken from public CXone client \
               code, not from a NICE document",
    },
];

/// The default host pattern for `devtest`. NICE publishes no dev/test host for customers;
/// `{region}.test.nice-incontact.com` only appears in public code for NICE's own test
/// environment, so a configuration built from it says so and asks for a base URL.
pub const DEVTEST_HOST_PATTERN: &str = "https://{region}.test.nice-incontact.com";
/// NICE's UserHub SCIM root, below the host.
pub const SCIM_PATH: &str = "/scim/v2";
/// CXone's access-key token exchange, below the host.
pub const ACCESS_KEY_TOKEN_PATH: &str = "/authentication/v1/token/access-key";
/// NICE's user extension schema.
pub const NICE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:nice:2.0:User";
/// The team attribute of NICE's user extension, as Entra names a target attribute.
pub const NICE_TEAM_ATTRIBUTE: &str = "urn:ietf:params:scim:schemas:extension:nice:2.0:User:team";
/// Entra's expression that turns a soft-deleted (or unassigned) user into `active: false`.
pub const ACTIVE_EXPRESSION: &str = r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#;

/// Everything an Entra administrator enters, and what to leave out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    pub environment: Environment,
    pub region: String,
    /// The CXone host (scheme, host, optional path prefix), without a trailing slash.
    pub host: String,
    pub host_source: HostSource,
    pub host_note: String,
    /// Entra's Tenant URL: the SCIM root; Entra appends `/Users`.
    pub tenant_url: String,
    pub token: TokenConfig,
    pub attribute_mappings: Vec<AttributeMapping>,
    /// What CXone requires on a create, as SCIM attribute paths.
    pub required_attributes: Vec<&'static str>,
    pub nice_extension: NiceExtension,
    pub capabilities: Capabilities,
    /// Settings to change in Entra's provisioning pages.
    pub entra_settings: Vec<&'static str>,
    pub notes: Vec<&'static str>,
    /// The same CXone target for this bridge instead (`wrangler.toml` vars and secrets).
    pub bridge: BridgeSettings,
    /// Anything unconfirmed about this configuration; empty when nothing is.
    pub warnings: Vec<String>,
}

/// How the bearer token that goes into Entra's Secret Token is obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenConfig {
    pub token_type: &'static str,
    pub entra_field: &'static str,
    pub request: TokenRequest,
    /// The answer's field that holds the token.
    pub answer_field: &'static str,
    pub note: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    pub method: &'static str,
    pub url: String,
    pub content_type: &'static str,
    pub body: AccessKeyBody,
}

/// The JSON body of the access-key exchange, with placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyBody {
    pub access_key_id: &'static str,
    pub access_key_secret: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MappingType {
    Direct,
    Expression,
}

/// One row of Entra's attribute mapping for users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMapping {
    /// The Entra attribute, or the expression.
    pub source: &'static str,
    /// The SCIM attribute CXone receives.
    pub target: &'static str,
    pub mapping_type: MappingType,
    /// Entra's matching attribute (precedence 1).
    pub matching: bool,
    /// CXone requires it on a create.
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NiceExtension {
    pub schema: &'static str,
    pub team_attribute: &'static str,
    pub team_shape: &'static str,
    pub note: &'static str,
}

/// What CXone's SCIM API offers, as NICE publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub delete: bool,
    pub bulk: bool,
    pub groups: bool,
    pub filters: Vec<&'static str>,
    pub deprovisioning: &'static str,
}

/// This bridge's settings for the same target (names as in `cxone_scim_core::settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeSettings {
    #[serde(rename = "CXONE_SCIM_BASE_URL")]
    pub scim_base_url: String,
    #[serde(rename = "CXONE_AUTH")]
    pub auth: &'static str,
    #[serde(rename = "CXONE_TOKEN_URL")]
    pub token_url: String,
    pub secrets: Vec<&'static str>,
}

/// Builds the configuration for `env` in `region` (an area name such as `na1`, any case), or at
/// `base_url` when one is given: the CXone host root, http(s) only; a trailing `/scim/v2` is
/// accepted and dropped. With a base URL the region is only reported.
pub fn provider_config(
    env: Environment,
    region: &str,
    base_url: Option<&str>,
) -> Result<ProviderConfig, ProviderConfigError> {
    let region = parse_region(region)?;
    let (host, host_source, host_note) = match base_url {
        Some(raw) => (
            parse_base_url(raw)?,
            HostSource::BaseUrl,
            "the base URL given; it replaces the area default".to_string(),
        ),
        None => {
            let area = AREAS
                .iter()
                .find(|a| a.region == region)
                .ok_or_else(|| ProviderConfigError::UnknownRegion { region: region.clone() })?;
            match env {
                Environment::Prod => (area.host.to_string(), area.source, area.note.to_string()),
                Environment::Devtest => (
                    DEVTEST_HOST_PATTERN.replace("{region}", area.region),
                    HostSource::UnconfirmedDefault,
                    format!(
                        "default pattern {DEVTEST_HOST_PATTERN}: NICE publishes no dev/test host; the pattern only \
                         appears in public code for NICE's own test environment"
                    ),
                ),
            }
        }
    };
    let mut warnings = Vec::new();
    match host_source {
        HostSource::Documented | HostSource::BaseUrl => {}
        HostSource::Observed => warnings.push(format!(
            "the {region} host {host} is not in NICE's documents; confirm it with NICE (Entra's Test Connection \
             checks it) or give the host with --base-url"
        )),
        HostSource::UnconfirmedDefault => warnings.push(format!(
            "{host} is an unconfirmed default for devtest; ask NICE for your dev/test tenant's host and pass it \
             with --base-url"
        )),
    }
    let tenant_url = format!("{host}{SCIM_PATH}");
    let token_url = format!("{host}{ACCESS_KEY_TOKEN_PATH}");
    Ok(ProviderConfig {
        environment: env,
        region,
        host_source,
        host_note,
        token: TokenConfig {
            token_type: "Bearer",
            entra_field: "Secret Token",
            request: TokenRequest {
                method: "POST",
                url: token_url.clone(),
                content_type: "application/json",
                body: AccessKeyBody {
                    access_key_id: "<access key id>",
                    access_key_secret: "<access key secret>",
                },
            },
            answer_field: "access_token",
            note: "Entra keeps one fixed Secret Token for a non-gallery application and quarantines the \
                   provisioning job when it expires. A CXone access-key token expires (expires_in in the \
                   answer), so a token pasted into Entra serves a Test Connection and a short trial only; for \
                   continuous provisioning let this bridge exchange the access key for fresh tokens (bridge \
                   settings).",
        },
        attribute_mappings: attribute_mappings(),
        required_attributes: vec![
            "userName",
            "name.givenName",
            "name.familyName",
            r#"emails[type eq "work"].value"#,
        ],
        nice_extension: NiceExtension {
            schema: NICE_USER_SCHEMA,
            team_attribute: NICE_TEAM_ATTRIBUTE,
            team_shape: "team{display,value}",
            note: "optional; enable Team on CXone's Account Settings page first, then add the attribute in Entra \
                   (Show advanced options > Edit attribute list)",
        },
        capabilities: Capabilities {
            delete: false,
            bulk: false,
            groups: false,
            filters: vec!["userName eq"],
            deprovisioning: "deactivate: active false (CXone cannot delete accounts)",
        },
        entra_settings: vec![
            "Provisioning Mode: Automatic; Tenant URL and Secret Token as above",
            "Mappings: disable Provision Microsoft Entra ID Groups (NICE publishes no /Groups endpoint)",
            "Matching: userName only, matching precedence 1 (CXone answers userName eq filters only)",
            "Target Object Actions: keep Create and Update, clear Delete (leavers are deactivated through active)",
        ],
        notes: vec![
            "NICE publishes the SCIM paths (/scim/v2/Users) but not the SCIM host per area: the Tenant URL assumes \
             the area host that serves the access-key token; Entra's Test Connection (a userName eq query for a \
             random GUID) confirms it",
            "no Bulk: Entra sends one request per user, which is what CXone takes",
            "new users get the Agent role unless a different default role is enabled; without an Agent role CXone \
             refuses the create",
            "Display Name, Team, Primary Role and similar fields must be enabled on CXone's Account Settings page \
             before CXone takes them",
            "changes flow one way, from Entra to CXone",
        ],
        bridge: BridgeSettings {
            scim_base_url: tenant_url.clone(),
            auth: "access_key",
            token_url,
            secrets: vec!["CXONE_ACCESS_KEY_ID", "CXONE_ACCESS_KEY_SECRET"],
        },
        tenant_url,
        host,
        warnings,
    })
}

fn attribute_mappings() -> Vec<AttributeMapping> {
    let direct = |source, target, required, note| AttributeMapping {
        source,
        target,
        mapping_type: MappingType::Direct,
        matching: false,
        required,
        note,
    };
    vec![
        AttributeMapping {
            matching: true,
            ..direct("userPrincipalName", "userName", true, None)
        },
        AttributeMapping {
            mapping_type: MappingType::Expression,
            ..direct(ACTIVE_EXPRESSION, "active", false, Some("deprovisioning: unassigned or soft-deleted users become active false"))
        },
        direct("givenName", "name.givenName", true, None),
        direct("surname", "name.familyName", true, None),
        direct("mail", r#"emails[type eq "work"].value"#, true, None),
        direct(
            "objectId",
            "externalId",
            false,
            Some("CXone's create schema does not list externalId and no externalId filter is published: never match on it"),
        ),
        direct(
            "displayName",
            "displayName",
            false,
            Some("taken once Display Name is enabled on CXone's Account Settings page"),
        ),
    ]
}

fn parse_region(raw: &str) -> Result<String, ProviderConfigError> {
    let region = raw.trim().to_ascii_lowercase();
    if region.is_empty() || region.len() > 16 || !region.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ProviderConfigError::InvalidRegion(raw.to_string()));
    }
    Ok(region)
}

/// The CXone host root from a base URL: scheme, host, port and path prefix, with no trailing
/// slash and no `/scim/v2`.
fn parse_base_url(raw: &str) -> Result<String, ProviderConfigError> {
    let text = raw.trim();
    if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return Err(ProviderConfigError::BaseUrlMalformed(text.to_string()));
    }
    let url = Url::parse(text).map_err(|e| match e {
        url::ParseError::EmptyHost => ProviderConfigError::BaseUrlNoHost(text.to_string()),
        _ => ProviderConfigError::BaseUrlMalformed(text.to_string()),
    })?;
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(ProviderConfigError::BaseUrlScheme {
            url: text.to_string(),
            scheme: scheme.to_string(),
        });
    }
    // WHATWG parsing skips missing or extra slashes after a special scheme (`https:///x` → `x`).
    match text.get(scheme.len()..).and_then(|rest| rest.strip_prefix("://")) {
        None => return Err(ProviderConfigError::BaseUrlMalformed(text.to_string())),
        Some(rest) if rest.starts_with('/') => return Err(ProviderConfigError::BaseUrlNoHost(text.to_string())),
        Some(_) => {}
    }
    let host = url
        .host()
        .ok_or_else(|| ProviderConfigError::BaseUrlNoHost(text.to_string()))?;
    if scheme == "http" && !is_loopback(&host) {
        return Err(ProviderConfigError::BaseUrlNotHttps(text.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ProviderConfigError::BaseUrlUserInfo);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ProviderConfigError::BaseUrlQuery(text.to_string()));
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix(SCIM_PATH).unwrap_or(path).trim_end_matches('/');
    Ok(format!("{}{path}", url.origin().ascii_serialization()))
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

impl ProviderConfig {
    /// The configuration for people: what to type where in Entra, then what CXone does not do.
    pub fn to_text(&self) -> String {
        let mut lines = vec![
            "NICE CXone: SCIM provisioning from a Microsoft Entra ID non-gallery enterprise application".to_string(),
            format!("Environment: {}   Region: {}", self.environment, self.region),
            format!("Host:        {}", self.host),
            format!(
                "             ({}: {})",
                host_source_text(self.host_source),
                self.host_note
            ),
            String::new(),
            "Admin Credentials (Provisioning)".to_string(),
            format!("  Tenant URL:    {}", self.tenant_url),
            format!(
                "  {}:  a CXone {} token, the \"{}\" of",
                self.token.entra_field, self.token.token_type, self.token.answer_field
            ),
            format!(
                "                 {} {}",
                self.token.request.method, self.token.request.url
            ),
            format!("                 Content-Type: {}", self.token.request.content_type),
            format!(
                "                 {{\"accessKeyId\":\"{}\",\"accessKeySecret\":\"{}\"}}",
                self.token.request.body.access_key_id, self.token.request.body.access_key_secret
            ),
            format!("  Note: {}", self.token.note),
            String::new(),
            "Attribute mappings (Mappings > Provision Microsoft Entra ID Users)".to_string(),
        ];
        for m in &self.attribute_mappings {
            let mut tags = Vec::new();
            if m.mapping_type == MappingType::Expression {
                tags.push("expression".to_string());
            }
            if m.matching {
                tags.push("matching, precedence 1".to_string());
            }
            if m.required {
                tags.push("required".to_string());
            }
            if let Some(note) = m.note {
                tags.push(note.to_string());
            }
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join("; "))
            };
            lines.push(format!("  {} -> {}{tags}", m.source, m.target));
        }
        lines.push(format!("  Required by CXone: {}", self.required_attributes.join(", ")));
        lines.push(format!(
            "  NICE extension: {} ({}; {})",
            self.nice_extension.team_attribute, self.nice_extension.team_shape, self.nice_extension.note
        ));
        lines.push(String::new());
        lines.push("Entra settings".to_string());
        lines.extend(self.entra_settings.iter().map(|s| format!("  - {s}")));
        lines.push(String::new());
        lines.push("CXone limits and notes".to_string());
        let c = &self.capabilities;
        lines.push(format!(
            "  delete: {}   bulk: {}   groups: {}   filters: {}",
            yes_no(c.delete),
            yes_no(c.bulk),
            yes_no(c.groups),
            c.filters.join(", ")
        ));
        lines.push(format!("  deprovisioning: {}", c.deprovisioning));
        lines.extend(self.notes.iter().map(|n| format!("  - {n}")));
        lines.push(String::new());
        lines.push("Through this bridge instead (wrangler.toml vars; secrets with wrangler secret put)".to_string());
        lines.push(format!("  CXONE_SCIM_BASE_URL = {}", self.bridge.scim_base_url));
        lines.push(format!("  CXONE_AUTH          = {}", self.bridge.auth));
        lines.push(format!("  CXONE_TOKEN_URL     = {}", self.bridge.token_url));
        lines.push(format!("  secrets: {}", self.bridge.secrets.join(", ")));
        if !self.warnings.is_empty() {
            lines.push(String::new());
            lines.push("Warnings".to_string());
            lines.extend(self.warnings.iter().map(|w| format!("  - {w}")));
        }
        lines.join("\n")
    }
}

fn host_source_text(source: HostSource) -> &'static str {
    match source {
        HostSource::Documented => "documented",
        HostSource::Observed => "default, not in NICE's documents",
        HostSource::UnconfirmedDefault => "unconfirmed default",
        HostSource::BaseUrl => "from --base-url",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn prod(region: &str, base_url: Option<&str>) -> Result<ProviderConfig, ProviderConfigError> {
        provider_config(Environment::Prod, region, base_url)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn environments_parse_in_any_case_and_nothing_else() {
        assert_eq!("prod".parse(), Ok(Environment::Prod));
        assert_eq!("DevTest".parse(), Ok(Environment::Devtest));
        for bad in ["", "production", "dev", "test"] {
            assert_eq!(
                bad.parse::<Environment>(),
                Err(ProviderConfigError::UnknownEnvironment(bad.into()))
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn prod_na1_is_the_documented_host() {
        let c = prod("na1", None).unwrap();
        assert_eq!(c.host, "https://na1.nice-incontact.com");
        assert_eq!(c.host_source, HostSource::Documented);
        assert_eq!(c.tenant_url, "https://na1.nice-incontact.com/scim/v2");
        assert_eq!(
            c.token.request.url,
            "https://na1.nice-incontact.com/authentication/v1/token/access-key"
        );
        assert_eq!(c.token.token_type, "Bearer");
        assert!(c.warnings.is_empty());
        assert_eq!(c.bridge.scim_base_url, c.tenant_url);
        assert_eq!(c.bridge.token_url, c.token.request.url);
        assert_eq!(c.bridge.auth, "access_key");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn other_areas_are_defaults_with_a_warning() {
        let eu = prod(" EU1 ", None).unwrap();
        assert_eq!(eu.region, "eu1");
        assert_eq!(eu.tenant_url, "https://eu1.niceincontact.com/scim/v2");
        assert_eq!(eu.host_source, HostSource::Observed);
        assert_eq!(eu.warnings.len(), 1);
        assert!(eu.warnings[0].contains("--base-url"), "{:?}", eu.warnings);
        let au = prod("au1", None).unwrap();
        assert_eq!(au.tenant_url, "https://au1.nice-incontact.com/scim/v2");
        assert_eq!(au.host_source, HostSource::Observed);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unknown_regions_need_a_base_url() {
        assert_eq!(
            prod("uk1", None).unwrap_err(),
            ProviderConfigError::UnknownRegion { region: "uk1".into() }
        );
        let c = prod("uk1", Some("https://uk1.example.com")).unwrap();
        assert_eq!(c.tenant_url, "https://uk1.example.com/scim/v2");
        assert_eq!(c.host_source, HostSource::BaseUrl);
        assert!(c.warnings.is_empty());
        for bad in ["", "na-1", "na1/../x", "n a1"] {
            assert_eq!(
                prod(bad, None).unwrap_err(),
                ProviderConfigError::InvalidRegion(bad.into()),
                "{bad:?}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn devtest_defaults_to_an_unconfirmed_pattern_that_a_base_url_replaces() {
        let c = provider_config(Environment::Devtest, "na1", None).unwrap();
        assert_eq!(c.host, "https://na1.test.nice-incontact.com");
        assert_eq!(c.host_source, HostSource::UnconfirmedDefault);
        assert!(c.host_note.contains(DEVTEST_HOST_PATTERN));
        assert!(c.warnings[0].contains("unconfirmed default"), "{:?}", c.warnings);
        assert!(c.to_text().contains("unconfirmed default"));
        let c = provider_config(Environment::Devtest, "na1", Some("https://dev.cxone.example")).unwrap();
        assert_eq!(c.tenant_url, "https://dev.cxone.example/scim/v2");
        assert!(c.warnings.is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn base_urls_are_roots_and_a_pasted_tenant_url_is_accepted() {
        for (given, host) in [
            ("https://cxone.example", "https://cxone.example"),
            ("https://cxone.example/", "https://cxone.example"),
            ("https://cxone.example/scim/v2", "https://cxone.example"),
            ("https://cxone.example/scim/v2/", "https://cxone.example"),
            (
                "  https://CXONE.example:8443/proxy/  ",
                "https://cxone.example:8443/proxy",
            ),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("http://localhost:9000/scim/v2", "http://localhost:9000"),
            ("http://[::1]:9000", "http://[::1]:9000"),
        ] {
            let c = prod("na1", Some(given)).unwrap();
            assert_eq!(c.host, host, "{given:?}");
            assert_eq!(c.tenant_url, format!("{host}/scim/v2"));
            assert_eq!(
                c.token.request.url,
                format!("{host}/authentication/v1/token/access-key")
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn base_urls_that_are_not_http_s_roots_are_refused() {
        use ProviderConfigError as E;
        let err = |u: &str| prod("na1", Some(u)).unwrap_err();
        assert_eq!(
            err("ftp://cxone.example"),
            E::BaseUrlScheme {
                url: "ftp://cxone.example".into(),
                scheme: "ftp".into()
            }
        );
        assert!(matches!(err("javascript:alert(1)"), E::BaseUrlScheme { .. }));
        assert!(matches!(err("file:///etc/passwd"), E::BaseUrlScheme { .. }));
        assert_eq!(
            err("na1.nice-incontact.com"),
            E::BaseUrlMalformed("na1.nice-incontact.com".into())
        );
        assert!(matches!(err(""), E::BaseUrlMalformed(_)));
        assert!(matches!(err("https://cx one.example"), E::BaseUrlMalformed(_)));
        assert!(matches!(err("https:cxone.example"), E::BaseUrlMalformed(_)));
        assert!(matches!(err("https:///cxone.example"), E::BaseUrlNoHost(_)));
        assert!(matches!(err("https://"), E::BaseUrlNoHost(_)));
        assert!(matches!(err("http://cxone.example"), E::BaseUrlNotHttps(_)));
        assert_eq!(err("https://user:pw@cxone.example"), E::BaseUrlUserInfo);
        assert!(matches!(err("https://cxone.example/?a=b"), E::BaseUrlQuery(_)));
        assert!(matches!(err("https://cxone.example/#x"), E::BaseUrlQuery(_)));
        // The password never shows in a message.
        assert!(!err("https://user:hunter2@cxone.example")
            .to_string()
            .contains("hunter2"));
        assert!(err("ftp://x.example").to_string().contains("not http or https"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_mappings_match_on_user_name_and_deactivate_leavers() {
        let c = prod("na1", None).unwrap();
        let pairs: Vec<(&str, &str)> = c.attribute_mappings.iter().map(|m| (m.source, m.target)).collect();
        assert_eq!(
            pairs,
            [
                ("userPrincipalName", "userName"),
                (
                    r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
                    "active"
                ),
                ("givenName", "name.givenName"),
                ("surname", "name.familyName"),
                ("mail", r#"emails[type eq "work"].value"#),
                ("objectId", "externalId"),
                ("displayName", "displayName"),
            ]
        );
        let matching: Vec<&str> = c
            .attribute_mappings
            .iter()
            .filter(|m| m.matching)
            .map(|m| m.target)
            .collect();
        assert_eq!(matching, ["userName"]);
        let required: Vec<&str> = c
            .attribute_mappings
            .iter()
            .filter(|m| m.required)
            .map(|m| m.target)
            .collect();
        assert_eq!(required, c.required_attributes);
        assert!(!c.capabilities.delete && !c.capabilities.bulk && !c.capabilities.groups);
        assert_eq!(c.capabilities.filters, ["userName eq"]);
        assert_eq!(c.nice_extension.team_attribute, format!("{NICE_USER_SCHEMA}:team"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn json_is_camel_case_and_the_bridge_uses_its_variable_names() {
        let v = serde_json::to_value(prod("na1", None).unwrap()).unwrap();
        assert_eq!(v["environment"], "prod");
        assert_eq!(v["hostSource"], "documented");
        assert_eq!(v["tenantUrl"], "https://na1.nice-incontact.com/scim/v2");
        assert_eq!(v["token"]["entraField"], "Secret Token");
        assert_eq!(
            v["token"]["request"]["body"],
            serde_json::json!({"accessKeyId": "<access key id>", "accessKeySecret": "<access key secret>"})
        );
        assert_eq!(v["attributeMappings"][1]["mappingType"], "expression");
        assert_eq!(v["attributeMappings"][0]["matching"], true);
        assert!(v["attributeMappings"][0].get("note").is_none());
        assert_eq!(v["bridge"]["CXONE_AUTH"], "access_key");
        assert_eq!(
            v["bridge"]["CXONE_SCIM_BASE_URL"],
            "https://na1.nice-incontact.com/scim/v2"
        );
        assert_eq!(v["capabilities"]["delete"], false);
        assert_eq!(v["warnings"], serde_json::json!([]));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_text_names_every_field_an_administrator_types() {
        let c = prod("eu1", None).unwrap();
        let text = c.to_text();
        for needle in [
            "Tenant URL:    https://eu1.niceincontact.com/scim/v2",
            "POST https://eu1.niceincontact.com/authentication/v1/token/access-key",
            "Content-Type: application/json",
            r#"{"accessKeyId":"<access key id>","accessKeySecret":"<access key secret>"}"#,
            "userPrincipalName -> userName  [matching, precedence 1; required]",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False") -> active  [expression"#,
            "mail -> emails[type eq \"work\"].value  [required]",
            NICE_TEAM_ATTRIBUTE,
            "delete: no   bulk: no   groups: no   filters: userName eq",
            "CXONE_AUTH          = access_key",
            "Warnings",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!prod("na1", None).unwrap().to_text().contains("Warnings"));
    }
}

//! Every setting cxone-scim reads, parsed in one place from a name → value lookup (the Worker's
//! vars and secrets, or a process environment), with every default defined here.
//!
//! [`Settings::from_vars`] lists every problem it finds, naming the variable and never showing a
//! value (most of them are secrets). Blank values count as unset.

use crate::admin::{AdminTokenError, AdminTokens};
use crate::deprovision::AdminApi;
use crate::flows::RoleWrite;
use crate::graph::{AttributeMap, DeleteMode, DeletionThreshold, MapError, Scope, ScopeError, ThresholdError};
use crate::policy::{PolicyError, RolePolicy, RoleTarget, RoleTargetError};
use crate::profile::Profile;
use crate::retry::RetryPolicy;
use crate::secret::SecretString;
use crate::token::{ClientCredentials, Grant};
use crate::webhook::{SecretError, WebhookSecret, WebhookSecrets};
use url::{Host, Url};

/// The defaults, for the Worker and the command line alike.
pub mod defaults {
    use crate::retry::RetryPolicy;

    /// `RETRY_BASE_MS`, `RETRY_CAP_MS`, `RETRY_MAX_ATTEMPTS`, `RETRY_MAX_RETRY_AFTER_MS`.
    pub const RETRY: RetryPolicy = RetryPolicy {
        base_ms: 250,
        cap_ms: 4_000,
        max_attempts: 4,
        max_retry_after_ms: 10_000,
    };
    /// `SUBREQUEST_BUDGET`: the Workers Free plan's limit per invocation (paid plans: 1,000).
    pub const SUBREQUEST_BUDGET: u32 = 50;
    /// The smallest `SUBREQUEST_BUDGET` a request can be served with.
    pub const MIN_SUBREQUEST_BUDGET: u32 = 20;
    /// `BULK_BATCH_SIZE`: operations per `POST /Bulk`.
    pub const BULK_BATCH_SIZE: usize = 50;
    /// `DELETION_THRESHOLD`: leavers one Graph sync pass may apply without approval.
    pub const DELETION_THRESHOLD: usize = 25;
    /// `BULK_PRECHECK`: look users up before creating them (write-ahead marks and 409s tell
    /// this run's creations from existing accounts without it).
    pub const BULK_PRECHECK: bool = false;
    /// `LEDGER_LEASE_MS`: how long a ledger lease is held before another request may take it.
    pub const LEDGER_LEASE_MS: u64 = 30_000;
    /// The shortest `LEDGER_LEASE_MS` accepted.
    pub const MIN_LEDGER_LEASE_MS: u64 = 1_000;
    /// `LEDGER_WAIT_MS`: how long a request waits for a lease held by another.
    pub const LEDGER_WAIT_MS: u64 = 3_000;
    /// `CXONE_REQUEST_TIMEOUT_MS`: a CXone request unanswered this long counts as lost.
    pub const CXONE_REQUEST_TIMEOUT_MS: u64 = 15_000;
    /// The shortest `CXONE_REQUEST_TIMEOUT_MS` accepted.
    pub const MIN_CXONE_REQUEST_TIMEOUT_MS: u64 = 1_000;
    /// `EVENT_MAX_FUTURE_MS`: how far in the future an event's time may be (senders' clocks
    /// drift); later ones are refused.
    pub const EVENT_MAX_FUTURE_MS: u64 = 5 * 60 * 1000;
    /// `GRAPH_BASE_URL`.
    pub const GRAPH_BASE_URL: &str = "https://graph.microsoft.com/v1.0";
    /// `GRAPH_SCOPE`: every application permission granted to the app registration.
    pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
    /// `GRAPH_FULL_ROUND_HOURS`: how old the last full Graph round may get.
    pub const GRAPH_FULL_ROUND_HOURS: u64 = 24;
    /// `GRAPH_GROUP_ROUND_MINUTES`: the shortest time between two full rounds a group's changes
    /// ask for.
    pub const GRAPH_GROUP_ROUND_MINUTES: u64 = 15;
    /// `AUDIT_RETENTION_DAYS`: how long audit trail entries are kept.
    pub const AUDIT_RETENTION_DAYS: u32 = 400;
}

/// Everything the Worker needs to serve a request.
#[derive(Debug, Clone)]
pub struct Settings {
    /// CXone's SCIM root, `/scim/v2` included, without a trailing slash.
    pub scim_base_url: String,
    /// `CXONE_PROFILE`: what the SCIM server offers (`cxone`, the default, or `rfc7644`).
    pub profile: Profile,
    pub credentials: ClientCredentials,
    pub policy: RolePolicy,
    pub webhook_secrets: WebhookSecrets,
    pub admin_tokens: AdminTokens,
    pub retry: RetryPolicy,
    /// Subrequests one invocation may make (Free plan 50, paid 1,000).
    pub subrequest_budget: u32,
    pub bulk: BulkSettings,
    pub ledger: LedgerSettings,
    /// `ATTRIBUTE_MAP`: Graph user properties onto SCIM attributes; unset, the default map.
    pub attribute_map: AttributeMap,
    /// Microsoft Graph sync, when `GRAPH_CLIENT_ID` is set.
    pub graph: Option<GraphSettings>,
    /// `ROLE_TARGET`, `ROLE_WRITE`.
    pub roles: RoleSettings,
    /// Role sync notices to the IAM system, when `IAM_WEBHOOK_URL` is set.
    pub iam: Option<NoticeReceiver>,
    /// How leavers are taken: the Admin API, HR's receiver, the defaults of a leaver's options.
    pub deprovision: DeprovisionSettings,
    /// `AUDIT_RETENTION_DAYS`, at least 1.
    pub audit_retention_days: u32,
}

/// Where and how a user's roles are written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleSettings {
    /// `ROLE_TARGET`: `roles` (the default) or one single-valued attribute path.
    pub target: RoleTarget,
    /// `ROLE_WRITE`: `put` (the default) or `patch`.
    pub write: RoleWrite,
}

/// Leavers ([`crate::deprovision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeprovisionSettings {
    /// `CXONE_API_BASE_URL`: NICE's Admin API with its version (e.g.
    /// `https://api-na1.niceincontact.com/incontactapi/services/v31.0`). Unset: a leaver's
    /// agent, dependencies and session are not looked at (`not_configured`).
    pub admin_api: Option<AdminApi>,
    /// `HR_WEBHOOK_URL`, `HR_WEBHOOK_SECRET`: where HR is told of each leaver.
    pub hr: Option<NoticeReceiver>,
    /// `DEPROVISION_END_SESSIONS` (default true): end a leaver's live session.
    pub end_sessions: bool,
    /// `DEPROVISION_BLOCK_ON_DEPENDENCIES` (default false): hold a leaver whose agent has
    /// skills, groups or scheduled callbacks.
    pub block_on_dependencies: bool,
    /// `DELETION_THRESHOLD`: a batch of more leavers waits for approval (a share holds every
    /// batch: a list has no "people in scope").
    pub threshold: DeletionThreshold,
}

impl DeprovisionSettings {
    /// A leaver's options when nobody chose them (webhooks, Graph): these defaults, `mode`
    /// from the operation.
    pub fn options(&self, mode: crate::deprovision::Mode) -> crate::deprovision::Options {
        crate::deprovision::Options {
            mode,
            end_sessions: self.end_sessions,
            block_on_dependencies: self.block_on_dependencies,
            reason: None,
        }
    }
}

/// A receiver of signed notices (the IAM system's, HR's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeReceiver {
    /// `IAM_WEBHOOK_URL`: https, or http to a loopback host.
    pub url: String,
    /// `IAM_WEBHOOK_SECRET`: the `whsec_` Standard Webhooks key the notices are signed with.
    pub secret: WebhookSecret,
}

/// Microsoft Graph sync.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// `GRAPH_BASE_URL`, with its version (default `https://graph.microsoft.com/v1.0`).
    pub base_url: String,
    /// `GRAPH_TOKEN_URL`, `GRAPH_CLIENT_ID`, `GRAPH_CLIENT_SECRET`, `GRAPH_SCOPE` (default
    /// `https://graph.microsoft.com/.default`).
    pub credentials: ClientCredentials,
    /// The Graph properties the attribute map reads, for `$select`.
    pub select: Vec<String>,
    /// `GRAPH_USER_SCOPE`, `GRAPH_GROUP_SCOPE`.
    pub scope: Scope,
    /// `GRAPH_DELETE_MODE`.
    pub delete_mode: DeleteMode,
    /// `DELETION_THRESHOLD`.
    pub threshold: DeletionThreshold,
    /// `GRAPH_NOTIFICATION_URL`: this Worker's `/graph/notifications`; change notifications on.
    pub notification_url: Option<String>,
    /// `GRAPH_CLIENT_STATE`: sent with every subscription, checked on every notification.
    pub client_state: Option<SecretString>,
    /// `GRAPH_FULL_ROUND_HOURS`: a pass reads every user again when the last full round is older
    /// (membership changes alone do not show in `/users/delta`); 0: never.
    pub full_round_ms: u64,
    /// `GRAPH_GROUP_ROUND_MINUTES`: a change to a group (its notification) makes the next pass a
    /// full round, at most once in this long.
    pub group_round_gap_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkSettings {
    /// `BULK_BATCH_SIZE`, at least 1.
    pub batch_size: usize,
    /// `BULK_PRECHECK`.
    pub precheck: bool,
    /// `BULK_FAIL_ON_ERRORS`; unset lets the server process every operation.
    pub fail_on_errors: Option<u32>,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            batch_size: defaults::BULK_BATCH_SIZE,
            precheck: defaults::BULK_PRECHECK,
            fail_on_errors: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerSettings {
    /// `LEDGER_LEASE_MS`, at least [`defaults::MIN_LEDGER_LEASE_MS`].
    pub lease_ms: u64,
    /// `LEDGER_WAIT_MS`.
    pub wait_ms: u64,
    /// `CXONE_REQUEST_TIMEOUT_MS`; a lease must outlive it (see `ledger::request_deadline`).
    pub request_timeout_ms: u64,
    /// `EVENT_MAX_FUTURE_MS`.
    pub max_future_ms: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            lease_ms: defaults::LEDGER_LEASE_MS,
            wait_ms: defaults::LEDGER_WAIT_MS,
            request_timeout_ms: defaults::CXONE_REQUEST_TIMEOUT_MS,
            max_future_ms: defaults::EVENT_MAX_FUTURE_MS,
        }
    }
}

/// Why a configured URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be https (plain http only on loopback)")]
    NotHttps,
    #[error("has no host")]
    NoHost,
    #[error("must not hold a user name or password")]
    UserInfo,
    #[error("is not a valid absolute URL")]
    Malformed,
}

/// One problem with the settings. Names the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsProblem {
    #[error("{0} is not set")]
    NotSet(&'static str),
    #[error("{name} {error}")]
    Url { name: &'static str, error: UrlError },
    #[error("{0} must be a whole number")]
    NotWholeNumber(&'static str),
    #[error("{0} is too large")]
    TooLarge(&'static str),
    #[error("{name} must be at least {min}")]
    TooSmall { name: &'static str, min: u64 },
    #[error("{0} must be true or false")]
    NotBoolean(&'static str),
    #[error("{0}")]
    Policy(PolicyError),
    #[error("WEBHOOK_SECRETS: {0}")]
    WebhookSecrets(SecretError),
    #[error("{0}")]
    AdminToken(AdminTokenError),
    #[error("GRAPH_USER_SCOPE / GRAPH_GROUP_SCOPE: {0}")]
    GraphScope(ScopeError),
    #[error("{0}")]
    DeletionThreshold(ThresholdError),
    #[error("GRAPH_DELETE_MODE must be disable or delete")]
    DeleteMode,
    #[error("GRAPH_CLIENT_STATE must be set (16 to 128 characters) when GRAPH_NOTIFICATION_URL is")]
    ClientState,
    #[error("{0}")]
    AttributeMap(MapError),
    #[error("{0}")]
    RoleTarget(RoleTargetError),
    #[error("ROLE_WRITE must be put or patch")]
    RoleWrite,
    #[error("{0}: {1}")]
    ReceiverSecret(&'static str, SecretError),
    #[error("CXONE_AUTH must be access_key or client_credentials")]
    Auth,
    #[error("CXONE_PROFILE must be cxone or rfc7644")]
    Profile,
}

/// A configured endpoint URL, trimmed and without a trailing slash: `https://`, or `http://` to
/// a loopback host (127.0.0.0/8, `localhost`, `[::1]`) for local stand-ins. Read as a WHATWG
/// fetch reads it, and returned as that reading serialises it, so the host checked is the host
/// contacted. Whitespace, control characters and backslashes inside, and user info, are refused.
pub fn endpoint_url(raw: &str) -> Result<String, UrlError> {
    let text = raw.trim();
    if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return Err(UrlError::Malformed);
    }
    let url = Url::parse(text).map_err(|e| match e {
        url::ParseError::EmptyHost => UrlError::NoHost,
        _ => UrlError::Malformed,
    })?;
    // WHATWG skips missing or extra slashes after a special scheme: `https:///x` goes to `x`.
    let authority = text.get(url.scheme().len()..).and_then(|rest| rest.strip_prefix("://"));
    match authority {
        None => return Err(UrlError::Malformed),
        Some(rest) if rest.starts_with('/') => return Err(UrlError::NoHost),
        Some(_) => {}
    }
    let host = url.host().ok_or(UrlError::NoHost)?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        _ => return Err(UrlError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::UserInfo);
    }
    let serialised = url.as_str();
    Ok(if url.query().is_none() && url.fragment().is_none() {
        serialised.trim_end_matches('/').to_string()
    } else {
        serialised.to_string()
    })
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Reads named values and collects what is wrong with them.
struct Reader<G> {
    get: G,
    problems: Vec<SettingsProblem>,
}

impl<G: Fn(&str) -> Option<String>> Reader<G> {
    /// `RETRY_BASE_MS`, `RETRY_CAP_MS`, `RETRY_MAX_ATTEMPTS` (at least 1),
    /// `RETRY_MAX_RETRY_AFTER_MS`, each defaulting to [`defaults::RETRY`].
    fn retry(&mut self) -> RetryPolicy {
        let d = defaults::RETRY;
        RetryPolicy {
            base_ms: self.whole("RETRY_BASE_MS", d.base_ms),
            cap_ms: self.whole("RETRY_CAP_MS", d.cap_ms),
            max_attempts: self.whole("RETRY_MAX_ATTEMPTS", d.max_attempts).max(1),
            max_retry_after_ms: self.whole("RETRY_MAX_RETRY_AFTER_MS", d.max_retry_after_ms),
        }
    }

    /// The value, `None` when unset or blank.
    fn text(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&mut self, name: &'static str) -> Option<String> {
        let value = self.text(name);
        if value.is_none() {
            self.problems.push(SettingsProblem::NotSet(name));
        }
        value
    }

    fn url(&mut self, name: &'static str) -> String {
        let Some(raw) = self.required(name) else {
            return String::new();
        };
        endpoint_url(&raw).unwrap_or_else(|error| {
            self.problems.push(SettingsProblem::Url { name, error });
            String::new()
        })
    }

    /// A whole number, `None` when unset (or wrong: then a problem is recorded).
    fn optional_whole<T: TryFrom<u64>>(&mut self, name: &'static str) -> Option<T> {
        let text = self.text(name)?;
        let Ok(n) = text.trim().parse::<u64>() else {
            self.problems.push(SettingsProblem::NotWholeNumber(name));
            return None;
        };
        let value = T::try_from(n).ok();
        if value.is_none() {
            self.problems.push(SettingsProblem::TooLarge(name));
        }
        value
    }

    fn whole<T: TryFrom<u64>>(&mut self, name: &'static str, default: T) -> T {
        self.optional_whole(name).unwrap_or(default)
    }

    fn at_least<T: Into<u64> + Copy>(&mut self, name: &'static str, value: T, min: T) -> T {
        if value.into() < min.into() {
            self.problems.push(SettingsProblem::TooSmall { name, min: min.into() });
        }
        value
    }

    fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        match self.text(name) {
            None => default,
            Some(v) if v.trim().eq_ignore_ascii_case("true") => true,
            Some(v) if v.trim().eq_ignore_ascii_case("false") => false,
            Some(_) => {
                self.problems.push(SettingsProblem::NotBoolean(name));
                default
            }
        }
    }
}

impl Settings {
    /// Reads every setting through `get` (a variable's value by name), or lists every problem
    /// found, as text naming the variable (never a value).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Settings, Vec<String>> {
        Self::read(get).map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    /// The retry policy alone (`RETRY_*`), for a host that needs nothing else of the
    /// configuration (the command line), read and checked as [`Settings::from_vars`] does.
    pub fn retry_from_vars(get: impl Fn(&str) -> Option<String>) -> Result<RetryPolicy, Vec<String>> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };
        let retry = r.retry();
        match r.problems.is_empty() {
            true => Ok(retry),
            false => Err(r.problems.iter().map(ToString::to_string).collect()),
        }
    }

    /// [`Settings::from_vars`] with the problems as values.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Settings, Vec<SettingsProblem>> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };
        let scim_base_url = r.url("CXONE_SCIM_BASE_URL");
        let token_url = r.url("CXONE_TOKEN_URL");
        let profile = match r.text("CXONE_PROFILE") {
            None => Profile::default(),
            Some(text) => Profile::parse(&text).unwrap_or_else(|| {
                r.problems.push(SettingsProblem::Profile);
                Profile::default()
            }),
        };
        // CXONE_AUTH: client_credentials (the default) or CXone's access key.
        let grant = match r.text("CXONE_AUTH") {
            None => Some(Grant::ClientCredentials),
            Some(text) => Grant::parse(&text),
        };
        // Which secrets are needed depends on the grant: none are asked for when it is unknown.
        let (client_id, client_secret) = match grant {
            Some(Grant::ClientCredentials) => (r.required("CXONE_CLIENT_ID"), r.required("CXONE_CLIENT_SECRET")),
            Some(Grant::AccessKey) => (r.required("CXONE_ACCESS_KEY_ID"), r.required("CXONE_ACCESS_KEY_SECRET")),
            None => {
                r.problems.push(SettingsProblem::Auth);
                (None, None)
            }
        };
        let grant = grant.unwrap_or_default();
        let scope = r.text("CXONE_SCOPE").filter(|_| grant == Grant::ClientCredentials);
        let policy = r.required("ROLE_POLICY").and_then(|text| {
            RolePolicy::from_json(&text)
                .map_err(|e| r.problems.push(SettingsProblem::Policy(e)))
                .ok()
        });
        let webhook_secrets = r.required("WEBHOOK_SECRETS").and_then(|text| {
            WebhookSecrets::parse_list(&text)
                .map_err(|e| r.problems.push(SettingsProblem::WebhookSecrets(e)))
                .ok()
        });
        let admin_tokens = r.required("ADMIN_TOKEN").and_then(|text| {
            AdminTokens::parse_list(&text)
                .map_err(|e| r.problems.push(SettingsProblem::AdminToken(e)))
                .ok()
        });
        let retry = r.retry();
        let budget = r.whole("SUBREQUEST_BUDGET", defaults::SUBREQUEST_BUDGET);
        let subrequest_budget = r.at_least("SUBREQUEST_BUDGET", budget, defaults::MIN_SUBREQUEST_BUDGET);
        let bulk = BulkSettings {
            batch_size: r.whole("BULK_BATCH_SIZE", defaults::BULK_BATCH_SIZE).max(1),
            precheck: r.boolean("BULK_PRECHECK", defaults::BULK_PRECHECK),
            fail_on_errors: r.optional_whole("BULK_FAIL_ON_ERRORS"),
        };
        let timeout = r.whole("CXONE_REQUEST_TIMEOUT_MS", defaults::CXONE_REQUEST_TIMEOUT_MS);
        let request_timeout_ms = r.at_least(
            "CXONE_REQUEST_TIMEOUT_MS",
            timeout,
            defaults::MIN_CXONE_REQUEST_TIMEOUT_MS,
        );
        let lease_ms = r.whole("LEDGER_LEASE_MS", defaults::LEDGER_LEASE_MS);
        // A lease no request fits in would hold every person and write nothing.
        let shortest = crate::ledger::shortest_accepted_lease(request_timeout_ms).max(defaults::MIN_LEDGER_LEASE_MS);
        let lease_ms = r.at_least("LEDGER_LEASE_MS", lease_ms, shortest);
        let ledger = LedgerSettings {
            lease_ms,
            wait_ms: r.whole("LEDGER_WAIT_MS", defaults::LEDGER_WAIT_MS),
            request_timeout_ms,
            max_future_ms: r.whole("EVENT_MAX_FUTURE_MS", defaults::EVENT_MAX_FUTURE_MS),
        };
        let attribute_map = match r.text("ATTRIBUTE_MAP") {
            None => AttributeMap::default(),
            Some(text) => AttributeMap::parse(&text).unwrap_or_else(|e| {
                r.problems.push(SettingsProblem::AttributeMap(e));
                AttributeMap::default()
            }),
        };
        let graph = r
            .text("GRAPH_CLIENT_ID")
            .and_then(|id| read_graph(&mut r, id, &attribute_map));
        let roles = read_roles(&mut r);
        let iam = read_receiver(&mut r, "IAM_WEBHOOK_URL", "IAM_WEBHOOK_SECRET");
        let deprovision = read_deprovision(&mut r);
        let retention = r.whole("AUDIT_RETENTION_DAYS", defaults::AUDIT_RETENTION_DAYS);
        let audit_retention_days = r.at_least("AUDIT_RETENTION_DAYS", retention, 1);
        match (client_id, client_secret, policy, webhook_secrets, admin_tokens) {
            (Some(client_id), Some(client_secret), Some(policy), Some(webhook_secrets), Some(admin_tokens))
                if r.problems.is_empty() =>
            {
                Ok(Settings {
                    scim_base_url,
                    profile,
                    credentials: ClientCredentials {
                        token_url,
                        client_id,
                        client_secret: SecretString::new(client_secret),
                        scope,
                        grant,
                    },
                    policy,
                    webhook_secrets,
                    admin_tokens,
                    retry,
                    subrequest_budget,
                    bulk,
                    ledger,
                    attribute_map,
                    graph,
                    roles,
                    iam,
                    deprovision,
                    audit_retention_days,
                })
            }
            _ => Err(r.problems),
        }
    }
}

fn read_roles<G: Fn(&str) -> Option<String>>(r: &mut Reader<G>) -> RoleSettings {
    let target = match r.text("ROLE_TARGET") {
        None => RoleTarget::default(),
        Some(text) => RoleTarget::parse(&text).unwrap_or_else(|e| {
            r.problems.push(SettingsProblem::RoleTarget(e));
            RoleTarget::default()
        }),
    };
    let write = match r.text("ROLE_WRITE") {
        None => RoleWrite::default(),
        Some(text) => RoleWrite::parse(&text).unwrap_or_else(|| {
            r.problems.push(SettingsProblem::RoleWrite);
            RoleWrite::default()
        }),
    };
    RoleSettings { target, write }
}

/// A notice receiver: off without its URL; with it, its secret is
/// required. A secret set alone is still checked.
fn read_receiver<G: Fn(&str) -> Option<String>>(
    r: &mut Reader<G>,
    url_name: &'static str,
    secret_name: &'static str,
) -> Option<NoticeReceiver> {
    let url = r.text(url_name).map(|_| r.url(url_name));
    let secret = match url {
        Some(_) => r.required(secret_name),
        None => r.text(secret_name),
    }
    .and_then(|text| {
        WebhookSecret::parse(text.trim())
            .map_err(|e| r.problems.push(SettingsProblem::ReceiverSecret(secret_name, e)))
            .ok()
    });
    Some(NoticeReceiver {
        url: url?,
        secret: secret?,
    })
}

/// `DELETION_THRESHOLD`, for Graph passes and batches of leavers alike; `None` when unreadable
/// (a problem is recorded once).
fn read_threshold<G: Fn(&str) -> Option<String>>(r: &mut Reader<G>) -> Option<DeletionThreshold> {
    let text = r.text("DELETION_THRESHOLD")?;
    let parsed = DeletionThreshold::parse(&text);
    if let Err(e) = &parsed {
        if !r
            .problems
            .iter()
            .any(|p| matches!(p, SettingsProblem::DeletionThreshold(_)))
        {
            r.problems.push(SettingsProblem::DeletionThreshold(e.clone()));
        }
    }
    parsed.ok()
}

fn read_deprovision<G: Fn(&str) -> Option<String>>(r: &mut Reader<G>) -> DeprovisionSettings {
    let admin_api = r
        .text("CXONE_API_BASE_URL")
        .map(|_| AdminApi::new(&r.url("CXONE_API_BASE_URL")));
    DeprovisionSettings {
        admin_api,
        hr: read_receiver(r, "HR_WEBHOOK_URL", "HR_WEBHOOK_SECRET"),
        end_sessions: r.boolean("DEPROVISION_END_SESSIONS", true),
        block_on_dependencies: r.boolean("DEPROVISION_BLOCK_ON_DEPENDENCIES", false),
        threshold: read_threshold(r).unwrap_or_default(),
    }
}

/// The Graph settings, once `GRAPH_CLIENT_ID` is known to be set.
fn read_graph<G: Fn(&str) -> Option<String>>(
    r: &mut Reader<G>,
    client_id: String,
    map: &AttributeMap,
) -> Option<GraphSettings> {
    let base_url = match r.text("GRAPH_BASE_URL") {
        None => defaults::GRAPH_BASE_URL.to_string(),
        Some(_) => r.url("GRAPH_BASE_URL"),
    };
    let token_url = r.url("GRAPH_TOKEN_URL");
    let secret = r.required("GRAPH_CLIENT_SECRET");
    let scope = Scope::parse(
        r.text("GRAPH_USER_SCOPE").as_deref(),
        r.text("GRAPH_GROUP_SCOPE").as_deref(),
    )
    .map_err(|e| r.problems.push(SettingsProblem::GraphScope(e)))
    .ok();
    let delete_mode = match r.text("GRAPH_DELETE_MODE") {
        None => Some(DeleteMode::default()),
        Some(text) => {
            let mode = DeleteMode::parse(&text);
            if mode.is_none() {
                r.problems.push(SettingsProblem::DeleteMode);
            }
            mode
        }
    };
    let threshold = match r.text("DELETION_THRESHOLD") {
        None => Some(DeletionThreshold::default()),
        Some(_) => read_threshold(r),
    };
    let notification_url = r
        .text("GRAPH_NOTIFICATION_URL")
        .map(|_| r.url("GRAPH_NOTIFICATION_URL"));
    let full_round_hours: u64 = r.whole("GRAPH_FULL_ROUND_HOURS", defaults::GRAPH_FULL_ROUND_HOURS);
    let group_round_minutes: u64 = r.whole("GRAPH_GROUP_ROUND_MINUTES", defaults::GRAPH_GROUP_ROUND_MINUTES);
    let client_state = r.text("GRAPH_CLIENT_STATE");
    // What tells Graph's notifications from forged ones: long enough not to be guessed.
    let state_ok = client_state
        .as_deref()
        .is_some_and(|s| (16..=128).contains(&s.trim().chars().count()));
    if (notification_url.is_some() || client_state.is_some()) && !state_ok {
        r.problems.push(SettingsProblem::ClientState);
    }
    Some(GraphSettings {
        base_url,
        credentials: ClientCredentials {
            token_url,
            client_id,
            client_secret: SecretString::new(secret?),
            scope: Some(
                r.text("GRAPH_SCOPE")
                    .unwrap_or_else(|| defaults::GRAPH_SCOPE.to_string()),
            ),
            grant: Grant::ClientCredentials,
        },
        select: map.select(),
        scope: scope?,
        delete_mode: delete_mode?,
        threshold: threshold?,
        notification_url,
        client_state: client_state.map(|s| SecretString::new(s.trim().to_string())),
        full_round_ms: full_round_hours.saturating_mul(3_600_000),
        group_round_gap_ms: group_round_minutes.saturating_mul(60_000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use wasm_bindgen_test::wasm_bindgen_test;

    const POLICY: &str = r#"{"version":1,"mode":"strict","mappings":[{"group":"cxone-agent","role":"Agent"}]}"#;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("CXONE_SCIM_BASE_URL", "https://cxone.example/scim/v2/"),
            ("CXONE_TOKEN_URL", "https://cxone.example/oauth/token"),
            ("CXONE_CLIENT_ID", "cid"),
            ("CXONE_CLIENT_SECRET", "csecret"),
            ("ROLE_POLICY", POLICY),
            ("WEBHOOK_SECRETS", SECRET),
            (
                "ADMIN_TOKEN",
                "admin-token-one-0123456789abcdefgh, admin-token-two-0123456789abcdefgh",
            ),
        ])
    }

    fn read(vars: &HashMap<&str, &str>) -> Result<Settings, Vec<String>> {
        Settings::from_vars(|name| vars.get(name).map(|v| v.to_string()))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn graph_sync_is_off_until_its_client_is_set_and_then_checked_whole() {
        assert!(read(&full()).unwrap().graph.is_none());
        let mut vars = full();
        vars.insert("GRAPH_CLIENT_ID", "gid");
        vars.insert("GRAPH_NOTIFICATION_URL", "http://example.com/graph/notifications");
        vars.insert("GRAPH_DELETE_MODE", "purge");
        vars.insert("DELETION_THRESHOLD", "lots");
        vars.insert("GRAPH_USER_SCOPE", "everyone");
        let problems = read(&vars).unwrap_err().join("\n");
        for want in [
            "GRAPH_TOKEN_URL is not set",
            "GRAPH_CLIENT_SECRET is not set",
            "GRAPH_NOTIFICATION_URL must be https",
            "GRAPH_CLIENT_STATE must be set",
            "GRAPH_DELETE_MODE must be disable or delete",
            "DELETION_THRESHOLD must be a whole number",
            "GRAPH_USER_SCOPE",
        ] {
            assert!(problems.contains(want), "{want:?} missing from {problems}");
        }
        let mut vars = full();
        vars.insert("GRAPH_CLIENT_ID", "gid");
        vars.insert("GRAPH_TOKEN_URL", "https://login.example/t/oauth2/v2.0/token");
        vars.insert("GRAPH_CLIENT_SECRET", "gsecret");
        vars.insert("DELETION_THRESHOLD", "10%");
        let g = read(&vars).unwrap().graph.unwrap();
        assert_eq!(g.base_url, defaults::GRAPH_BASE_URL);
        assert_eq!(g.credentials.scope.as_deref(), Some(defaults::GRAPH_SCOPE));
        assert_eq!(g.threshold, DeletionThreshold::PerMille(100));
        assert_eq!(g.delete_mode, DeleteMode::Disable);
        assert!(g.select.contains(&"userPrincipalName".to_string()));
        assert!(g.notification_url.is_none() && g.client_state.is_none());
        vars.insert("GRAPH_CLIENT_STATE", "short");
        let problems = read(&vars).unwrap_err().join("\n");
        assert!(
            problems.contains("GRAPH_CLIENT_STATE must be set (16 to 128"),
            "{problems}"
        );
        vars.insert("GRAPH_CLIENT_STATE", "a-client-state-long-enough");
        assert!(read(&vars).unwrap().graph.unwrap().client_state.is_some());
        assert_eq!(g.full_round_ms, 24 * 3_600_000);
        assert_eq!(g.group_round_gap_ms, 15 * 60_000);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn defaults_apply_when_only_the_required_values_are_set() {
        let s = read(&full()).unwrap();
        assert_eq!(s.scim_base_url, "https://cxone.example/scim/v2");
        assert_eq!(s.profile, Profile::Cxone);
        assert_eq!(s.credentials.token_url, "https://cxone.example/oauth/token");
        assert_eq!(s.credentials.client_id, "cid");
        assert_eq!(s.credentials.client_secret.expose(), "csecret");
        assert_eq!(s.credentials.scope, None);
        assert!(s
            .admin_tokens
            .authorizes(Some("Bearer admin-token-two-0123456789abcdefgh")));
        assert_eq!(s.retry, defaults::RETRY);
        assert_eq!(s.retry, RetryPolicy::default());
        assert_eq!(s.subrequest_budget, 50);
        assert_eq!(s.bulk, BulkSettings::default());
        assert_eq!(
            (s.bulk.batch_size, s.bulk.precheck, s.bulk.fail_on_errors),
            (50, false, None)
        );
        assert_eq!(s.ledger, LedgerSettings::default());
        assert_eq!((s.ledger.lease_ms, s.ledger.wait_ms), (30_000, 3_000));
        assert_eq!(s.attribute_map, AttributeMap::default());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_attribute_map_and_reports_its_problems() {
        use crate::graph::{Owner, Target};
        let mut vars = full();
        vars.insert(
            "ATTRIBUTE_MAP",
            r#"{"id":"externalId","userPrincipalName":"userName","jobTitle":{"to":"title","owner":"cxone"}}"#,
        );
        let s = read(&vars).unwrap();
        assert_eq!(s.attribute_map.owner(Target::Title), Some(Owner::Cxone));
        assert_eq!(s.attribute_map.select(), ["id", "userPrincipalName", "jobTitle"]);
        vars.insert(
            "ATTRIBUTE_MAP",
            r#"{"id":"externalId","userPrincipalName":"userName","jobTitle":"nickName"}"#,
        );
        assert_eq!(
            read(&vars).unwrap_err(),
            [r#"ATTRIBUTE_MAP.jobTitle: "nickName" is not a SCIM attribute the map fills"#]
        );
        vars.insert("ATTRIBUTE_MAP", " ");
        assert_eq!(
            read(&vars).unwrap().attribute_map,
            AttributeMap::default(),
            "blank is unset"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_every_optional_setting() {
        let mut vars = full();
        vars.extend([
            ("CXONE_SCOPE", "scim"),
            ("RETRY_BASE_MS", "20"),
            ("RETRY_CAP_MS", "200"),
            ("RETRY_MAX_ATTEMPTS", "0"),
            ("RETRY_MAX_RETRY_AFTER_MS", "5000"),
            ("SUBREQUEST_BUDGET", " 1000 "),
            ("BULK_BATCH_SIZE", "0"),
            ("BULK_PRECHECK", "False"),
            ("BULK_FAIL_ON_ERRORS", "3"),
            ("LEDGER_LEASE_MS", "2000"),
            ("LEDGER_WAIT_MS", "0"),
            ("CXONE_REQUEST_TIMEOUT_MS", "1000"),
            ("EVENT_MAX_FUTURE_MS", "0"),
        ]);
        let s = read(&vars).unwrap();
        assert_eq!(s.credentials.scope.as_deref(), Some("scim"));
        assert_eq!(
            s.retry,
            RetryPolicy {
                base_ms: 20,
                cap_ms: 200,
                max_attempts: 1,
                max_retry_after_ms: 5000
            }
        );
        assert_eq!(s.subrequest_budget, 1000);
        assert_eq!(
            s.bulk,
            BulkSettings {
                batch_size: 1,
                precheck: false,
                fail_on_errors: Some(3)
            }
        );
        assert_eq!(
            s.ledger,
            LedgerSettings {
                lease_ms: 2000,
                wait_ms: 0,
                request_timeout_ms: 1000,
                max_future_ms: 0,
            }
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_profile_is_cxone_or_rfc7644() {
        let mut vars = full();
        vars.insert("CXONE_PROFILE", "RFC7644");
        assert_eq!(read(&vars).unwrap().profile, Profile::Rfc7644);
        vars.insert("CXONE_PROFILE", "scim");
        assert_eq!(read(&vars).unwrap_err(), ["CXONE_PROFILE must be cxone or rfc7644"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn cxone_tokens_by_client_credentials_or_access_key() {
        let s = read(&full()).unwrap();
        assert_eq!(s.credentials.grant, Grant::ClientCredentials);
        let mut vars = full();
        vars.remove("CXONE_CLIENT_ID");
        vars.remove("CXONE_CLIENT_SECRET");
        vars.extend([
            ("CXONE_AUTH", "access_key"),
            (
                "CXONE_TOKEN_URL",
                "https://na1.nice-incontact.com/authentication/v1/token/access-key",
            ),
            ("CXONE_SCOPE", "scim"),
        ]);
        assert_eq!(
            read(&vars).unwrap_err(),
            ["CXONE_ACCESS_KEY_ID is not set", "CXONE_ACCESS_KEY_SECRET is not set"]
        );
        vars.extend([("CXONE_ACCESS_KEY_ID", "AKID"), ("CXONE_ACCESS_KEY_SECRET", "aksecret")]);
        let s = read(&vars).unwrap();
        assert_eq!(s.credentials.grant, Grant::AccessKey);
        assert_eq!(
            (s.credentials.client_id.as_str(), s.credentials.client_secret.expose()),
            ("AKID", "aksecret")
        );
        assert_eq!(s.credentials.scope, None, "an access key has no scope");
        vars.insert("CXONE_AUTH", "password");
        assert_eq!(
            read(&vars).unwrap_err(),
            ["CXONE_AUTH must be access_key or client_credentials"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn blank_values_count_as_unset() {
        let mut vars = full();
        vars.extend([
            ("CXONE_SCOPE", "  "),
            ("SUBREQUEST_BUDGET", ""),
            ("LEDGER_LEASE_MS", " "),
            ("BULK_FAIL_ON_ERRORS", ""),
        ]);
        let s = read(&vars).unwrap();
        assert_eq!(s.credentials.scope, None);
        assert_eq!(s.subrequest_budget, defaults::SUBREQUEST_BUDGET);
        assert_eq!(s.ledger.lease_ms, defaults::LEDGER_LEASE_MS);
        assert_eq!(s.bulk.fail_on_errors, None);
        vars.insert("CXONE_CLIENT_SECRET", " \t");
        assert_eq!(read(&vars).unwrap_err(), ["CXONE_CLIENT_SECRET is not set"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lists_every_problem_without_values() {
        let vars = HashMap::from([
            ("ROLE_POLICY", "{\"version\":1,"),
            ("CXONE_CLIENT_SECRET", "topsecret"),
            ("CXONE_TOKEN_URL", "ftp://topsecret@idp/token"),
            ("WEBHOOK_SECRETS", "whsec_topsecret"),
            ("ADMIN_TOKEN", " , "),
            ("RETRY_MAX_ATTEMPTS", "many"),
            ("RETRY_CAP_MS", "-1"),
            ("SUBREQUEST_BUDGET", "19"),
            ("BULK_BATCH_SIZE", "99999999999999999999999"),
            ("BULK_PRECHECK", "yes"),
            ("BULK_FAIL_ON_ERRORS", "some"),
            ("LEDGER_LEASE_MS", "999"),
            ("LEDGER_WAIT_MS", "1.5"),
            ("ATTRIBUTE_MAP", "{\"id\":\"externalId\"}"),
        ]);
        let problems = read(&vars).unwrap_err();
        assert_eq!(
            problems,
            [
                "CXONE_SCIM_BASE_URL is not set",
                "CXONE_TOKEN_URL must be https (plain http only on loopback)",
                "CXONE_CLIENT_ID is not set",
                "ROLE_POLICY is not valid JSON at line 1, column 13: EOF while parsing a value at line 1 column 13",
                "WEBHOOK_SECRETS: webhook secret #1 is not valid base64 after \"whsec_\"",
                "ADMIN_TOKEN holds no token",
                "RETRY_CAP_MS must be a whole number",
                "RETRY_MAX_ATTEMPTS must be a whole number",
                "SUBREQUEST_BUDGET must be at least 20",
                "BULK_BATCH_SIZE must be a whole number",
                "BULK_PRECHECK must be true or false",
                "BULK_FAIL_ON_ERRORS must be a whole number",
                "LEDGER_LEASE_MS must be at least 30000",
                "LEDGER_WAIT_MS must be a whole number",
                "ATTRIBUTE_MAP must map a Graph property to userName",
            ]
        );
        assert!(!problems.join("\n").contains("topsecret"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn role_sync_settings_default_to_roles_put_no_notices_and_400_days() {
        let s = read(&full()).unwrap();
        assert_eq!(s.roles, RoleSettings::default());
        assert_eq!(
            (s.roles.target.clone(), s.roles.write),
            (RoleTarget::Roles, RoleWrite::Put)
        );
        assert!(s.iam.is_none());
        assert_eq!(s.audit_retention_days, 400);
        assert_eq!(s.audit_retention_days, defaults::AUDIT_RETENTION_DAYS);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_the_role_sync_settings() {
        const PRIMARY: &str = "urn:ietf:params:scim:schemas:extension:cxone:2.0:User:primaryRole";
        let mut vars = full();
        vars.extend([
            ("ROLE_TARGET", PRIMARY),
            ("ROLE_WRITE", " Patch "),
            ("IAM_WEBHOOK_URL", "https://iam.example/notices/"),
            ("IAM_WEBHOOK_SECRET", SECRET),
            ("AUDIT_RETENTION_DAYS", "30"),
        ]);
        let s = read(&vars).unwrap();
        assert_eq!(
            s.roles,
            RoleSettings {
                target: RoleTarget::Single(PRIMARY.into()),
                write: RoleWrite::Patch
            }
        );
        let iam = s.iam.unwrap();
        assert_eq!(iam.url, "https://iam.example/notices");
        assert_eq!(iam.secret, WebhookSecret::parse(SECRET).unwrap());
        assert_eq!(s.audit_retention_days, 30);
        // A loopback receiver may be plain http, as the other URLs.
        vars.insert("IAM_WEBHOOK_URL", "http://127.0.0.1:8799/notices");
        vars.insert("ROLE_TARGET", "roles");
        let s = read(&vars).unwrap();
        assert_eq!(s.iam.unwrap().url, "http://127.0.0.1:8799/notices");
        assert_eq!(s.roles.target, RoleTarget::Roles);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn role_sync_problems_are_named_without_values() {
        let mut vars = full();
        vars.extend([
            ("ROLE_TARGET", "emails"),
            ("ROLE_WRITE", "post"),
            ("IAM_WEBHOOK_URL", "http://iam.example/notices?key=topsecret"),
            ("AUDIT_RETENTION_DAYS", "0"),
        ]);
        let problems = read(&vars).unwrap_err();
        assert_eq!(
            problems,
            [
                "ROLE_TARGET \"emails\" is multi-valued; roles go to \"roles\" or to one single-valued attribute",
                "ROLE_WRITE must be put or patch",
                "IAM_WEBHOOK_URL must be https (plain http only on loopback)",
                "IAM_WEBHOOK_SECRET is not set",
                "AUDIT_RETENTION_DAYS must be at least 1",
            ]
        );
        assert!(!problems.join("\n").contains("topsecret"));
        let mut vars = full();
        vars.extend([
            ("IAM_WEBHOOK_URL", "https://iam.example/notices"),
            ("IAM_WEBHOOK_SECRET", "whsec_topsecret"),
            ("AUDIT_RETENTION_DAYS", "a year"),
        ]);
        let problems = read(&vars).unwrap_err();
        assert_eq!(
            problems,
            [
                "IAM_WEBHOOK_SECRET: webhook secret #1 is not valid base64 after \"whsec_\"",
                "AUDIT_RETENTION_DAYS must be a whole number",
            ]
        );
        assert!(!problems.join("\n").contains("topsecret"));
        // A secret set without a receiver is still checked; blank values count as unset.
        let mut vars = full();
        vars.extend([
            ("IAM_WEBHOOK_SECRET", "topsecret"),
            ("ROLE_TARGET", " "),
            ("ROLE_WRITE", ""),
        ]);
        assert_eq!(
            read(&vars).unwrap_err(),
            ["IAM_WEBHOOK_SECRET: webhook secret #1 does not start with \"whsec_\""]
        );
        vars.insert("IAM_WEBHOOK_SECRET", SECRET);
        let s = read(&vars).unwrap();
        assert!(s.iam.is_none());
        assert_eq!(s.roles, RoleSettings::default());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn numbers_too_large_for_their_setting_are_refused() {
        let mut vars = full();
        vars.insert("RETRY_MAX_ATTEMPTS", "4294967296");
        vars.insert("SUBREQUEST_BUDGET", "4294967296");
        assert_eq!(
            read(&vars).unwrap_err(),
            ["RETRY_MAX_ATTEMPTS is too large", "SUBREQUEST_BUDGET is too large"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn leavers_read_the_admin_api_hr_and_their_defaults() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = full();
            vars.extend(extra.iter().copied());
            read(&vars)
        };
        let s = with(&[]).unwrap();
        assert_eq!(s.deprovision.admin_api, None);
        assert_eq!(s.deprovision.hr, None);
        assert!(s.deprovision.end_sessions && !s.deprovision.block_on_dependencies);
        let s = with(&[
            (
                "CXONE_API_BASE_URL",
                "https://api-na1.niceincontact.com/incontactapi/services/v31.0/",
            ),
            ("HR_WEBHOOK_URL", "https://hr.example/leavers"),
            ("HR_WEBHOOK_SECRET", SECRET),
            ("DEPROVISION_END_SESSIONS", "false"),
            ("DEPROVISION_BLOCK_ON_DEPENDENCIES", "TRUE"),
        ])
        .unwrap();
        let d = &s.deprovision;
        assert_eq!(
            d.admin_api,
            Some(AdminApi::new(
                "https://api-na1.niceincontact.com/incontactapi/services/v31.0"
            ))
        );
        assert_eq!(d.hr.as_ref().unwrap().url, "https://hr.example/leavers");
        let o = d.options(crate::deprovision::Mode::Delete);
        assert_eq!(
            (o.mode, o.end_sessions, o.block_on_dependencies),
            (crate::deprovision::Mode::Delete, false, true)
        );
        let problems = with(&[
            ("HR_WEBHOOK_URL", "https://hr.example/leavers"),
            ("DEPROVISION_END_SESSIONS", "yes"),
            ("CXONE_API_BASE_URL", "http://api.example/v31.0"),
        ])
        .unwrap_err()
        .join("\n");
        for want in [
            "HR_WEBHOOK_SECRET is not set",
            "DEPROVISION_END_SESSIONS",
            "CXONE_API_BASE_URL",
        ] {
            assert!(problems.contains(want), "{want}: {problems}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn urls_must_be_https_except_on_loopback() {
        for ok in [
            "https://cxone.example/scim/v2",
            "HTTPS://cxone.example:8443/scim/v2/",
            " https://cxone.example ",
            "http://127.0.0.1:8790/scim/v2",
            "http://127.8.9.10/x",
            "http://localhost:8790/scim/v2",
            "http://LocalHost/",
            "http://[::1]:8790/scim/v2",
        ] {
            assert!(endpoint_url(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            endpoint_url(" http://127.0.0.1:8790/scim/v2/ ").unwrap(),
            "http://127.0.0.1:8790/scim/v2"
        );
        for not_https in [
            "http://cxone.example/scim/v2",
            "http://10.0.0.1/scim/v2",
            "http://128.0.0.1/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example/",
            "http://localhost@evil.example/",
            "http://evil.example/?next=http://127.0.0.1/",
            "http://evil.example#@127.0.0.1",
            "http://[::2]/",
            "http://[::1/",
            "ftp://cxone.example/",
            "cxone.example/scim/v2",
            "//127.0.0.1/scim/v2",
        ] {
            assert!(endpoint_url(not_https).is_err(), "{not_https}");
        }
        assert_eq!(endpoint_url("https:///scim/v2"), Err(UrlError::NoHost));
        assert_eq!(endpoint_url("http://:80/"), Err(UrlError::NoHost));
        assert_eq!(endpoint_url("http://user:pw@127.0.0.1/x"), Err(UrlError::UserInfo));

        let mut vars = full();
        vars.insert("CXONE_SCIM_BASE_URL", "http://cxone.example/scim/v2");
        vars.insert("CXONE_TOKEN_URL", "http://127.0.0.1:9/oauth/token");
        assert_eq!(
            read(&vars).unwrap_err(),
            ["CXONE_SCIM_BASE_URL must be https (plain http only on loopback)"]
        );
        vars.insert("CXONE_SCIM_BASE_URL", "https://");
        assert_eq!(read(&vars).unwrap_err(), ["CXONE_SCIM_BASE_URL has no host"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn urls_are_checked_as_a_whatwg_fetch_reads_them() {
        // A fetch of these goes to evil.example in clear text, whatever the text after it says.
        for (raw, want) in [
            ("http://evil.example\\@127.0.0.1/scim/v2", UrlError::Malformed),
            ("http://evil.example\\.127.0.0.1/", UrlError::Malformed),
            ("http://127.0.0.1.evil.example/scim/v2", UrlError::NotHttps),
            ("http://127.0.0.1@evil.example/", UrlError::NotHttps),
            ("http://evil.example?@127.0.0.1/", UrlError::NotHttps),
            ("http://localhost.:8790/", UrlError::NotHttps),
            ("http://[::ffff:127.0.0.1]/", UrlError::NotHttps),
            ("http://127.0.0.1\t.evil.example/", UrlError::Malformed),
            ("http://127.0.0.1\n.evil.example/", UrlError::Malformed),
            ("https://cxone.example/scim\r\n/v2", UrlError::Malformed),
            ("https://cxone .example/", UrlError::Malformed),
            ("https://user@cxone.example/scim/v2", UrlError::UserInfo),
            ("https://user:pw@cxone.example/", UrlError::UserInfo),
            ("https://:pw@cxone.example/", UrlError::UserInfo),
            ("http://admin:admin@localhost:8790/", UrlError::UserInfo),
            ("https:cxone.example/scim/v2", UrlError::Malformed),
            ("https:/cxone.example/scim/v2", UrlError::Malformed),
            ("https:////cxone.example/", UrlError::NoHost),
            ("mailto:ops@cxone.example", UrlError::Malformed),
            ("file:///etc/passwd", UrlError::NoHost),
            ("javascript://127.0.0.1/", UrlError::NotHttps),
        ] {
            assert_eq!(endpoint_url(raw), Err(want), "{raw:?}");
        }
        for (raw, want) in [
            ("http://[::1]:8790/x", "http://[::1]:8790/x"),
            ("http://[0:0:0:0:0:0:0:1]/x/", "http://[::1]/x"),
            ("http://localhost:8790", "http://localhost:8790"),
            ("HTTP://LOCALHOST:8790/scim/v2/", "http://localhost:8790/scim/v2"),
            ("HTTPS://CXONE.example/scim/v2", "https://cxone.example/scim/v2"),
            ("https://cxone.example:443/scim/v2/", "https://cxone.example/scim/v2"),
            ("http://127.1:8790/scim/v2", "http://127.0.0.1:8790/scim/v2"),
            (
                "https://login.example/token?tenant=t1/",
                "https://login.example/token?tenant=t1/",
            ),
            ("\thttps://cxone.example/scim/v2/\n", "https://cxone.example/scim/v2"),
        ] {
            assert_eq!(endpoint_url(raw).as_deref(), Ok(want), "{raw:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_configured_url_is_checked() {
        let bad = "http://evil.example\\@127.0.0.1/x";
        for name in [
            "CXONE_SCIM_BASE_URL",
            "CXONE_TOKEN_URL",
            "GRAPH_BASE_URL",
            "GRAPH_TOKEN_URL",
            "GRAPH_NOTIFICATION_URL",
            "IAM_WEBHOOK_URL",
        ] {
            let mut vars = full();
            vars.extend([
                ("GRAPH_CLIENT_ID", "gid"),
                ("GRAPH_TOKEN_URL", "https://login.example/t/oauth2/v2.0/token"),
                ("GRAPH_CLIENT_SECRET", "gsecret"),
                ("GRAPH_CLIENT_STATE", "a-client-state-long-enough"),
                ("GRAPH_NOTIFICATION_URL", "https://worker.example/graph/notifications"),
                ("IAM_WEBHOOK_URL", "https://iam.example/notices"),
                ("IAM_WEBHOOK_SECRET", SECRET),
            ]);
            assert!(read(&vars).is_ok(), "{name}");
            vars.insert(name, bad);
            assert_eq!(
                read(&vars).unwrap_err(),
                [format!("{name} is not a valid absolute URL")],
                "{name}"
            );
            vars.insert(name, "https://user:pw@cxone.example/x");
            let problems = read(&vars).unwrap_err().join("\n");
            assert_eq!(problems, format!("{name} must not hold a user name or password"));
            assert!(!problems.contains("pw"));
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn admin_tokens_are_comma_separated_and_long() {
        let mut vars = full();
        vars.insert("ADMIN_TOKEN", "admin-token-one-0123456789abcdefgh,topsecret");
        let problems = read(&vars).unwrap_err();
        assert_eq!(problems, ["ADMIN_TOKEN token #2 is shorter than 32 characters"]);
        vars.insert(
            "ADMIN_TOKEN",
            "admin-token-one-0123456789abcdefgh admin-token-two-0123456789abcdefgh",
        );
        assert_eq!(
            read(&vars).unwrap_err(),
            ["ADMIN_TOKEN token #1 holds whitespace (tokens are separated by commas)"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_retry_policy_reads_alone_with_the_same_checks() {
        let vars: HashMap<&str, &str> = [("RETRY_MAX_ATTEMPTS", "2"), ("RETRY_BASE_MS", "10")].into();
        let retry = Settings::retry_from_vars(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!((retry.max_attempts, retry.base_ms), (2, 10));
        assert_eq!(retry.cap_ms, defaults::RETRY.cap_ms);
        assert_eq!(Settings::retry_from_vars(|_| None).unwrap(), defaults::RETRY);
        let bad: HashMap<&str, &str> = [("RETRY_CAP_MS", "soon")].into();
        let problems = Settings::retry_from_vars(|k| bad.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(problems, ["RETRY_CAP_MS must be a whole number"]);
    }
}

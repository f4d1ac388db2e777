//! `cxone-scim`: the same decisions as the Worker, on the command line.

mod commands;
mod driver;
mod provider_config;

use clap::{Parser, Subcommand};
use cxone_scim_core::deprovision::{DeprovisionRequest, Mode, Options};
use cxone_scim_core::event::Lookup;
use cxone_scim_core::policy::RoleTarget;
use cxone_scim_core::profile::Profile;
use cxone_scim_core::settings::defaults;
use cxone_scim_core::token::Grant;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cxone-scim", version, about = "Provision NICE CXone users over SCIM 2.0")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where CXone is and how to authenticate (the Worker's variable names). Every argument read
/// from the environment hides its value in `--help` (`hide_env_values`): some are secrets.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// CXone SCIM root, /scim/v2 included.
    #[arg(long, env = "CXONE_SCIM_BASE_URL", hide_env_values = true)]
    pub base_url: String,
    /// What the server offers: cxone (userName-only search, no Bulk, no DELETE) or rfc7644.
    #[arg(long, env = "CXONE_PROFILE", hide_env_values = true, default_value = "cxone", value_parser = parse_profile)]
    pub profile: Profile,
    /// access_key (CXONE_ACCESS_KEY_ID, CXONE_ACCESS_KEY_SECRET) or client_credentials
    /// (CXONE_CLIENT_ID, CXONE_CLIENT_SECRET).
    #[arg(long, env = "CXONE_AUTH", hide_env_values = true, default_value = "client_credentials", value_parser = parse_grant)]
    pub auth: Grant,
    #[arg(long, env = "CXONE_TOKEN_URL", hide_env_values = true)]
    pub token_url: String,
    #[arg(long, env = "CXONE_CLIENT_ID", hide_env_values = true)]
    pub client_id: Option<String>,
    #[arg(long, env = "CXONE_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// CXONE_CLIENT_SECRET or CXONE_ACCESS_KEY_SECRET (as `auth` says), read from the
    /// environment only, so it never shows in the process list.
    #[arg(skip)]
    pub secret: Option<String>,
    #[arg(long, env = "CXONE_SCOPE", hide_env_values = true)]
    pub scope: Option<String>,
    /// NICE's Admin API with its version; unset, a leaver's agent steps are not taken.
    #[arg(long, env = "CXONE_API_BASE_URL", hide_env_values = true)]
    pub admin_api_url: Option<String>,
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    Profile::parse(text).ok_or_else(|| "must be cxone or rfc7644".to_string())
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "deactivate" => Ok(Mode::Deactivate),
        "delete" => Ok(Mode::Delete),
        _ => Err("must be deactivate or delete".to_string()),
    }
}

fn parse_grant(text: &str) -> Result<Grant, String> {
    Grant::parse(text).ok_or_else(|| "must be access_key or client_credentials".to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Check a role policy document; errors name the JSON path or line and column.
    Policy {
        /// Path to the policy JSON (ROLE_POLICY).
        file: String,
    },
    /// Print the requests a bulk run would send (Bulk requests, or one per user where the
    /// profile has no Bulk), without sending anything.
    Plan {
        /// JSON file: an array of users or {"users":[...]}.
        #[arg(long)]
        users: String,
        #[arg(long, env = "ROLE_POLICY_FILE", hide_env_values = true)]
        policy: String,
        #[arg(
            long,
            env = "CXONE_SCIM_BASE_URL",
            hide_env_values = true,
            default_value = "https://cxone.invalid/scim/v2"
        )]
        base_url: String,
        #[arg(long, default_value_t = defaults::BULK_BATCH_SIZE)]
        batch_size: usize,
        /// Where CXone keeps roles: `roles`, or one single-valued attribute path that gets the
        /// role the policy's priorities pick.
        #[arg(long, env = "ROLE_TARGET", default_value = "roles")]
        role_target: RoleTarget,
        /// What the server offers: cxone or rfc7644.
        #[arg(long, env = "CXONE_PROFILE", hide_env_values = true, default_value = "cxone", value_parser = parse_profile)]
        profile: Profile,
    },
    /// Sign a webhook body (standard input) and print the three Standard Webhooks headers.
    Sign {
        /// Signing secret, whsec_<base64> (defaults to the first of WEBHOOK_SECRETS).
        #[arg(long, env = "WEBHOOK_SECRETS", hide_env_values = true)]
        secret: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Provision users from a file (through SCIM Bulk, or one request per user where the profile
    /// has no Bulk), with a progress bar; writes the report.
    Bulk {
        #[arg(long)]
        users: String,
        #[arg(long, env = "ROLE_POLICY_FILE", hide_env_values = true)]
        policy: String,
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = defaults::BULK_BATCH_SIZE)]
        batch_size: usize,
        /// Look every user up before sending (one more request per batch; the default sends
        /// creates and resolves 409s by reading the user).
        #[arg(long, conflicts_with = "no_precheck")]
        precheck: bool,
        /// The default; kept for scripts written when the pre-check was on by default.
        #[arg(long, hide = true)]
        no_precheck: bool,
        /// Where CXone keeps roles: `roles`, or one single-valued attribute path that gets the
        /// role the policy's priorities pick.
        #[arg(long, env = "ROLE_TARGET", default_value = "roles")]
        role_target: RoleTarget,
        /// Where to write the JSON report (standard output when absent).
        #[arg(long)]
        report: Option<String>,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Take one leaver as the Worker does: find the account and the agent, report what depends
    /// on it, deactivate, end the live session, read both back; prints the report (exit 1 when
    /// not verified).
    Deprovision {
        /// The leaver's userName.
        #[arg(long = "user")]
        user_name: Option<String>,
        #[arg(long)]
        external_id: Option<String>,
        /// deactivate (the default) or delete (where the server deletes accounts).
        #[arg(long, default_value = "deactivate", value_parser = parse_mode)]
        mode: Mode,
        /// Leave the agent's live session as it is.
        #[arg(long)]
        keep_sessions: bool,
        /// Hold the leaver when the agent has skills, groups or scheduled callbacks.
        #[arg(long)]
        block_on_dependencies: bool,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: Target,
        /// Read, and print the writes it would send; send none.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print what a Microsoft Entra ID enterprise application needs to provision CXone over SCIM.
    ProviderConfig(provider_config::Args),
    /// Work with the hash-chained audit trail of role changes.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a trail (JSON lines of audit entries): prints "ok: N records" and exits 0, or names
    /// the first broken record and exits 1.
    Verify {
        /// The trail, one entry per line.
        file: String,
        /// The last hash of the segment this file continues (default: the file starts the chain,
        /// at seq 1 after 64 zeros).
        #[arg(long, value_name = "HASH")]
        prev_hash: Option<String>,
    },
}

/// The secret `target.auth` needs, from the environment only.
fn secret_of(target: &Target) -> Option<String> {
    let secret_var = match target.auth {
        Grant::ClientCredentials => "CXONE_CLIENT_SECRET",
        Grant::AccessKey => "CXONE_ACCESS_KEY_SECRET",
    };
    std::env::var(secret_var).ok().filter(|s| !s.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy { file } => commands::policy(&file),
        Command::Plan {
            users,
            policy,
            base_url,
            batch_size,
            role_target,
            profile,
        } => commands::plan(&users, &policy, &base_url, batch_size, role_target, profile),
        Command::Sign { secret, id, timestamp } => commands::sign(&secret, id, timestamp),
        Command::Bulk {
            users,
            policy,
            mut target,
            batch_size,
            precheck,
            no_precheck: _,
            role_target,
            report,
            quiet,
        } => {
            target.secret = secret_of(&target);
            let options = commands::BulkOptions {
                batch_size,
                precheck,
                role_target,
            };
            commands::bulk(&users, &policy, &target, options, report.as_deref(), quiet)
        }
        Command::Deprovision {
            user_name,
            external_id,
            mode,
            keep_sessions,
            block_on_dependencies,
            reason,
            mut target,
            dry_run,
        } => {
            target.secret = secret_of(&target);
            let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            let lookup = Lookup {
                user_name: text(user_name),
                external_id: text(external_id),
                cxone_id: None,
            };
            if lookup.user_name.is_none() && lookup.external_id.is_none() {
                eprintln!("error: --user or --external-id is required");
                return ExitCode::from(2);
            }
            let request = DeprovisionRequest {
                lookup,
                options: Options {
                    mode,
                    end_sessions: !keep_sessions,
                    block_on_dependencies,
                    reason: text(reason),
                },
            };
            commands::deprovision(&target, request, dry_run)
        }
        Command::ProviderConfig(args) => provider_config::run(&args),
        Command::Audit {
            command: AuditCommand::Verify { file, prev_hash },
        } => commands::audit_verify(&file, prev_hash.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

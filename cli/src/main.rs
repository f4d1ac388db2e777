//! `cxone-scim`: the same decisions as the Worker, on the command line.

mod commands;
mod driver;

use clap::{Parser, Subcommand};
use cxone_scim_core::policy::RoleTarget;
use cxone_scim_core::settings::defaults;
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
    #[arg(long, env = "CXONE_TOKEN_URL", hide_env_values = true)]
    pub token_url: String,
    #[arg(long, env = "CXONE_CLIENT_ID", hide_env_values = true)]
    pub client_id: String,
    /// Read from the environment only, so it never shows in the process list.
    #[arg(skip)]
    pub client_secret: Option<String>,
    #[arg(long, env = "CXONE_SCOPE", hide_env_values = true)]
    pub scope: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a role policy document; errors name the JSON path or line and column.
    Policy {
        /// Path to the policy JSON (ROLE_POLICY).
        file: String,
    },
    /// Print the Bulk requests a bulk run would send, without sending anything.
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
    /// Provision users from a file through SCIM Bulk, with a progress bar; writes the report.
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
        } => commands::plan(&users, &policy, &base_url, batch_size, role_target),
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
            target.client_secret = std::env::var("CXONE_CLIENT_SECRET").ok();
            let options = commands::BulkOptions {
                batch_size,
                precheck,
                role_target,
            };
            commands::bulk(&users, &policy, &target, options, report.as_deref(), quiet)
        }
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

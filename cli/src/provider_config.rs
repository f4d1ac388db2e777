//! `provider-config`: what a Microsoft Entra ID non-gallery enterprise application needs to
//! provision NICE CXone users over SCIM. The content is `cxone_scim_core::provider_config`.

use cxone_scim_core::provider_config::{provider_config, Environment};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// CXone environment: prod or devtest (NICE publishes no dev/test host: give it with --base-url).
    #[arg(long, value_name = "prod|devtest")]
    pub environment: Environment,
    /// CXone area: na1, au1 or eu1 (others need --base-url).
    #[arg(long, default_value = "na1")]
    pub region: String,
    /// CXone host, e.g. https://na1.nice-incontact.com; replaces the area default (a trailing
    /// /scim/v2 is accepted). https only, plain http on loopback.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The configuration as printed, and the warnings to repeat on standard error.
fn render(args: &Args) -> Result<(String, Vec<String>), String> {
    let config =
        provider_config(args.environment, &args.region, args.base_url.as_deref()).map_err(|e| e.to_string())?;
    match args.format {
        Format::Json => Ok((
            serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?,
            config.warnings,
        )),
        // The text carries its warnings already.
        Format::Text => Ok((config.to_text(), Vec::new())),
    }
}

pub fn run(args: &Args) -> Result<ExitCode, String> {
    let (out, warnings) = render(args)?;
    println!("{out}");
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        let cli = Cli::try_parse_from(["cxone-scim", "provider-config"].iter().chain(argv))?;
        match cli.command {
            Command::ProviderConfig(args) => Ok(args),
            _ => panic!("not provider-config"),
        }
    }

    #[test]
    fn defaults_are_na1_and_text() {
        let args = parse(&["--environment", "prod"]).unwrap();
        assert_eq!(args.environment, Environment::Prod);
        assert_eq!(args.region, "na1");
        assert_eq!(args.base_url, None);
        assert_eq!(args.format, Format::Text);
        let (text, warnings) = render(&args).unwrap();
        assert!(
            text.contains("Tenant URL:    https://na1.nice-incontact.com/scim/v2"),
            "{text}"
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn json_carries_the_tenant_url_and_warnings_go_to_standard_error() {
        let args = parse(&["--environment", "devtest", "--format", "json"]).unwrap();
        let (json, warnings) = render(&args).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["tenantUrl"], "https://na1.test.nice-incontact.com/scim/v2");
        assert_eq!(v["hostSource"], "unconfirmedDefault");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("--base-url"), "{warnings:?}");
        let args = parse(&["--environment", "prod", "--region", "eu1", "--format", "text"]).unwrap();
        assert!(render(&args)
            .unwrap()
            .0
            .contains("https://eu1.niceincontact.com/scim/v2"));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--environment", "staging"]).is_err());
        assert!(parse(&["--environment", "prod", "--format", "yaml"]).is_err());
        let args = parse(&["--environment", "prod", "--base-url", "ftp://cxone.example"]).unwrap();
        let err = render(&args).unwrap_err();
        assert!(err.contains("not http or https"), "{err}");
        assert!(run(&args).is_err());
        let args = parse(&["--environment", "prod", "--region", "xx9"]).unwrap();
        assert!(render(&args).unwrap_err().contains("--base-url"));
    }
}

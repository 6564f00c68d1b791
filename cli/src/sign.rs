//! `gridmux sign`: a ready `curl` command for a file of a node's file
//! plane, signed in its URL (or in a header).

use std::time::{Duration, SystemTime};

use gridmux::Keyring;
use gridmux_core::auth::request;
use gridmux_core::http::files::{self, range_header, FileToSign};

use crate::fetch::FileArgs;
use crate::secrets;

/// What `gridmux sign` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) file: FileArgs,
    /// Sign a HEAD (headers only) instead of a GET.
    #[arg(long)]
    pub(crate) head: bool,
    /// How long the signature is good for (nodes accept at most 60 s by
    /// default).
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    pub(crate) valid: Duration,
    /// Sign in an `Authorization` header instead of the URL.
    #[arg(long)]
    pub(crate) header: bool,
    /// The signer's name in the node's log.
    #[arg(long, default_value = "gridmux-sign")]
    pub(crate) name: String,
}

pub(crate) fn run(opts: &Options) -> Result<(), String> {
    println!("{}", curl_command(opts, SystemTime::now())?);
    Ok(())
}

/// The command, signed at `now`.
pub(crate) fn curl_command(opts: &Options, now: SystemTime) -> Result<String, String> {
    let secrets = secrets::read(&opts.file.secret_file)?;
    let keys = Keyring::new(secrets).map_err(|e| e.to_string())?;
    let method = if opts.head { "HEAD" } else { "GET" };
    let range = opts.file.range.as_ref().and_then(range_header);
    let signed = files::sign(
        &keys,
        &FileToSign {
            method,
            route: &opts.file.route,
            key: &opts.file.key,
            range: range.as_deref(),
            signer: &opts.name,
            expires: request::expires_at(now, opts.valid),
        },
    )
    .map_err(|e| e.to_string())?;
    let mut command = String::from(if opts.head { "curl -fsSI" } else { "curl -fsS" });
    let url = |target: &str| format!("http://{}{target}", opts.file.node);
    if opts.header {
        let auth = signed.authorization();
        command.push_str(&format!(" -H {}", quote(&format!("Authorization: {auth}"))));
        command.push_str(&format!(" {}", quote(&url(&signed.target))));
    } else {
        command.push_str(&format!(" {}", quote(&url(&signed.presigned_target()))));
    }
    if let Some(range) = &range {
        command.push_str(&format!(" -H {}", quote(&format!("Range: {range}"))));
    }
    if !opts.head {
        let name = match opts.file.key.rsplit('/').next() {
            Some("" | "." | "..") | None => "download",
            Some(name) => name,
        };
        command.push_str(&format!(" -o {}", quote(name)));
    }
    Ok(command)
}

/// `text` in single quotes for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

//! `gridmux certs`: a throwaway cluster CA and a certificate for each
//! node, for trying TLS out.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gridmux::tls::host_of;
use gridmux_bench::pki::ThrowawayCa;

/// What `gridmux certs` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The nodes (host:port as the cluster names them, comma-separated):
    /// each certificate names its node's host.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) nodes: Vec<String>,
    /// Directory to write into (created; existing files are not replaced).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// How many days the certificates are valid.
    #[arg(long, default_value_t = 30)]
    pub(crate) days: u64,
}

/// A file name for `node`'s files (`127.0.0.1:9001` → `127.0.0.1_9001`).
fn file_stem(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `text` to a new file (never over an existing one); keys are
/// readable by their owner only.
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn run(opts: &Options) -> Result<(), String> {
    if opts.days == 0 || opts.days > 3650 {
        return Err("--days: 1 to 3650".into());
    }
    let mut stems: Vec<String> = opts.nodes.iter().map(|n| file_stem(n)).collect();
    stems.sort();
    stems.dedup();
    if stems.len() != opts.nodes.len() {
        return Err("--nodes: a node is named twice".into());
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let ca = ThrowawayCa::new("gridmux throwaway cluster CA");
    let ca_path = opts.out.join("ca.crt");
    write_new(&ca_path, &ca.pem(), false)?;
    let now = SystemTime::now();
    let until = now + Duration::from_secs(opts.days * 86_400);
    println!("CA:   {}", ca_path.display());
    for node in &opts.nodes {
        let host = host_of(node);
        if host.is_empty() {
            return Err(format!("--nodes: {node:?} has no host"));
        }
        let identity = ca.issue_valid(&[host], now - Duration::from_secs(3600), until);
        let stem = file_stem(node);
        let (cert, key) = (
            opts.out.join(format!("{stem}.crt")),
            opts.out.join(format!("{stem}.key")),
        );
        write_new(&cert, &identity.cert, false)?;
        write_new(&key, &identity.key, true)?;
        println!(
            "{node}: --tls-cert {} --tls-key {} --tls-ca {}",
            cert.display(),
            key.display(),
            ca_path.display()
        );
    }
    println!(
        "valid {} days; the CA's key is not kept (throwaway: make a new set to add nodes)",
        opts.days
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{file_stem, host_of};

    #[test]
    fn hosts_and_file_names_of_node_names() {
        assert_eq!(host_of("127.0.0.1:9001"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9001"), "::1");
        assert_eq!(host_of("node-a.example:9000"), "node-a.example");
        assert_eq!(file_stem("127.0.0.1:9001"), "127.0.0.1_9001");
        assert_eq!(file_stem("[::1]:9001"), "___1__9001");
    }
}

//! `gridmux fetch`: one file from a node's file plane, with a progress
//! bar, and the throughput at the end.

use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gridmux::{Client, FileBody, FileLimits};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{rt, secrets, RuntimeKind};

/// Which file of which node, signed with what: shared by `fetch` and
/// `sign`.
#[derive(Debug, clap::Args)]
pub(crate) struct FileArgs {
    /// The node (host:port).
    #[arg(long)]
    pub(crate) node: String,
    /// File with the secret to sign with (the cluster's, or a client
    /// secret the node accepts), first line.
    #[arg(long)]
    pub(crate) secret_file: PathBuf,
    /// The file's key (for a directory route: its path beneath the root).
    pub(crate) key: String,
    /// The route (`gridmux node --files DIR` serves route `files`).
    #[arg(long, default_value = "files")]
    pub(crate) route: String,
    /// Bytes A to B, both included (e.g. `0-1023`); a signature covers
    /// its range.
    #[arg(long, value_parser = parse_range)]
    pub(crate) range: Option<Range<u64>>,
}

/// What `gridmux fetch` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) file: FileArgs,
    /// Write here (with splice on Linux) instead of standard output.
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// How long the connection may make no progress.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    pub(crate) timeout: Duration,
    /// The signer's name in the node's log.
    #[arg(long, default_value = "gridmux-fetch")]
    pub(crate) name: String,
    #[arg(long, value_enum, default_value = "tokio")]
    pub(crate) runtime: RuntimeKind,
    #[command(flatten)]
    pub(crate) tls: crate::tls_args::TlsArgs,
}

/// `A-B` (inclusive) as `A..B+1`.
pub(crate) fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let bad = || format!("range {text:?}: A-B, bytes A to B included");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b == u64::MAX {
        return Err(bad());
    }
    Ok(a..b + 1)
}

pub(crate) fn run(opts: Options) -> Result<(), String> {
    let secrets = secrets::read(&opts.file.secret_file)?;
    let tls = opts.tls.config()?;
    let output = opts.output.as_deref().map(Output::open).transpose()?;
    // Ctrl-C or SIGTERM: the fetch stops and the partial file goes.
    let stop = rt::interrupt()?;
    rt::block_on(opts.runtime, |runtime| async move {
        let limits = FileLimits {
            send_timeout: opts.timeout,
            ..FileLimits::default()
        };
        let mut client = Client::builder(opts.name.clone(), opts.file.node.clone())
            .secrets(secrets)
            .link(false)
            .file_limits(limits);
        if let Some(tls) = tls {
            client = client.tls(tls);
        }
        let client = client.start(runtime).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let work = async {
            let body = client
                .peer()
                .fetch(&opts.file.route, &opts.file.key, opts.file.range.clone())
                .await
                .map_err(|e| e.to_string())?;
            let bar = progress(body.len());
            let n = match &output {
                Some(Output::File { part, .. }) => body
                    .write_to_file_reporting(part, 0, &mut |n| bar.set_position(n))
                    .await
                    .map_err(|e| e.to_string())?,
                Some(Output::Stream(file)) => copy_to(body, &bar, &mut &*file).await?,
                None => copy_to(body, &bar, &mut std::io::stdout().lock()).await?,
            };
            bar.finish_and_clear();
            Ok::<_, String>(n)
        };
        let interrupted = async {
            stop.cancelled().await;
            Err("interrupted".to_owned())
        };
        let result = futures_lite::future::or(work, interrupted).await;
        client.shutdown(Duration::from_millis(200)).await;
        let n = result?;
        if let Some(output) = output {
            output.commit()?;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "fetched {n} bytes in {secs:.3} s ({:.1} MiB/s)",
            n as f64 / secs.max(1e-9) / (1 << 20) as f64
        );
        Ok(())
    })
}

/// Where `-o` writes.
enum Output {
    /// A regular file: written (with splice) to a partial file beside it
    /// (beside its target, through a symbolic link), with its permissions,
    /// renamed over it once the body is whole. A failed or interrupted
    /// fetch leaves the old file as it was, and no partial file.
    File {
        part: std::fs::File,
        part_path: PathBuf,
        path: PathBuf,
        committed: bool,
    },
    /// Something else (a pipe, a device, anything under `/dev` or
    /// `/proc`): written as the body is read.
    Stream(std::fs::File),
}

impl Output {
    fn open(path: &std::path::Path) -> Result<Self, String> {
        let shown = path.display();
        let special = |p: &std::path::Path| p.starts_with("/dev") || p.starts_with("/proc");
        let resolved = std::fs::canonicalize(path).ok();
        let existing = resolved.as_deref().and_then(|r| std::fs::metadata(r).ok());
        if special(path)
            || resolved.as_deref().is_some_and(special)
            || existing.as_ref().is_some_and(|m| !m.is_file())
        {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("{shown}: {e}"))?;
            return Ok(Self::Stream(file));
        }
        let target = resolved.unwrap_or_else(|| path.to_owned());
        let name = target
            .file_name()
            .ok_or_else(|| format!("{shown}: not a file name"))?;
        let mut part_name = std::ffi::OsString::from(".");
        part_name.push(name);
        part_name.push(format!(".gridmux-{}.part", std::process::id()));
        let part_path = target.with_file_name(part_name);
        let part = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part_path)
            .map_err(|e| format!("{}: {e}", part_path.display()))?;
        let output = Self::File {
            part,
            part_path,
            path: target,
            committed: false,
        };
        if let (Some(meta), Self::File { part, .. }) = (existing, &output) {
            part.set_permissions(meta.permissions())
                .map_err(|e| format!("{shown}: {e}"))?;
        }
        Ok(output)
    }

    /// The body is whole: the partial file takes the output's name.
    fn commit(mut self) -> Result<(), String> {
        if let Self::File {
            part_path,
            path,
            committed,
            ..
        } = &mut self
        {
            std::fs::rename(&*part_path, &*path).map_err(|e| format!("{}: {e}", path.display()))?;
            *committed = true;
        }
        Ok(())
    }
}

impl Drop for Output {
    /// Not committed: the partial file goes.
    fn drop(&mut self) {
        if let Self::File {
            part_path,
            committed: false,
            ..
        } = self
        {
            let _ = std::fs::remove_file(part_path);
        }
    }
}

/// A bar of bytes, rate and ETA on standard error (drawn only on a
/// terminal).
fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}");
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// Writes the body to `out` as it is read.
async fn copy_to(
    mut body: FileBody,
    bar: &ProgressBar,
    out: &mut impl std::io::Write,
) -> Result<u64, String> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            out.flush().map_err(|e| format!("writing: {e}"))?;
            return Ok(total);
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("writing: {e}"))?;
        total += n as u64;
        bar.set_position(total);
    }
}

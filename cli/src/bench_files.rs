//! `gridmux bench-files`: a file warm in the page cache, fetched over
//! loopback by one client, from servers in processes of their own so
//! that each one's CPU time is its own: a node with `sendfile`, a node
//! with the copy fallback, a plain write of the same bytes from memory
//! (the loopback limit), and nginx with `sendfile on` when it is
//! installed. Reports wall GiB/s and the server's CPU-seconds per GiB.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use gridmux::Keyring;
use gridmux_core::auth::request;
use gridmux_core::http::files::{self, FileToSign};
use gridmux_core::http::{parse_response, Limits};

/// What `gridmux bench-files` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// File size in MiB.
    #[arg(long, default_value_t = 1024)]
    pub(crate) mib: u64,
    /// Fetches per row.
    #[arg(long, default_value_t = 3)]
    pub(crate) fetches: u32,
    /// Where the file is made (default: the system's temporary directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Serve the file from memory on this port (the benchmark starts
    /// itself with it for its baseline row).
    #[arg(long, hide = true)]
    pub(crate) memory_server: Option<u16>,
}

const SECRET: &str = "bench-files secret 0123456789";

/// One row of the table.
struct Row {
    name: &'static str,
    gib_per_s: f64,
    cpu_per_gib: f64,
}

pub(crate) fn run(opts: &Options) -> Result<(), String> {
    if let Some(port) = opts.memory_server {
        return memory_server(port, opts.mib << 20);
    }
    let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("gridmux-bench-files-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    std::fs::create_dir_all(dir.join("served")).map_err(|e| e.to_string())?;
    let len = opts.mib << 20;
    make_file(&dir.join("served/blob"), len)?;
    std::fs::write(dir.join("secret"), SECRET).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!(
        "{} MiB file, warm in the page cache, fetched {} times per row over loopback by one \
         client; CPU is the server process's",
        opts.mib, opts.fetches
    );
    let mut rows = Vec::new();
    let rows_of_nodes = [
        ("gridmux, sendfile", "sendfile", false),
        ("gridmux, sendfile on a thread", "sendfile", true),
        ("gridmux, copy", "copy", false),
    ];
    for (name, method, threads) in rows_of_nodes {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let server = Server::start(
            Command::new(&exe)
                .args(["node", "--listen", &addr, "--peers", &addr, "--files"])
                .arg(dir.join("served"))
                .arg("--secret-file")
                .arg(dir.join("secret"))
                .args(["--file-method", method])
                .args(threads.then_some("--file-threads")),
            port,
        )?;
        let fetch = || signed_get(&addr, "blob");
        rows.push(measure(name, &server, &fetch, len, opts.fetches)?);
    }
    let port = free_port()?;
    let server = Server::start(
        Command::new(&exe).args([
            "bench-files",
            "--mib",
            &opts.mib.to_string(),
            "--memory-server",
            &port.to_string(),
        ]),
        port,
    )?;
    let get = "GET /blob HTTP/1.1\r\nHost: b\r\n\r\n".to_owned();
    rows.push(measure(
        "write from memory",
        &server,
        &|| get.clone(),
        len,
        opts.fetches,
    )?);
    drop(server);
    match nginx(&dir) {
        Err(e) => println!("(nginx did not start: its row is skipped: {e})"),
        Ok(Some((server, port))) => {
            let get = format!("GET /blob HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
            rows.push(measure(
                "nginx, sendfile on",
                &server,
                &|| get.clone(),
                len,
                opts.fetches,
            )?);
        }
        Ok(None) => println!("(nginx is not installed: its row is skipped)"),
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[Row]) {
    let memory = rows.iter().find(|r| r.name == "write from memory");
    let nginx = rows.iter().find(|r| r.name.starts_with("nginx"));
    let copy = rows.iter().find(|r| r.name == "gridmux, copy");
    println!(
        "| server | GiB/s | CPU-s/GiB | vs memory write | vs nginx (GiB/s, CPU) | CPU vs copy |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let ratio = |other: Option<&Row>, f: fn(&Row) -> f64| {
            other.map_or("—".to_owned(), |o| format!("{:.2}×", f(r) / f(o)))
        };
        println!(
            "| {} | {:.2} | {:.3} | {} | {} / {} | {} |",
            r.name,
            r.gib_per_s,
            r.cpu_per_gib,
            ratio(memory, |r| r.gib_per_s),
            ratio(nginx, |r| r.gib_per_s),
            ratio(nginx, |r| r.cpu_per_gib),
            ratio(copy, |r| r.cpu_per_gib),
        );
    }
}

/// Fetches `n` times (after one warm-up fetch) and measures.
fn measure(
    name: &'static str,
    server: &Server,
    request: &dyn Fn() -> String,
    len: u64,
    n: u32,
) -> Result<Row, String> {
    fetch(server.port, &request(), len)?;
    let cpu = server.cpu()?;
    let started = Instant::now();
    for _ in 0..n {
        fetch(server.port, &request(), len)?;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = server.cpu()? - cpu;
    let gib = (len * u64::from(n)) as f64 / (1u64 << 30) as f64;
    Ok(Row {
        name,
        gib_per_s: gib / wall,
        cpu_per_gib: cpu / gib,
    })
}

/// One GET read to its end: the same client for every row.
fn fetch(port: u16, request: &str, len: u64) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut input = Vec::new();
    let (head, head_len) = loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        input.extend_from_slice(&buf[..n]);
        if let Some(parsed) =
            parse_response(&input, Limits::default()).map_err(|e| e.to_string())?
        {
            break parsed;
        }
    };
    if head.status != 200 || head.content_length() != Some(len) {
        return Err(format!(
            "answer {} of {:?} bytes",
            head.status,
            head.content_length()
        ));
    }
    let mut got = (input.len() - head_len) as u64;
    while got < len {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("body ended after {got} of {len} bytes"));
        }
        got += n as u64;
    }
    Ok(())
}

/// A GET of `key` under route `files`, signed with the bench's secret.
fn signed_get(addr: &str, key: &str) -> String {
    let keys = Keyring::new([SECRET]).expect("a secret");
    let signed = files::sign(
        &keys,
        &FileToSign {
            method: "GET",
            route: "files",
            key,
            range: None,
            signer: "bench",
            expires: request::expires_at(SystemTime::now(), Duration::from_secs(50)),
        },
    )
    .expect("a signable request");
    format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n",
        signed.target,
        signed.authorization()
    )
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `command` and waits (at most 10 s) until `port` accepts.
    fn start(command: &mut Command, port: u16) -> Result<Self, String> {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a server: {e}"))?;
        let server = Self { child, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("a server did not listen on port {port}"))
    }

    /// CPU seconds of the process so far.
    fn cpu(&self) -> Result<f64, String> {
        process_cpu(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CPU time of process `pid` so far, threads that ended included
/// (`utime` + `stime` of `/proc/PID/stat`), in seconds.
fn process_cpu(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The fields after the command name, which ends with the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line (11 and 12 here).
    let tick = rustix::param::clock_ticks_per_second() as f64;
    Ok((ticks(11) + ticks(12)) as f64 / tick)
}

/// nginx serving `dir/served` with `sendfile on`, one process, if it is
/// installed.
fn nginx(dir: &Path) -> Result<Option<(Server, u16)>, String> {
    let Some(bin) = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        return Ok(None);
    };
    let port = free_port()?;
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;\n\
         error_log {d}/nginx.err;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; sendfile on; tcp_nopush on; client_body_temp_path {d};\n\
           proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           server {{ listen 127.0.0.1:{port}; root {d}/served; }} }}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg("-c").arg(&conf_path).arg("-p").arg(dir);
    Server::start(&mut command, port).map(|s| Some((s, port)))
}

/// The baseline: every GET answered with `len` bytes written from memory.
fn memory_server(port: u16, len: u64) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let data = vec![0x5au8; 8 << 20];
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
        if s.write_all(answer.as_bytes()).is_err() {
            continue;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(data.len() as u64) as usize;
            if s.write_all(&data[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
    }
    Ok(())
}

/// Writes `len` bytes of a pattern to `path` and reads them back once, so
/// that the file is in the page cache.
fn make_file(path: &Path, len: u64) -> Result<(), String> {
    let mut file = File::create(path).map_err(|e| e.to_string())?;
    let chunk: Vec<u8> = (0..(8 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    file.sync_all().map_err(|e| e.to_string())?;
    let mut read = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 8 << 20];
    while read.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
    Ok(())
}

/// A port free now on loopback.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Removes the bench's directory.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

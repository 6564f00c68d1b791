//! The file plane's requests and answers, without IO: `GET`/`HEAD
//! /gridmux/v1/files/<route>?key=…`, signed ([`crate::auth::request`]),
//! with one optional `Range`. The adapters open the file and send the body.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use gridmux_core::http::files::{self, FileMeta};
//!
//! let (path, query) = files::target("data", "dir/a b.bin");
//! assert_eq!((path.as_str(), query.as_str()), ("/gridmux/v1/files/data", "key=dir%2Fa%20b.bin"));
//! let meta = FileMeta { len: 10, modified: Some(UNIX_EPOCH + Duration::from_secs(784111777)) };
//! let answer = files::answer(Some(b"bytes=2-"), &meta);
//! assert_eq!((answer.response.status, answer.body), (206, 2..10));
//! assert!(answer.response.headers.contains(&("Last-Modified".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into())));
//! ```

use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{RangeRequest, RequestHead, Response};
use crate::auth::request::{
    self, RequestAuthError, RequestToSign, SignedRequest, Verified, AUTH_SCHEME,
};
use crate::auth::Keyring;

/// Where file routes live on the node's port.
pub const FILES_PREFIX: &str = "/gridmux/v1/files/";

/// A checked file request: signed, for a well-formed route and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    /// The route (the path segment after [`FILES_PREFIX`]).
    pub route: String,
    /// The key, percent-decoded.
    pub key: String,
    /// Who signed it.
    pub signer: String,
    /// A `HEAD` request: headers only.
    pub head_only: bool,
}

/// Why a file request is refused; [`response`](Self::response) is the
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileRefusal {
    /// Not `GET` or `HEAD`: `405`.
    #[error("method not allowed")]
    Method,
    /// The route or key is not in the expected form: `400`.
    #[error("bad file request: {0}")]
    BadRequest(&'static str),
    /// No signature: `401`.
    #[error("unsigned file request")]
    Unsigned,
    /// A signature that does not hold (for logs; the answer says no
    /// more than `403`).
    #[error("refused file request: {0}")]
    Forbidden(RequestAuthError),
    /// No such route or file: `404`.
    #[error("no such file")]
    NotFound,
    /// Too many transfers at once (node-wide or for this signer): `503`.
    #[error("too many transfers")]
    Busy,
    /// The file could not be read: `500`.
    #[error("file not readable")]
    Internal,
}

impl FileRefusal {
    /// The status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Method => 405,
            Self::BadRequest(_) => 400,
            Self::Unsigned => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound => 404,
            Self::Busy => 503,
            Self::Internal => 500,
        }
    }

    /// The answer: a short text that reveals nothing a signer would not
    /// know.
    pub fn response(&self) -> Response {
        let text = match self {
            Self::Forbidden(_) => "request signature refused\n".to_owned(),
            other => format!("{other}\n"),
        };
        let response = Response::text(self.status(), text);
        match self {
            Self::Method => response.header("Allow", "GET, HEAD"),
            Self::Unsigned => response.header("WWW-Authenticate", AUTH_SCHEME),
            Self::Busy => response.header("Retry-After", "1"),
            _ => response,
        }
    }
}

/// Checks a request under [`FILES_PREFIX`]: the method, then the
/// signature (before anything about the route is revealed), then the
/// route and `key` parameter. `now` is wall time, for the expiry.
pub fn check(
    head: &RequestHead,
    keys: &Keyring,
    now: SystemTime,
    max_validity: Duration,
) -> Result<FileRequest, FileRefusal> {
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(FileRefusal::Method),
    };
    let text = |name| match head.header(name) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| FileRefusal::BadRequest("header not UTF-8")),
    };
    let (range, authorization) = (text("range")?, text("authorization")?);
    let verified = request::verify(
        keys,
        &head.method,
        &head.target,
        range,
        authorization,
        now,
        max_validity,
    );
    let Verified { signer, .. } = verified.map_err(|e| match e {
        RequestAuthError::Missing => FileRefusal::Unsigned,
        e => FileRefusal::Forbidden(e),
    })?;
    let route = head
        .path()
        .strip_prefix(FILES_PREFIX)
        .ok_or(FileRefusal::NotFound)?;
    if !valid_route(route) {
        return Err(FileRefusal::BadRequest("route"));
    }
    let mut key = None;
    for param in head.query().unwrap_or("").split('&') {
        let Some(raw) = param.strip_prefix("key=") else {
            continue;
        };
        if key.is_some() {
            return Err(FileRefusal::BadRequest("more than one key"));
        }
        key = Some(percent_decode(raw).ok_or(FileRefusal::BadRequest("key encoding"))?);
    }
    let key = key.ok_or(FileRefusal::BadRequest("no key"))?;
    if key.is_empty() || key.contains('\0') {
        return Err(FileRefusal::BadRequest("key"));
    }
    Ok(FileRequest {
        route: route.to_owned(),
        key,
        signer,
        head_only,
    })
}

/// Whether `route` can name a file route: 1–64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_route(route: &str) -> bool {
    (1..=64).contains(&route.len())
        && route
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The path and the query (`key=…`, percent-encoded) of a file request,
/// for signing and sending.
pub fn target(route: &str, key: &str) -> (String, String) {
    let mut query = String::with_capacity(4 + key.len() * 3);
    query.push_str("key=");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            query.push(char::from(b));
        } else {
            let _ = write!(query, "%{b:02X}");
        }
    }
    (format!("{FILES_PREFIX}{route}"), query)
}

/// What a file request signs: its method, its target from [`target`], the
/// `Range` header it will carry, the signer and the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileToSign<'a> {
    /// `GET` or `HEAD`.
    pub method: &'a str,
    /// The route.
    pub route: &'a str,
    /// The key (not encoded).
    pub key: &'a str,
    /// The `Range` header value, if any.
    pub range: Option<&'a str>,
    /// The signer's name.
    pub signer: &'a str,
    /// The expiry in Unix seconds.
    pub expires: u64,
}

/// Signs a file request with the keyring's current secret.
pub fn sign(keys: &Keyring, file: &FileToSign<'_>) -> Result<SignedRequest, RequestAuthError> {
    let (path, query) = target(file.route, file.key);
    request::sign(
        keys,
        &RequestToSign {
            method: file.method,
            path: &path,
            query: &query,
            range: file.range,
            signer: file.signer,
            expires: file.expires,
        },
    )
}

/// The `Range` value of the bytes `range` (`bytes=first-last`); `None`
/// for an empty range.
pub fn range_header(range: &Range<u64>) -> Option<String> {
    (range.end > range.start).then(|| format!("bytes={}-{}", range.start, range.end - 1))
}

/// `%XX` sequences decoded; `None` if one is broken or the result is not
/// UTF-8. `+` stays a plus.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What is known of a file before its bytes go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Its length: the representation served.
    pub len: u64,
    /// Its modification time, if known.
    pub modified: Option<SystemTime>,
}

impl FileMeta {
    /// A strong entity tag from the length and modification time (as
    /// nginx does): a rewrite of the file changes it.
    pub fn etag(&self) -> String {
        let since = (self.modified)
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        format!(
            "\"{:x}.{:x}-{:x}\"",
            since.as_secs(),
            since.subsec_nanos(),
            self.len
        )
    }
}

/// The answer to a checked request: the response head (its body is
/// empty) and the bytes of the file to send after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAnswer {
    /// Status and headers; `Content-Length` is `body`'s length.
    pub response: Response,
    /// The bytes of the file, relative to its start (empty for a `416`).
    pub body: Range<u64>,
}

/// The answer to a request with this `Range` header for `meta`'s file:
/// `200`, `206` with `Content-Range`, or `416` with `Content-Range:
/// bytes */len` (a `HEAD` gets the same head).
pub fn answer(range: Option<&[u8]>, meta: &FileMeta) -> FileAnswer {
    let range = RangeRequest::parse(range, meta.len);
    let (status, body) = match &range {
        RangeRequest::Full => (200, 0..meta.len),
        RangeRequest::Partial(r) => (206, r.clone()),
        RangeRequest::Unsatisfiable => (416, 0..0),
    };
    let mut response = Response::new(status)
        .header("Accept-Ranges", "bytes")
        .header("ETag", meta.etag());
    if let Some(modified) = meta.modified {
        response = response.header("Last-Modified", http_date(modified));
    }
    if let Some(value) = range.content_range(meta.len) {
        response = response.header("Content-Range", value);
    }
    if status != 416 {
        response = response.header("Content-Type", "application/octet-stream");
    }
    FileAnswer { response, body }
}

/// `t` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994
/// 08:49:37 GMT`; times before 1970 are written as its start.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

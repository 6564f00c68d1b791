//! Request heads: parsing with limits, and what a server asks of them.

use bytes::Bytes;

use super::HttpError;

/// A header: name as received, raw value.
pub type Header = (String, Bytes);

/// Limits of a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (request line and headers) in bytes.
    pub max_head: usize,
    /// Most headers.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// A parsed HTTP/1.x request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `HEAD`, ….
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// All headers, in order.
    pub headers: Vec<Header>,
}

impl RequestHead {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query, without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether a comma-separated header holds `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }

    /// Whether the client asks for a WebSocket upgrade.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.has_token("upgrade", "websocket") && self.has_token("connection", "upgrade")
    }

    /// Whether the connection stays open after the response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.minor_version >= 1 {
            !self.has_token("connection", "close")
        } else {
            self.has_token("connection", "keep-alive")
        }
    }

    /// Whether a body follows the head (`Content-Length` > 0 or any
    /// `Transfer-Encoding`). Conflicting or malformed lengths are errors.
    pub fn has_body(&self) -> Result<bool, HttpError> {
        if self.header("transfer-encoding").is_some() {
            return Ok(true);
        }
        let length = content_length(&self.headers)?;
        Ok(length.unwrap_or(0) > 0)
    }
}

/// The first value of header `name` (case-insensitive) in `headers`.
pub(super) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| &v[..])
}

/// Whether a comma-separated header `name` in `headers` holds `token`
/// (case-insensitive).
pub(super) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The `Content-Length` of `headers`, if any; conflicting or malformed
/// values are errors.
pub(super) fn content_length(headers: &[Header]) -> Result<Option<u64>, HttpError> {
    let mut length: Option<u64> = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        let parsed = std::str::from_utf8(v)
            .ok()
            .map(|s| s.trim_matches([' ', '\t']))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(HttpError::Malformed("invalid Content-Length".into()))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(HttpError::Malformed("conflicting Content-Length".into()));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// The error of a head past `limits`.
pub(super) fn too_large(limits: Limits) -> HttpError {
    HttpError::HeadTooLarge {
        max: limits.max_head,
        max_headers: limits.max_headers,
    }
}

/// Parses a request head at the front of `buf`: `Ok(None)` while it is
/// incomplete, `Ok(Some((head, len)))` once `len` bytes form a head.
pub fn parse_request(
    buf: &[u8],
    limits: Limits,
) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_head => len,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_head => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(too_large(limits)),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let head = RequestHead {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or("/").to_owned(),
        minor_version: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value)))
            .collect(),
    };
    Ok(Some((head, len)))
}

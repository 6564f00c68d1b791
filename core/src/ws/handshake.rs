//! The opening handshake (RFC 6455 §4): client request builder and response
//! validator, server request parser and response builders.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// The GUID appended to the client key (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Most headers accepted in a handshake message.
const MAX_HEADERS: usize = 64;

/// Why a handshake failed. On the server side, [`HandshakeError::status`]
/// gives the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not a well-formed HTTP/1.1 message.
    #[error("malformed HTTP message: {0}")]
    Malformed(String),
    /// The head exceeds the size or header-count limit.
    #[error("handshake head larger than {max} bytes or {MAX_HEADERS} headers")]
    TooLarge {
        /// Configured maximum size in bytes.
        max: usize,
    },
    /// The request method is not GET.
    #[error("method {0} not allowed for a WebSocket upgrade")]
    Method(String),
    /// The message is not HTTP/1.1.
    #[error("HTTP/1.1 required")]
    HttpVersion,
    /// A required header is missing or empty.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// `Upgrade: websocket` or `Connection: upgrade` is missing.
    #[error("not a WebSocket upgrade: {0}")]
    NotUpgrade(&'static str),
    /// `Sec-WebSocket-Key` is not 16 bytes in base64.
    #[error("Sec-WebSocket-Key is not a base64-encoded 16-byte value")]
    BadKey,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported Sec-WebSocket-Version {0:?} (supported: 13)")]
    UnsupportedVersion(String),
    /// The server answered with another status than 101.
    #[error("server refused the upgrade: {code} {reason}")]
    Refused {
        /// HTTP status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// `Sec-WebSocket-Accept` does not match the key we sent.
    #[error("Sec-WebSocket-Accept does not match the request key")]
    BadAccept,
    /// The server selected an extension or subprotocol we did not offer.
    #[error("server selected {0} that the client did not offer")]
    NotOffered(&'static str),
}

impl HandshakeError {
    /// The HTTP status a server answers a failed request with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 431,
            Self::Method(_) => 405,
            Self::NotUpgrade(_) | Self::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
///
/// ```
/// // RFC 6455 §1.3
/// assert_eq!(
///     gridmux_core::ws::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    BASE64.encode(sha.finalize())
}

/// A header: its name as sent and its raw value.
pub type Header = (String, Bytes);

fn collect_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value)))
        .collect()
}

fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| &v[..])
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The length of a complete head within `max_len`, `None` while it is
/// incomplete, or the error to fail with.
fn head_len(
    parsed: httparse::Result<usize>,
    buf_len: usize,
    max_len: usize,
) -> Result<Option<usize>, HandshakeError> {
    match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max_len => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buf_len <= max_len => Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            Err(HandshakeError::TooLarge { max: max_len })
        }
        Err(e) => Err(HandshakeError::Malformed(e.to_string())),
    }
}

/// `Upgrade: websocket` and `Connection: upgrade`, required both ways.
fn check_upgrade_tokens(headers: &[Header]) -> Result<(), HandshakeError> {
    if !has_token(find(headers, "upgrade"), "websocket") {
        return Err(HandshakeError::NotUpgrade("no `Upgrade: websocket`"));
    }
    if !has_token(find(headers, "connection"), "upgrade") {
        return Err(HandshakeError::NotUpgrade("no `Connection: upgrade`"));
    }
    Ok(())
}

/// Finds where an HTTP head may end in a growing buffer without rescanning
/// it: a full parse is worth running only on the first bytes (to refuse
/// garbage at once) and once a blank line has arrived. Feeding a head one
/// byte per read then costs O(length), not O(length²).
#[derive(Debug, Default, Clone)]
pub struct HeadScanner {
    /// Bytes of the buffer already searched for a blank line.
    scanned: usize,
}

impl HeadScanner {
    /// Whether `buf` (the same buffer, grown since the last call) is worth
    /// a full parse now.
    pub fn worth_parsing(&mut self, buf: &[u8]) -> bool {
        let first = self.scanned == 0;
        // A blank line may straddle the previous end: back up 2 bytes.
        let from = self.scanned.saturating_sub(2).min(buf.len());
        self.scanned = buf.len().max(1);
        let ends_head = (from..buf.len()).any(|i| {
            buf[i] == b'\n'
                && match buf.get(i + 1) {
                    Some(b'\n') => true,
                    Some(b'\r') => buf.get(i + 2) == Some(&b'\n'),
                    _ => false,
                }
        });
        first || ends_head
    }

    /// Starts over (a head was taken off the front of the buffer).
    pub fn reset(&mut self) {
        self.scanned = 0;
    }
}

/// A validated upgrade request, as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Request target: path and query, e.g. `/runCase?case=1`.
    pub path: String,
    /// All headers, in order.
    pub headers: Vec<Header>,
    /// The `Sec-WebSocket-Accept` value that answers this request.
    pub accept: String,
}

impl UpgradeRequest {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(&self.headers, name)
    }
}

/// Parses and validates an upgrade request at the front of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, `Ok(Some((request, len)))`
/// once `len` bytes form a valid upgrade request.
pub fn parse_request(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Some(len) = head_len(req.parse(buf), buf.len(), max_len)? else {
        return Ok(None);
    };
    let request = validate_request(
        req.method.unwrap_or_default(),
        req.version.unwrap_or(0),
        req.path.unwrap_or("/"),
        collect_headers(req.headers),
    )?;
    Ok(Some((request, len)))
}

/// Validates an upgrade request whose head was already parsed (by an HTTP
/// router): method, version, `Host`, the upgrade tokens, the WebSocket
/// version and key. `minor_version` is HTTP/1.x's minor number.
pub fn validate_request(
    method: &str,
    minor_version: u8,
    path: &str,
    headers: Vec<Header>,
) -> Result<UpgradeRequest, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::Method(method.to_owned()));
    }
    if minor_version != 1 {
        return Err(HandshakeError::HttpVersion);
    }
    if find(&headers, "host").is_none_or(<[u8]>::is_empty) {
        return Err(HandshakeError::MissingHeader("Host"));
    }
    check_upgrade_tokens(&headers)?;
    let version = find(&headers, "sec-websocket-version")
        .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Version"))?;
    if version.trim_ascii() != b"13" {
        return Err(HandshakeError::UnsupportedVersion(
            String::from_utf8_lossy(version).into_owned(),
        ));
    }
    let key = find(&headers, "sec-websocket-key")
        .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Key"))?
        .trim_ascii();
    if BASE64.decode(key).map(|k| k.len()) != Ok(16) {
        return Err(HandshakeError::BadKey);
    }
    let accept = accept_key(key);
    Ok(UpgradeRequest {
        path: path.to_owned(),
        headers,
        accept,
    })
}

/// The `101 Switching Protocols` answer to a valid request.
pub fn accept_response(request: &UpgradeRequest) -> Bytes {
    accept_response_with(request, &[])
}

/// The `101` answer with extra headers (names and values must be valid
/// header tokens and values; the caller controls them).
pub fn accept_response_with(request: &UpgradeRequest, extra: &[(&str, &str)]) -> Bytes {
    let mut out = BytesMut::with_capacity(160 + extra.len() * 96);
    out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
    out.put_slice(b"Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.put_slice(request.accept.as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in extra {
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

/// The `Sec-WebSocket-Key` a client sends for `nonce`.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// The error answer to a failed request: status from [`HandshakeError::status`],
/// the error as a plain-text body, and `Connection: close`.
pub fn reject_response(error: &HandshakeError) -> Bytes {
    let status = error.status();
    let reason = match status {
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let body = format!("{error}\n");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    match status {
        405 => head.push_str("Allow: GET\r\n"),
        426 => head.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"),
        _ => {}
    }
    head.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    head.push_str(&body);
    Bytes::from(head)
}

/// What a client asks for in its upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// Value of the `Host` header, e.g. `127.0.0.1:9001`.
    pub host: String,
    /// Request target: path and query.
    pub path: String,
    /// Extra headers (e.g. `Authorization`), sent as given.
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` on `host` with no extra headers.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            path: path.into(),
            headers: Vec::new(),
        }
    }

    /// Encodes the request with the given 16-byte nonce; the returned
    /// [`ClientHandshake`] validates the server's answer.
    pub fn encode(&self, nonce: [u8; 16]) -> (Bytes, ClientHandshake) {
        let key = client_key(nonce);
        let mut out = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        (
            Bytes::from(out),
            ClientHandshake {
                expected_accept: accept_key(key.as_bytes()),
            },
        )
    }
}

/// A validated `101` answer, as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeResponse {
    /// All headers, in order.
    pub headers: Vec<Header>,
}

impl UpgradeResponse {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(&self.headers, name)
    }
}

/// The client's side of a handshake in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    expected_accept: String,
}

impl ClientHandshake {
    /// Parses and validates the server's answer at the front of `buf`, as
    /// [`parse_request`] does for requests.
    pub fn parse_response(
        &self,
        buf: &[u8],
        max_len: usize,
    ) -> Result<Option<(UpgradeResponse, usize)>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let Some(len) = head_len(res.parse(buf), buf.len(), max_len)? else {
            return Ok(None);
        };
        if res.version != Some(1) {
            return Err(HandshakeError::HttpVersion);
        }
        let code = res.code.unwrap_or_default();
        if code != 101 {
            let reason = res.reason.unwrap_or_default().to_owned();
            return Err(HandshakeError::Refused { code, reason });
        }
        let headers = collect_headers(res.headers);
        check_upgrade_tokens(&headers)?;
        let accept = find(&headers, "sec-websocket-accept")
            .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Accept"))?;
        if accept.trim_ascii() != self.expected_accept.as_bytes() {
            return Err(HandshakeError::BadAccept);
        }
        if find(&headers, "sec-websocket-extensions").is_some() {
            return Err(HandshakeError::NotOffered("an extension"));
        }
        if find(&headers, "sec-websocket-protocol").is_some() {
            return Err(HandshakeError::NotOffered("a subprotocol"));
        }
        Ok(Some((UpgradeResponse { headers }, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n\
        Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn parses_the_rfc_request_and_answers_it() {
        let (req, len) = parse_request(RFC_REQUEST, 8192).unwrap().unwrap();
        assert_eq!(len, RFC_REQUEST.len());
        assert_eq!(req.path, "/chat");
        assert_eq!(req.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(req.header("ORIGIN"), Some(&b"http://example.com"[..]));
        let res = accept_response(&req);
        assert!(res.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(res.ends_with(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    }

    #[test]
    fn incomplete_request_waits_for_more() {
        for cut in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse_request(&RFC_REQUEST[..cut], 8192),
                Ok(None),
                "cut {cut}"
            );
        }
    }

    fn replace(from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(RFC_REQUEST.to_vec())
            .unwrap()
            .replace(from, to)
            .into_bytes()
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        let cases = [
            (replace("GET", "POST"), 405),
            (replace("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"), 400),
            (replace("Upgrade: websocket\r\n", ""), 426),
            (replace("keep-alive, Upgrade", "keep-alive"), 426),
            (replace("Version: 13", "Version: 8"), 426),
            (replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (replace("Host: server.example.com\r\n", ""), 400),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), 400),
        ];
        for (req, status) in cases {
            let err = parse_request(&req, 8192).unwrap_err();
            assert_eq!(err.status(), status, "{err}");
            let res = reject_response(&err);
            let text = std::str::from_utf8(&res).unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
            assert!(text.contains(&err.to_string()));
        }
    }

    #[test]
    fn oversized_head_is_refused_with_431() {
        let err = parse_request(RFC_REQUEST, 64).unwrap_err();
        assert_eq!(err, HandshakeError::TooLarge { max: 64 });
        assert_eq!(err.status(), 431);
        let endless = vec![b'a'; 100];
        assert_eq!(parse_request(&endless, 64).unwrap_err().status(), 431);
    }

    #[test]
    fn client_and_server_agree() {
        let (wire, hs) = ClientRequest::new("h:1", "/x?y=1").encode([7; 16]);
        let (req, _) = parse_request(&wire, 8192).unwrap().unwrap();
        assert_eq!(req.path, "/x?y=1");
        let res = accept_response(&req);
        let (_, len) = hs.parse_response(&res, 8192).unwrap().unwrap();
        assert_eq!(len, res.len());
    }

    #[test]
    fn client_rejects_bad_answers() {
        let (_, hs) = ClientRequest::new("h", "/").encode([1; 16]);
        let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            hs.parse_response(refused, 8192),
            Err(HandshakeError::Refused {
                code: 403,
                reason: "Forbidden".into()
            })
        );
        let wrong = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            hs.parse_response(wrong, 8192),
            Err(HandshakeError::BadAccept)
        );
    }
}

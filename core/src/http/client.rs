//! The client side: response heads, for the file plane's fetches.

use bytes::Bytes;

use super::request::{content_length, find_header, has_token, too_large};
use super::{Header, HttpError, Limits};

/// A parsed HTTP/1.x response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// All headers, in order.
    pub headers: Vec<Header>,
}

impl ResponseHead {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// First value of a header as text, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The length of the body that follows, for a response to a request
    /// of method `head_request` (`HEAD`) or not. Only `Content-Length`
    /// framing is accepted: a `Transfer-Encoding`, a missing length on a
    /// status that has a body, or conflicting lengths are errors (no
    /// body is read to the end of the connection).
    pub fn body_len(&self, head_request: bool) -> Result<u64, HttpError> {
        if head_request || (100..200).contains(&self.status) || matches!(self.status, 204 | 304) {
            return Ok(0);
        }
        if self.header("transfer-encoding").is_some() {
            return Err(HttpError::Malformed(
                "Transfer-Encoding in a response".into(),
            ));
        }
        content_length(&self.headers)?
            .ok_or_else(|| HttpError::Malformed("response without Content-Length".into()))
    }

    /// The `Content-Length` header, if present and well formed.
    pub fn content_length(&self) -> Option<u64> {
        content_length(&self.headers).ok().flatten()
    }

    /// Whether the connection may carry another request afterwards.
    pub fn keep_alive(&self) -> bool {
        self.minor_version >= 1 && !has_token(&self.headers, "connection", "close")
    }
}

/// Parses a response head at the front of `buf`: `Ok(None)` while it is
/// incomplete, `Ok(Some((head, len)))` once `len` bytes form a head.
pub fn parse_response(
    buf: &[u8],
    limits: Limits,
) -> Result<Option<(ResponseHead, usize)>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_head => len,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_head => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(too_large(limits)),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let head = ResponseHead {
        status: resp.code.unwrap_or_default(),
        minor_version: resp.version.unwrap_or(1),
        headers: resp
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), Bytes::copy_from_slice(h.value)))
            .collect(),
    };
    Ok(Some((head, len)))
}

//! Response heads and bodies.

use bytes::Bytes;

/// An HTTP/1.1 response. [`encode`](Self::encode) adds `Content-Length`
/// (and `Connection: close` when asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body (not written for `HEAD` requests, 1xx, 204 and 304).
    pub body: Bytes,
}

impl Response {
    /// A response with `status` and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Bytes::from(body.into()))
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// The head, and the body unless `head_only` (a `HEAD` request) or the
    /// status forbids one: `[head]` or `[head, body]`, the body passed by
    /// reference.
    pub fn encode(&self, head_only: bool, close: bool) -> Vec<Bytes> {
        let mut parts = vec![self.encode_head(self.body.len() as u64, close)];
        if !head_only && self.allows_body() && !self.body.is_empty() {
            parts.push(self.body.clone());
        }
        parts
    }

    /// The status line and headers alone, announcing a body of
    /// `content_length` bytes that the caller sends (a file region). For
    /// a status that forbids a body, no `Content-Length` is written.
    pub fn encode_head(&self, content_length: u64, close: bool) -> Bytes {
        use std::fmt::Write as _;
        let mut head = String::with_capacity(128 + self.headers.len() * 40);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            // Header injection is refused by dropping the header.
            if name
                .bytes()
                .chain(value.bytes())
                .any(|b| b == b'\r' || b == b'\n')
            {
                continue;
            }
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if self.allows_body() {
            let _ = write!(head, "Content-Length: {content_length}\r\n");
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        Bytes::from(head)
    }

    /// Whether this status may carry a body (RFC 9110 §6.4.1).
    pub fn allows_body(&self) -> bool {
        !(100..200).contains(&self.status) && self.status != 204 && self.status != 304
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

//! Signed HTTP requests in the style of S3 presigned URLs, for the file
//! plane (`GET`/`HEAD /gridmux/v1/files/<route>?key=…` with `Range`) and
//! `GET /metrics`.
//!
//! A signature is the [`Keyring`] tag for [`Purpose::HttpRequest`]: an
//! HMAC-SHA256, under the HKDF-derived key of that purpose, over these
//! parts, each prefixed by its length (8 bytes, big-endian):
//!
//! 1. the label `gridmux-request-v1`;
//! 2. the method, uppercase;
//! 3. the path as sent (percent-encoded, starting with `/`);
//! 4. the canonical query: every parameter but the signature ones, as raw
//!    (still percent-encoded) text, sorted by name then value, joined with
//!    `&`; empty parameters are dropped;
//! 5. the `Range` header value without surrounding whitespace, or empty;
//! 6. the signer's name;
//! 7. the expiry, in Unix seconds, as decimal digits.
//!
//! It travels in the query ([`SIGNER_PARAM`], [`EXPIRES_PARAM`] and
//! [`SIGNATURE_PARAM`] appended: a presigned URL) or in a header,
//! `Authorization: Gridmux-HMAC-SHA256 Signer=…, Expires=…, Signature=…`.
//! Signer names are restricted ([`valid_signer`]) so that neither needs
//! any percent-encoding.
//!
//! [`verify`] refuses an expired signature, and one expiring further ahead
//! than the caller's `max_validity` plus [`EXPIRY_SKEW`]: a leaked URL is
//! good only briefly ([`DEFAULT_SIGNATURE_VALIDITY`]). Within that window it
//! can be replayed, to any node of the cluster (the host is not signed). It
//! binds the method: a `GET` URL does not serve a `HEAD`. Nothing here reads
//! a clock. The reasons of [`RequestAuthError`] are for logs: answer all of
//! them with the same `401`.
//!
//! Test vector: secret `gridmux test secret`; parts `GET`,
//! `/gridmux/v1/files/vol1/obj`, `key=a%2Fb.bin&part=2`, `bytes=0-1023`,
//! `node-a:9000`, `1700000060`:
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use gridmux_core::auth::{request::{self, RequestToSign}, Keyring};
//!
//! let keys = Keyring::new(["gridmux test secret"]).unwrap();
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let max = request::DEFAULT_SIGNATURE_VALIDITY;
//! let (path, range) = ("/gridmux/v1/files/vol1/obj", Some("bytes=0-1023"));
//! let signed = request::sign(&keys, &RequestToSign {
//!     method: "GET", path, query: "part=2&key=a%2Fb.bin", range,
//!     signer: "node-a:9000", expires: request::expires_at(now, max),
//! }).unwrap();
//! let sig = "aa7366482088e061dcee9590a33b55b5885f60e5741c82ccce767ea6f1a77977";
//! assert_eq!(signed.signature_hex(), sig);
//! let url = signed.presigned_target();
//! assert_eq!(url, format!("{path}?part=2&key=a%2Fb.bin&X-Gridmux-Signer=node-a:9000\
//!                          &X-Gridmux-Expires=1700000060&X-Gridmux-Signature={sig}"));
//! let ok = request::verify(&keys, "GET", &url, range, None, now, max).unwrap();
//! assert_eq!((ok.signer.as_str(), ok.key_index), ("node-a:9000", 0));
//!
//! // The header form goes with the unsigned target.
//! let auth = signed.authorization();
//! assert_eq!(auth, format!("Gridmux-HMAC-SHA256 Signer=node-a:9000, \
//!                           Expires=1700000060, Signature={sig}"));
//! assert!(request::verify(&keys, "GET", &signed.target, range, Some(&auth), now, max).is_ok());
//! // A minute later, or for another range: refused.
//! let late = now + Duration::from_secs(61);
//! assert!(request::verify(&keys, "GET", &url, range, None, late, max).is_err());
//! assert!(request::verify(&keys, "GET", &url, None, None, now, max).is_err());
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{decode_hex_tag, hex, Keyring, Purpose, Tag};

/// How long a signature is good for by default.
pub const DEFAULT_SIGNATURE_VALIDITY: Duration = Duration::from_secs(60);
/// How far the signer's clock may run ahead of the verifier's.
pub const EXPIRY_SKEW: Duration = Duration::from_secs(10);
/// Query parameter of the signer's name.
pub const SIGNER_PARAM: &str = "X-Gridmux-Signer";
/// Query parameter of the expiry (Unix seconds).
pub const EXPIRES_PARAM: &str = "X-Gridmux-Expires";
/// Query parameter of the signature (64 hex digits).
pub const SIGNATURE_PARAM: &str = "X-Gridmux-Signature";
/// The `Authorization` scheme of the header form.
pub const AUTH_SCHEME: &str = "Gridmux-HMAC-SHA256";

const VERSION: &str = "gridmux-request-v1";
const QUERY_FIELDS: [&str; 3] = [SIGNER_PARAM, EXPIRES_PARAM, SIGNATURE_PARAM];
const HEADER_FIELDS: [&str; 3] = ["Signer", "Expires", "Signature"];

/// Why a signed request was refused (for logs; answer `401` to all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// The request carries no signature.
    #[error("no request signature")]
    Missing,
    /// A field, or the request itself, is not in the expected form.
    #[error("malformed signed request: {0}")]
    Malformed(&'static str),
    /// A signature field appears more than once.
    #[error("duplicate signature field: {0}")]
    Duplicate(&'static str),
    /// Signed both in the query and in the `Authorization` header.
    #[error("signature both in the query and in the header")]
    Ambiguous,
    /// The signature expired at this Unix time.
    #[error("signature expired at {0}")]
    Expired(u64),
    /// The signature expires at this Unix time, too far ahead.
    #[error("signature expires too far ahead, at {0}")]
    ExpiryTooFar(u64),
    /// No secret of the keyring made this signature for this request.
    #[error("bad request signature")]
    BadSignature,
}

/// What a request signature covers (the signer goes along in clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestToSign<'a> {
    /// The method, any case (signed uppercase).
    pub method: &'a str,
    /// The path, percent-encoded exactly as it will be sent.
    pub path: &'a str,
    /// The query without `?`, as it will be sent; may be empty.
    pub query: &'a str,
    /// The `Range` header that will be sent, if any.
    pub range: Option<&'a str>,
    /// The signer's name (see [`valid_signer`]).
    pub signer: &'a str,
    /// The expiry in Unix seconds (see [`expires_at`]).
    pub expires: u64,
}

/// A signed request, ready to send in either carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The unsigned request target, `path` or `path?query`.
    pub target: String,
    /// The signer's name.
    pub signer: String,
    /// The expiry in Unix seconds.
    pub expires: u64,
    /// The signature.
    pub signature: Tag,
}

impl SignedRequest {
    /// The signature as 64 lowercase hex digits.
    pub fn signature_hex(&self) -> String {
        hex(&self.signature)
    }

    /// The target with the signature appended to its query: the path and
    /// query of a presigned URL.
    pub fn presigned_target(&self) -> String {
        let sep = match self.target.split_once('?') {
            None => "?",
            Some((_, q)) if q.is_empty() || q.ends_with('&') => "",
            Some(_) => "&",
        };
        let (target, signer, expires) = (&self.target, &self.signer, self.expires);
        format!(
            "{target}{sep}{SIGNER_PARAM}={signer}&{EXPIRES_PARAM}={expires}\
             &{SIGNATURE_PARAM}={}",
            self.signature_hex()
        )
    }

    /// The `Authorization` header value, to send with [`Self::target`].
    pub fn authorization(&self) -> String {
        let (signer, expires, sig) = (&self.signer, self.expires, self.signature_hex());
        format!("{AUTH_SCHEME} Signer={signer}, Expires={expires}, Signature={sig}")
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed it.
    pub signer: String,
    /// The index in the keyring of the secret that signed it.
    pub key_index: usize,
    /// Its expiry in Unix seconds.
    pub expires: u64,
}

/// Whether `name` may sign: non-empty printable ASCII without any of
/// `, = & # % + ? "`, so it needs no encoding in the query nor the header
/// (`host:port` and `[::1]:9000` qualify).
pub fn valid_signer(name: &str) -> bool {
    graphic(name, b",=&#%+?\"")
}

/// The expiry `validity` after `now`, in Unix seconds.
pub fn expires_at(now: SystemTime, validity: Duration) -> u64 {
    unix_secs(now).saturating_add(validity.as_secs())
}

/// Signs `request` with the keyring's current secret. Fails if a field is
/// not in the expected form or the query holds a signature parameter.
pub fn sign(
    keys: &Keyring,
    request: &RequestToSign<'_>,
) -> Result<SignedRequest, RequestAuthError> {
    let query_ok = request
        .query
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'#');
    if !query_ok || any(&split_query(request.query)?.1) {
        return Err(RequestAuthError::Malformed("query"));
    }
    let signature = request.mac(|parts| keys.sign(Purpose::HttpRequest, parts))?;
    let target = match request.query {
        "" => request.path.to_owned(),
        query => format!("{}?{query}", request.path),
    };
    let (signer, expires) = (request.signer.to_owned(), request.expires);
    Ok(SignedRequest {
        target,
        signer,
        expires,
        signature,
    })
}

/// Checks a request signed in its query or in an `Authorization` header of
/// scheme [`AUTH_SCHEME`] (one of another scheme is ignored). `target` is
/// the path and query as received, `range` the `Range` header. Refuses a
/// signature expired at `now` or expiring more than `max_validity` (plus
/// [`EXPIRY_SKEW`]) after it.
pub fn verify(
    keys: &Keyring,
    method: &str,
    target: &str,
    range: Option<&str>,
    authorization: Option<&str>,
    now: SystemTime,
    max_validity: Duration,
) -> Result<Verified, RequestAuthError> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let in_query = split_query(query)?.1;
    let in_header = authorization.map(parse_authorization).transpose()?;
    let fields = match in_header.flatten() {
        Some(_) if any(&in_query) => return Err(RequestAuthError::Ambiguous),
        Some(in_header) => in_header,
        None if any(&in_query) => in_query,
        None => return Err(RequestAuthError::Missing),
    };
    let [Some(signer), Some(expires), Some(signature)] = fields else {
        return Err(RequestAuthError::Malformed("missing field"));
    };
    let expires = (graphic(expires, b"") && expires.bytes().all(|b| b.is_ascii_digit()))
        .then(|| expires.parse().ok())
        .flatten()
        .ok_or(RequestAuthError::Malformed("expiry"))?;
    let signature =
        decode_hex_tag(signature).map_err(|_| RequestAuthError::Malformed("signature"))?;
    let now = unix_secs(now);
    if now > expires {
        return Err(RequestAuthError::Expired(expires));
    }
    if expires > now.saturating_add(max_validity.saturating_add(EXPIRY_SKEW).as_secs()) {
        return Err(RequestAuthError::ExpiryTooFar(expires));
    }
    let request = RequestToSign {
        method,
        path,
        query,
        range,
        signer,
        expires,
    };
    let key_index = request
        .mac(|parts| keys.verify(Purpose::HttpRequest, parts, &signature))?
        .map_err(|_| RequestAuthError::BadSignature)?;
    Ok(Verified {
        signer: signer.to_owned(),
        key_index,
        expires,
    })
}

impl RequestToSign<'_> {
    /// Checks the form of the request and hands its canonical parts to `mac`.
    fn mac<T>(&self, mac: impl FnOnce(&[&[u8]]) -> T) -> Result<T, RequestAuthError> {
        if !graphic(self.method, b"") {
            return Err(RequestAuthError::Malformed("method"));
        }
        if !self.path.starts_with('/') || !graphic(self.path, b"?#") {
            return Err(RequestAuthError::Malformed("path"));
        }
        if !valid_signer(self.signer) {
            return Err(RequestAuthError::Malformed("signer name"));
        }
        let mut params = split_query(self.query)?.0;
        params.sort_unstable_by_key(|p| (p.split_once('=').unwrap_or((p, "")), *p));
        let method = self.method.to_ascii_uppercase();
        let query = params.join("&");
        let range = self.range.unwrap_or("").trim_matches([' ', '\t']);
        let expires = self.expires.to_string();
        Ok(mac(&[
            VERSION.as_bytes(),
            method.as_bytes(),
            self.path.as_bytes(),
            query.as_bytes(),
            range.as_bytes(),
            self.signer.as_bytes(),
            expires.as_bytes(),
        ]))
    }
}

/// The raw values of the signer, expiry and signature found in one carrier.
type Fields<'a> = [Option<&'a str>; 3];

/// Records `value` if `name` is one of `names` (ASCII case-insensitive);
/// `Ok(false)` if it is none.
fn take<'a>(
    fields: &mut Fields<'a>,
    names: [&'static str; 3],
    (name, value): (&str, &'a str),
) -> Result<bool, RequestAuthError> {
    let Some(i) = names.iter().position(|n| name.eq_ignore_ascii_case(n)) else {
        return Ok(false);
    };
    match fields[i].replace(value) {
        Some(_) => Err(RequestAuthError::Duplicate(names[i])),
        None => Ok(true),
    }
}

fn any(fields: &Fields<'_>) -> bool {
    fields.iter().any(Option::is_some)
}

/// Splits a raw query into its non-empty ordinary parameters and the
/// signature fields.
fn split_query(query: &str) -> Result<(Vec<&str>, Fields<'_>), RequestAuthError> {
    let (mut params, mut fields) = (Vec::new(), Fields::default());
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let field = param.split_once('=').unwrap_or((param, ""));
        if !take(&mut fields, QUERY_FIELDS, field)? {
            params.push(param);
        }
    }
    Ok((params, fields))
}

/// Parses an `Authorization` value; `None` if of another scheme.
fn parse_authorization(value: &str) -> Result<Option<Fields<'_>>, RequestAuthError> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case(AUTH_SCHEME) {
        return Ok(None);
    }
    let mut fields = Fields::default();
    for item in rest.split(',') {
        let field = item.trim_matches([' ', '\t']).split_once('=');
        let field = field.ok_or(RequestAuthError::Malformed("header field"))?;
        if !take(&mut fields, HEADER_FIELDS, field)? {
            return Err(RequestAuthError::Malformed("unknown header field"));
        }
    }
    Ok(Some(fields))
}

/// Non-empty printable ASCII without any of `except`.
fn graphic(s: &str, except: &[u8]) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !except.contains(&b))
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::RequestAuthError::*;
    use super::*;

    const T0: u64 = 1_700_000_000;
    const R: Option<&str> = Some("bytes=0-99");
    const MAX: Duration = DEFAULT_SIGNATURE_VALIDITY;

    fn ring(secrets: &[&str]) -> Keyring {
        Keyring::new(secrets).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        signer: &'a str,
    ) -> RequestToSign<'a> {
        RequestToSign {
            method,
            path,
            query,
            range: R,
            signer,
            expires: T0 + 60,
        }
    }

    fn signed(keys: &Keyring) -> SignedRequest {
        let path = "/gridmux/v1/files/v/o%20b";
        sign(keys, &req("get", path, "key=k1&b=2&a=1", "node-a:9000")).unwrap()
    }

    /// Verifies at `T0`; returns the key index.
    fn check(
        k: &Keyring,
        (method, target, range): (&str, &str, Option<&str>),
        auth: Option<&str>,
    ) -> Result<usize, RequestAuthError> {
        verify(k, method, target, range, auth, at(T0), MAX).map(|v| v.key_index)
    }

    #[test]
    fn both_carriers_round_trip() {
        let k = ring(&["s"]);
        let s = signed(&k);
        let url = s.presigned_target();
        let ok = Verified {
            signer: "node-a:9000".into(),
            key_index: 0,
            expires: T0 + 60,
        };
        assert_eq!(verify(&k, "GET", &url, R, None, at(T0), MAX), Ok(ok));
        let auth = s.authorization();
        assert_eq!(check(&k, ("GET", &s.target, R), Some(&auth)), Ok(0));
        // Case (of the method, scheme, field names, hex), spacing and the
        // order of query parameters do not matter.
        let loose = auth
            .replace(AUTH_SCHEME, "gridmux-HMAC-sha256")
            .replace(", ", " ,\t");
        let loose = loose.replace("Sig", "sIG");
        assert_eq!(
            check(&k, ("get", &s.target, Some(" bytes=0-99\t")), Some(&loose)),
            Ok(0)
        );
        let (path, query) = url.split_once('?').unwrap();
        let query = query.replace(&s.signature_hex(), &s.signature_hex().to_uppercase());
        let reordered = query.rsplit('&').collect::<Vec<_>>().join("&");
        let reordered = format!("{path}?&{}&", reordered.replace("X-Gridmux", "x-gridmux"));
        assert_eq!(check(&k, ("GET", &reordered, R), None), Ok(0));
        // Another scheme is not ours.
        assert_eq!(check(&k, ("GET", &url, R), Some("Bearer abc")), Ok(0));
        assert_eq!(
            check(&k, ("GET", &s.target, R), Some("Bearer abc")),
            Err(Missing)
        );
    }

    #[test]
    fn every_part_is_bound() {
        let k = ring(&["s"]);
        let s = signed(&k);
        let url = s.presigned_target();
        for request in [
            ("HEAD", url.as_str(), R),
            ("GET", &url, None),
            ("GET", &url, Some("bytes=0-98")),
        ] {
            assert_eq!(check(&k, request, None), Err(BadSignature));
        }
        for (from, to) in [
            ("/v/o%20b", "/v/o+b"),
            ("files/v", "files/w"),
            ("key=k1", "key=k2"),
            ("key=k1", "key=k1&c=3"),
            ("&a=1", ""),
            ("a=1", "a=1="),
            ("node-a:9000", "node-b:9000"),
            ("=1700000060", "=1700000059"),
        ] {
            let target = url.replacen(from, to, 1);
            assert_eq!(
                check(&k, ("GET", &target, R), None),
                Err(BadSignature),
                "{target}"
            );
        }
        assert_eq!(
            check(&ring(&["other"]), ("GET", &url, R), None),
            Err(BadSignature)
        );
        let auth = s.authorization().replace("node-a", "node-b");
        assert_eq!(
            check(&k, ("GET", &s.target, R), Some(&auth)),
            Err(BadSignature)
        );
    }

    #[test]
    fn expiry_is_bounded_both_ways() {
        let k = ring(&["s"]);
        let url = signed(&k).presigned_target();
        let v = |now, max| verify(&k, "GET", &url, R, None, at(now), max).map(|_| ());
        let half = Duration::from_secs(30);
        assert_eq!(v(T0 + 60, MAX), Ok(()));
        assert_eq!(v(T0 + 61, MAX), Err(Expired(T0 + 60)));
        assert_eq!(v(T0 + 20, half), Ok(()));
        assert_eq!(v(T0 + 19, half), Err(ExpiryTooFar(T0 + 60)));
        assert_eq!(v(0, Duration::MAX), Ok(()));
        assert_eq!(
            expires_at(at(T0) + Duration::from_millis(999), MAX),
            T0 + 60
        );
        assert_eq!(expires_at(UNIX_EPOCH - MAX, MAX), 60);
    }

    #[test]
    fn rotation_accepts_the_old_secret_and_says_so() {
        let url = signed(&ring(&["old"])).presigned_target();
        assert_eq!(check(&ring(&["new", "old"]), ("GET", &url, R), None), Ok(1));
        assert_eq!(
            check(&ring(&["new"]), ("GET", &url, R), None),
            Err(BadSignature)
        );
    }

    #[test]
    fn malformed_duplicate_and_missing_fields_are_refused() {
        let k = ring(&["s"]);
        let s = signed(&k);
        let (url, hex) = (s.presigned_target(), s.signature_hex());
        let sig = format!("&{SIGNATURE_PARAM}={hex}");
        let expiry = Malformed("expiry");
        for (target, err) in [
            (format!("{url}{sig}"), Duplicate(SIGNATURE_PARAM)),
            (format!("{url}&x-gridmux-signer=a"), Duplicate(SIGNER_PARAM)),
            (url.replace(&sig, ""), Malformed("missing field")),
            (url.replace("=1700000060", "=+1700000060"), expiry.clone()),
            (url.replace("=1700000060", "=99999999999999999999"), expiry),
            (url.replace("node-a:9000", ""), Malformed("signer name")),
            (
                url.replace("node-a:9000", "a%3A1"),
                Malformed("signer name"),
            ),
            (url.replace(&hex, "00"), Malformed("signature")),
            (url.replacen('/', "", 1), Malformed("path")),
            (s.target.clone(), Missing),
        ] {
            assert_eq!(check(&k, ("GET", &target, R), None), Err(err), "{target}");
        }
        let auth = s.authorization();
        assert_eq!(check(&k, ("GET", &url, R), Some(&auth)), Err(Ambiguous));
        for (header, err) in [
            (format!("{auth}, Signer=x"), Duplicate("Signer")),
            (format!("{auth}, Foo=1"), Malformed("unknown header field")),
            (format!("{auth},"), Malformed("header field")),
            (AUTH_SCHEME.to_owned(), Malformed("header field")),
        ] {
            assert_eq!(
                check(&k, ("GET", &s.target, R), Some(&header)),
                Err(err),
                "{header}"
            );
        }
    }

    #[test]
    fn signing_refuses_what_could_not_be_carried() {
        let k = ring(&["s"]);
        let target = sign(&k, &req("GET", "/m", "", "n")).map(|s| s.presigned_target());
        assert!(target.is_ok_and(|t| t.starts_with("/m?X-Gridmux-Signer=n&")));
        for signer in ["", "a b", "a,b", "a=b", "a&b", "a%20", "é"] {
            let refused = Err(Malformed("signer name"));
            assert_eq!(sign(&k, &req("GET", "/m", "", signer)), refused, "{signer}");
        }
        for (method, path, query) in [
            ("", "/a", ""),
            ("G T", "/a", ""),
            ("GET", "a", ""),
            ("GET", "/a?b", ""),
            ("GET", "/a b", ""),
            ("GET", "/a", "b#c"),
            ("GET", "/a", "b c"),
            ("GET", "/a", "X-Gridmux-Expires=1"),
        ] {
            let refused = sign(&k, &req(method, path, query, "n")).is_err();
            assert!(refused, "{method} {path}?{query}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let k = ring(&["s"]);
        let odd = [
            "",
            "?&=&",
            "/?X-Gridmux-Signer&X-Gridmux-Expires==",
            "é?é=é&X-Gridmux-Signature=éé",
            "/\u{0}?\u{7f}",
            "Gridmux-HMAC-SHA256 ,,,",
            "Gridmux-HMAC-SHA256 Signer=é, Expires=1, Signature=ä",
            "Gridmux-HMAC-SHA256é",
            "/?X-Gridmux-Signer=a&X-Gridmux-Expires=18446744073709551615&X-Gridmux-Signature=",
        ];
        for (a, b) in odd.iter().flat_map(|a| odd.map(|b| (*a, b))) {
            for (now, max) in [
                (UNIX_EPOCH, Duration::ZERO),
                (at(u64::MAX >> 2), Duration::MAX),
            ] {
                let _ = verify(&k, a, b, Some(a), Some(b), now, max);
                let _ = verify(&k, "GET", a, None, Some(b), now, max);
            }
            let request = RequestToSign {
                expires: u64::MAX,
                ..req(a, b, a, b)
            };
            let _ = sign(&k, &request).map(|s| (s.presigned_target(), s.authorization()));
        }
    }
}

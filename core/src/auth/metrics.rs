//! The bearer token of `GET /metrics`: a tag of the cluster's secret for
//! [`Purpose::MetricsToken`], so that it grants scraping and nothing else
//! (it proves nothing on a link, nor signs a file request).
//!
//! ```
//! use gridmux_core::auth::{metrics, Keyring};
//!
//! let keys = Keyring::new(["cluster secret"]).unwrap();
//! let token = metrics::token(&keys);
//! assert!(metrics::verify(&keys, Some(&format!("Bearer {token}"))));
//! assert!(!metrics::verify(&keys, Some("Bearer 00")));
//! assert!(!metrics::verify(&keys, None));
//! ```

use super::{hex, Keyring, Purpose};

const LABEL: &[u8] = b"gridmux metrics scrape v1";

/// The token of the keyring's current secret (64 hex digits).
pub fn token(keys: &Keyring) -> String {
    hex(&keys.sign(Purpose::MetricsToken, &[LABEL]))
}

/// Whether an `Authorization` header value is `Bearer <token>` with the
/// token of any secret of the keyring (so a change of secret does not
/// break scrapes).
pub fn verify(keys: &Keyring, authorization: Option<&str>) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let value = value.trim_matches([' ', '\t']);
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && keys
            .verify_hex(Purpose::MetricsToken, &[LABEL], token.trim())
            .is_ok()
}

//! Authentication of peers: tokens over (sender, receiver, time).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not valid for this sender, receiver and time.
    #[error("invalid token")]
    InvalidToken,
    /// The token is not in the expected format.
    #[error("malformed token")]
    Malformed,
}

/// Makes and checks the tokens that peers present when they connect.
///
/// A token binds the sender's name, the receiver's name and the sender's
/// clock reading, so it cannot be replayed towards another node; the
/// receiver separately bounds the clock skew.
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// The token `from` presents to `to` at `time`.
    fn token(&self, from: &str, to: &str, time: SystemTime) -> String;
    /// Checks a token `from` presented to `to` for `time`.
    fn verify(&self, from: &str, to: &str, time: SystemTime, token: &str) -> Result<(), AuthError>;
}

/// The default [`Authenticator`]: HMAC-SHA256 under a secret shared by
/// the cluster, over `from`, `to` and the time in nanoseconds since the
/// Unix epoch (each length-prefixed), as lowercase hex. Verification runs
/// in constant time.
#[derive(Clone)]
pub struct SharedSecret {
    key: Vec<u8>,
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

impl SharedSecret {
    /// A shared secret; any length works, 32 random bytes are plenty.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self, from: &str, to: &str, time: SystemTime) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos() as u64;
        for part in [from.as_bytes(), to.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&nanos.to_be_bytes());
        mac
    }
}

impl Authenticator for SharedSecret {
    fn token(&self, from: &str, to: &str, time: SystemTime) -> String {
        let tag = self.mac(from, to, time).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn verify(&self, from: &str, to: &str, time: SystemTime, token: &str) -> Result<(), AuthError> {
        if token.len() != 64 || !token.is_ascii() {
            return Err(AuthError::Malformed);
        }
        let mut tag = [0u8; 32];
        for (i, byte) in tag.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&token[2 * i..2 * i + 2], 16)
                .map_err(|_| AuthError::Malformed)?;
        }
        self.mac(from, to, time)
            .verify_slice(&tag)
            .map_err(|_| AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_sender_receiver_time_and_secret() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let auth = SharedSecret::new(*b"cluster secret");
        let token = auth.token("a:1", "b:2", t);
        assert_eq!(auth.verify("a:1", "b:2", t, &token), Ok(()));
        let bad = Err(AuthError::InvalidToken);
        assert_eq!(auth.verify("b:2", "a:1", t, &token), bad);
        assert_eq!(auth.verify("a:1", "c:3", t, &token), bad);
        assert_eq!(
            auth.verify("a:1", "b:2", t + Duration::from_nanos(1), &token),
            bad
        );
        assert_eq!(
            SharedSecret::new(*b"other").verify("a:1", "b:2", t, &token),
            bad
        );
        // Length prefixes: ("a", "bc") and ("ab", "c") differ.
        assert_ne!(auth.token("a", "bc", t), auth.token("ab", "c", t));
        assert_eq!(
            auth.verify("a:1", "b:2", t, "zz"),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            auth.verify("a:1", "b:2", t, &"é".repeat(32)),
            Err(AuthError::Malformed)
        );
    }
}

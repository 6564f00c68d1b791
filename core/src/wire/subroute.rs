//! Static sub-routes of a handler, identified on the wire by a hash.

use std::fmt;

use sha2::{Digest, Sha256};

/// The 32-byte wire id of a sub-route: SHA-256 of the route string with
/// byte 0 replaced by the handler id and byte 1 by zero (MinIO's layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubrouteId(pub [u8; 32]);

impl SubrouteId {
    /// The id of `route` under `handler`. Route parts are joined with `/`
    /// by the caller (`"a/b"`).
    pub fn new(handler: u8, route: &str) -> Self {
        let mut id: [u8; 32] = Sha256::digest(route.as_bytes()).into();
        id[0] = handler;
        id[1] = 0;
        Self(id)
    }

    /// The handler id stored in byte 0.
    pub fn handler(&self) -> u8 {
        self.0[0]
    }
}

impl fmt::Debug for SubrouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubrouteId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_sha256_with_handler_and_zero() {
        let id = SubrouteId::new(78, "subroute/1");
        let full: [u8; 32] = Sha256::digest(b"subroute/1").into();
        assert_eq!(id.0[0], 78);
        assert_eq!(id.0[1], 0);
        assert_eq!(id.0[2..], full[2..]);
        assert_ne!(id, SubrouteId::new(78, "subroute/2"));
        assert_ne!(id, SubrouteId::new(79, "subroute/1"));
    }
}

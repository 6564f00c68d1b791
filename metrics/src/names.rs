//! Lookups of the fixed names (peers, routes) a record carries.
//!
//! The tables are filled at construction and never grow, so a record's
//! name, whoever chose it, cannot make them slower: FNV-1a is enough, and
//! it costs a few nanoseconds where SipHash cost tens.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A table of names made once.
pub(crate) type NameMap<V> = HashMap<Box<str>, V, BuildHasherDefault<Fnv>>;

/// FNV-1a, 64 bits.
#[derive(Debug)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_its_reference_values() {
        let hash = |text: &str| {
            let mut h = Fnv::default();
            h.write(text.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_are_found_and_others_are_not() {
        let mut map: NameMap<u8> = NameMap::default();
        map.insert("10.0.0.1:9000".into(), 1);
        map.insert("10.0.0.2:9000".into(), 2);
        assert_eq!(map.get("10.0.0.2:9000"), Some(&2));
        assert_eq!(map.get("10.0.0.3:9000"), None);
    }
}

//! The `Range` header of a GET (RFC 9110 §14): one byte range, resolved
//! against the length of what is served.

use std::ops::Range;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, not `bytes=`, malformed, or several
    /// ranges, which we do not serve): the whole representation, `200`.
    Full,
    /// These bytes, `206` with `Content-Range: bytes start-(end-1)/len`.
    Partial(Range<u64>),
    /// No byte of the range exists: `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl RangeRequest {
    /// Resolves the value of a `Range` header (`None`: no header) against
    /// `len` bytes. Forms: `bytes=a-b`, `bytes=a-` (to the end),
    /// `bytes=-n` (the last `n`); `b` past the end is clamped.
    pub fn parse(header: Option<&[u8]>, len: u64) -> Self {
        let Some(header) = header else {
            return Self::Full;
        };
        // The unit is case-insensitive (RFC 9110 §14.1).
        let Some(spec) = std::str::from_utf8(header).ok().and_then(|h| {
            let h = h.trim();
            let unit = h.get(..6)?;
            unit.eq_ignore_ascii_case("bytes=").then(|| &h[6..])
        }) else {
            return Self::Full;
        };
        if spec.contains(',') {
            return Self::Full;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Self::Full;
        };
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Too large for u64: past any end, which is what it means.
            Some(s.parse().unwrap_or(u64::MAX))
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            // `-n`: the last n bytes.
            (true, false) => match number(last) {
                Some(0) => Self::Unsatisfiable,
                // Nothing to take the last bytes of: the (empty) whole, as
                // no range of an empty representation can be partial.
                Some(_) if len == 0 => Self::Full,
                Some(n) => Self::Partial(len.saturating_sub(n)..len),
                None => Self::Full,
            },
            // `a-`: from a to the end.
            (false, true) => match number(first) {
                Some(a) if a < len => Self::Partial(a..len),
                Some(_) => Self::Unsatisfiable,
                None => Self::Full,
            },
            // `a-b`, both inclusive.
            (false, false) => match (number(first), number(last)) {
                (Some(a), Some(b)) if a > b => Self::Full,
                (Some(a), Some(_)) if a >= len => Self::Unsatisfiable,
                (Some(a), Some(b)) => Self::Partial(a..b.saturating_add(1).min(len)),
                _ => Self::Full,
            },
            (true, true) => Self::Full,
        }
    }

    /// The `Content-Range` value of this answer, if it has one.
    pub fn content_range(&self, len: u64) -> Option<String> {
        match self {
            Self::Full => None,
            Self::Partial(r) if r.end > r.start => {
                Some(format!("bytes {}-{}/{len}", r.start, r.end - 1))
            }
            Self::Partial(_) => None,
            Self::Unsatisfiable => Some(format!("bytes */{len}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::RangeRequest::{self, Full, Partial, Unsatisfiable};

    fn parse(h: &str, len: u64) -> RangeRequest {
        RangeRequest::parse(Some(h.as_bytes()), len)
    }

    #[test]
    fn the_forms_of_one_range() {
        assert_eq!(RangeRequest::parse(None, 10), Full);
        assert_eq!(parse("bytes=0-0", 10), Partial(0..1), "the first byte");
        assert_eq!(parse("bytes=9-9", 10), Partial(9..10), "the last byte");
        assert_eq!(parse("bytes=-1", 10), Partial(9..10), "suffix");
        assert_eq!(
            parse("bytes=-100", 10),
            Partial(0..10),
            "a suffix longer than all"
        );
        assert_eq!(parse("bytes=3-", 10), Partial(3..10));
        assert_eq!(parse("bytes=3-999", 10), Partial(3..10), "clamped");
        assert_eq!(parse(" bytes= 2 - 4 ", 10), Partial(2..5));
        assert_eq!(parse("Bytes=2-4", 10), Partial(2..5), "the unit's case");
        assert_eq!(
            parse("bytes=0-99999999999999999999999", 10),
            Partial(0..10),
            "a last byte too large for u64 is past the end"
        );
    }

    #[test]
    fn what_no_byte_satisfies_is_416() {
        assert_eq!(parse("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse("bytes=99999999999999999999999-", 10), Unsatisfiable);
        assert_eq!(Unsatisfiable.content_range(10).unwrap(), "bytes */10");
        assert_eq!(Partial(2..5).content_range(10).unwrap(), "bytes 2-4/10");
    }

    #[test]
    fn what_we_do_not_serve_is_the_whole_representation() {
        for h in [
            "items=0-1",
            "bytes=1-2,4-5",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
        ] {
            assert_eq!(parse(h, 10), Full, "{h}");
        }
        // A suffix of an empty representation: the empty whole.
        assert_eq!(parse("bytes=-5", 0), Full);
        assert_eq!(RangeRequest::parse(Some(&[0xff, 0xfe]), 10), Full);
    }

    proptest! {
        /// Whatever the header, a partial answer is a non-empty range
        /// inside the representation.
        #[test]
        fn partial_ranges_are_inside(
            spec in "( ?[0-9]{0,21} ?- ?[0-9]{0,21} ?|[ -~]{0,12})",
            len in prop_oneof![Just(0u64), 0u64..64, 0u64..1 << 40],
        ) {
            let got = parse(&format!("bytes={spec}"), len);
            if let Partial(r) = &got {
                prop_assert!(r.start < r.end && r.end <= len, "{spec:?} {len}: {got:?}");
            }
            // An empty representation is never answered in part.
            prop_assert!(len > 0 || !matches!(got, Partial(_)));
        }
    }
}

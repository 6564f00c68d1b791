//! Incremental, fail-fast UTF-8 validation of text messages.

/// The input can never become valid UTF-8, whatever follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 in text message")]
pub struct InvalidUtf8;

/// Validates UTF-8 fed in arbitrary pieces, reporting an error as soon as the
/// bytes seen so far cannot be the prefix of valid UTF-8 (RFC 6455 §8.1
/// "fail fast"), even when a code point is split across pieces or frames.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of an incomplete code point carried over from the last piece.
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the message.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len;
            let take = (4 - have).min(input.len());
            let mut joined = self.pending;
            joined[have..have + take].copy_from_slice(&input[..take]);
            match std::str::from_utf8(&joined[..have + take]) {
                Ok(_) => {
                    self.pending_len = 0;
                    input = &input[take..];
                }
                Err(e) if e.valid_up_to() > 0 => {
                    // The carried code point is complete; re-check the rest below.
                    self.pending_len = 0;
                    input = &input[e.valid_up_to() - have..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete, and every input byte was taken.
                    self.pending = joined;
                    self.pending_len = have + take;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    let tail = &input[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len();
                    Ok(())
                }
            },
        }
    }

    /// Ends the message: an incomplete trailing code point is an error.
    /// The validator is reset for the next message either way.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(bytes: &[u8]) -> Vec<Result<(), InvalidUtf8>> {
        (0..=bytes.len())
            .map(|cut| {
                let mut v = Utf8Validator::new();
                v.feed(&bytes[..cut])?;
                v.feed(&bytes[cut..])?;
                v.finish()
            })
            .collect()
    }

    #[test]
    fn valid_text_passes_under_every_split() {
        let text = "κόσμε ascii 𝄞 €";
        assert!(split_everywhere(text.as_bytes()).iter().all(Result::is_ok));
    }

    #[test]
    fn bytewise_feeding_accepts_valid_text() {
        let mut v = Utf8Validator::new();
        for b in "Hello-µ@ßöäüàá-UTF-8!! 𝄞".bytes() {
            v.feed(&[b]).unwrap();
        }
        v.finish().unwrap();
    }

    #[test]
    fn invalid_text_fails_under_every_split() {
        for bad in [
            &b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"[..],
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
            b"abc\xff",
        ] {
            assert!(split_everywhere(bad).iter().all(Result::is_err), "{bad:x?}");
        }
    }

    #[test]
    fn fails_fast_before_the_code_point_completes() {
        let mut v = Utf8Validator::new();
        v.feed(b"ok").unwrap();
        // 0xF4 0x90 starts a code point above U+10FFFF: no continuation can fix it.
        v.feed(b"\xf4").unwrap();
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_code_point_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        // Reset for the next message.
        v.feed(b"a").unwrap();
        v.finish().unwrap();
    }
}

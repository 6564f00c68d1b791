//! Secret files: one secret per line, the current one first.

use std::path::Path;

/// Shortest secret accepted from a file.
const MIN_SECRET_LEN: usize = 16;

/// The secrets in `path`: every non-empty line, trimmed, current first.
/// A file with several lines lets a node accept the old secret while the
/// cluster changes to a new one. Lines must be printable text of at least
/// 16 bytes: a binary file would otherwise split into short fragments at
/// its newline bytes, each of them a guessable secret.
pub(crate) fn read(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("reading {shown}: {e}"))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("{shown} is not text: {HINT}"))?;
    let mut secrets = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.chars().any(char::is_control) {
            return Err(format!(
                "{shown}:{}: control characters: {HINT}",
                number + 1
            ));
        }
        if line.len() < MIN_SECRET_LEN {
            return Err(format!(
                "{shown}:{}: a secret needs at least {MIN_SECRET_LEN} characters: {HINT}",
                number + 1
            ));
        }
        secrets.push(line.as_bytes().to_vec());
    }
    if secrets.is_empty() {
        return Err(format!("{shown} holds no secret: {HINT}"));
    }
    Ok(secrets)
}

const HINT: &str = "one secret per line, e.g. from `openssl rand -hex 32`";

#[cfg(test)]
mod tests {
    use super::*;

    fn read_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let path = std::env::temp_dir().join(format!(
            "gridmux-secrets-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&path, bytes).unwrap();
        let read = read(&path);
        std::fs::remove_file(&path).unwrap();
        read
    }

    #[test]
    fn lines_are_secrets_current_first() {
        let secrets = read_bytes(b"  new secret 0123456 \r\n\nold secret 0123456\n").unwrap();
        assert_eq!(
            secrets,
            [
                b"new secret 0123456".to_vec(),
                b"old secret 0123456".to_vec()
            ]
        );
    }

    #[test]
    fn binary_short_and_empty_files_are_refused() {
        assert!(read_bytes(b"\n \n").is_err());
        assert!(read_bytes(b"short\n").is_err());
        // Random bytes with a newline in them: not split into fragments.
        let mut binary = vec![0x9f, 0x10, 0xff, b'\n', b'Q', b'\n'];
        binary.extend_from_slice(&[0xc3; 26]);
        assert!(read_bytes(&binary).is_err());
        assert!(read_bytes(b"0123456789abcdef\x07\n").is_err());
    }
}

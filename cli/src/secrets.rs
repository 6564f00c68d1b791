//! Secret files: one secret per line, the current one first.

use std::path::Path;

/// The secrets in `path`: every non-empty line, trimmed, current first.
/// A file with several lines lets a node accept the old secret while the
/// cluster changes to a new one.
pub(crate) fn read(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let secrets: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if secrets.is_empty() {
        return Err(format!("{} holds no secret", path.display()));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_secrets_current_first() {
        let dir = std::env::temp_dir().join(format!("gridmux-secrets-{}", std::process::id()));
        std::fs::write(&dir, b"  new secret \r\n\nold secret\n").unwrap();
        let secrets = read(&dir).unwrap();
        assert_eq!(secrets, [b"new secret".to_vec(), b"old secret".to_vec()]);
        std::fs::write(&dir, b"\n \n").unwrap();
        assert!(read(&dir).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}

//! The API token: a random secret in the data dir (mode 0600) that scripts present; and the
//! metrics token, which only reads `/metrics` (a scraper's credential must not drive the node).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// File name of the token inside the data dir.
pub const TOKEN_FILE: &str = "api-token";
/// File name of the read-only metrics token inside the data dir.
pub const METRICS_TOKEN_FILE: &str = "metrics-token";

/// Reads the API token, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> std::io::Result<String> {
    load_or_create_file(data_dir, TOKEN_FILE)
}

/// Reads the token in `file` of the data dir, creating it (mode 0600) on first start.
pub fn load_or_create_file(data_dir: &Path, file: &str) -> std::io::Result<String> {
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_owned()),
        Ok(_) => std::fs::remove_file(&path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.as_bytes())?;
    Ok(token)
}

/// Compares two secrets without leaking where they differ.
pub fn matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path()).expect("token");
        let b = load_or_create(dir.path()).expect("token");
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches(&a, &b));
        assert!(!matches(&a, "nope"));
    }
}

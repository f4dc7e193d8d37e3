//! Static bearer tokens, in kube-apiserver's `--token-auth-file` format:
//! one `token,user,uid,"group1,group2"` line per token. `init` adds a token
//! for the admin and each node; the server looks tokens up, nothing else.

use std::collections::HashMap;
use std::path::Path;

use super::{User, MASTERS_GROUP, NODES_GROUP};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("line {line}: {why}")]
    Parse { line: usize, why: &'static str },
    #[error("write: {0}")]
    Write(#[source] std::io::Error),
}

/// Tokens and the users they stand for.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    users: HashMap<String, User>,
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::parse(&std::fs::read_to_string(path).map_err(Error::Read)?)
    }

    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| Error::Parse { line: i + 1, why };
            let fields = split_csv(line).ok_or_else(|| bad("unbalanced quotes"))?;
            if fields.len() < 3 {
                return Err(bad("want token,user,uid[,\"groups\"]"));
            }
            if fields[0].is_empty() || fields[1].is_empty() {
                return Err(bad("empty token or user"));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let user = User {
                name: fields[1].clone(),
                groups,
                uid: Some(fields[2].clone()).filter(|u| !u.is_empty()),
            };
            if users.insert(fields[0].clone(), user).is_some() {
                return Err(bad("duplicate token"));
            }
        }
        Ok(TokenFile { users })
    }

    pub fn user(&self, token: &str) -> Option<&User> {
        self.users.get(token)
    }

    fn has_user(&self, name: &str) -> bool {
        self.users.values().any(|u| u.name == name)
    }
}

/// Appends a fresh token for `admin` and for each node user that has none;
/// true when it wrote anything. Existing tokens are never changed.
pub fn ensure_tokens(path: &Path, admin: &str, node_users: &[String]) -> Result<bool, Error> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::Read(e)),
    };
    let file = TokenFile::parse(&existing)?;
    let mut add = String::new();
    let wanted = std::iter::once((admin.to_string(), MASTERS_GROUP))
        .chain(node_users.iter().map(|u| (u.clone(), NODES_GROUP)));
    for (user, group) in wanted {
        if !file.has_user(&user) {
            add.push_str(&format!("{},{user},{user},\"{group}\"\n", new_token()));
        }
    }
    if add.is_empty() {
        return Ok(false);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&add);
    write_private(path, text.as_bytes()).map_err(Error::Write)?;
    Ok(true)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// 32 random bytes, hex: as strong as any token kube tooling makes.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits one CSV line; quoted fields may hold commas. None on a stray quote.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur.trim().to_string());
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kube_format() {
        let f = TokenFile::parse(
            "# comment\nabc,alice,1,\"system:masters,dev\"\n\nxyz,system:node:n1,2,system:nodes\nt3,bob,3\n",
        )
        .unwrap();
        let a = f.user("abc").unwrap();
        assert_eq!(a.name, "alice");
        assert_eq!(a.groups, vec!["system:masters", "dev"]);
        assert_eq!(a.uid.as_deref(), Some("1"));
        assert_eq!(f.user("xyz").unwrap().node_name(), Some("n1"));
        assert!(f.user("t3").unwrap().groups.is_empty());
        assert!(f.user("nope").is_none());
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(matches!(
            TokenFile::parse("only,two").unwrap_err(),
            Error::Parse { line: 1, .. }
        ));
        assert!(TokenFile::parse("a,b,c,\"open").is_err());
        assert!(TokenFile::parse("a,b,1\na,c,2").is_err());
        assert!(TokenFile::parse(",b,1").is_err());
    }

    #[test]
    fn ensure_adds_only_missing_users() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.csv");
        assert!(ensure_tokens(&p, "admin", &["system:node:a".into()]).unwrap());
        let first = std::fs::read_to_string(&p).unwrap();
        assert!(!ensure_tokens(&p, "admin", &["system:node:a".into()]).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), first);
        assert!(ensure_tokens(
            &p,
            "admin",
            &["system:node:a".into(), "system:node:b".into()]
        )
        .unwrap());
        let f = TokenFile::load(&p).unwrap();
        assert_eq!(f.users.len(), 3);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(first
            .lines()
            .all(|l| std::fs::read_to_string(&p).unwrap().contains(l)));
    }
}

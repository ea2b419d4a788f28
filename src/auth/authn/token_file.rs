//! `--token-auth-file`: a CSV of `token,user,uid[,"group1,group2"]` (kube-apiserver's
//! tokenfile authenticator). Extra columns are ignored; blank lines and `#` comments skipped.

use super::UserInfo;
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;

pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --token-auth-file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let rec = split_csv(line);
            if rec.len() < 3 {
                bail!("line {}: expected at least 3 columns", i + 1);
            }
            let token = rec[0].trim().to_string();
            if token.is_empty() {
                bail!("line {}: empty token", i + 1);
            }
            let groups = rec
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if tokens.contains_key(&token) {
                tracing::warn!(
                    line = i + 1,
                    "duplicate token in --token-auth-file; using the last one"
                );
            }
            tokens.insert(
                token,
                UserInfo {
                    name: rec[1].clone(),
                    uid: rec[2].clone(),
                    groups,
                    ..Default::default()
                },
            );
        }
        Ok(TokenFile { tokens })
    }

    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

/// One CSV record: comma-separated fields, `"…"` quoting with `""` as an escaped quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
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
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kube_format() {
        let tf = TokenFile::parse(
            "# comment\nt1,alice,1001,\"dev,ops\"\n\nt2,bob,1002\nt3,carol,1003,single,extra\n",
        )
        .unwrap();
        let a = tf.lookup("t1").unwrap();
        assert_eq!((a.name.as_str(), a.uid.as_str()), ("alice", "1001"));
        assert_eq!(a.groups, vec!["dev", "ops"]);
        assert!(tf.lookup("t2").unwrap().groups.is_empty());
        assert_eq!(tf.lookup("t3").unwrap().groups, vec!["single"]);
        assert!(tf.lookup("nope").is_none());
        assert!(TokenFile::parse("a,b\n").is_err());
        assert!(TokenFile::parse(",b,c\n").is_err());
    }
}

//! Field selectors (`fieldSelector=`), following `k8s.io/apimachinery/pkg/fields/selector.go`:
//! comma-separated `field=value`, `field==value` or `field!=value` terms, ANDed. In values, `\,`,
//! `\=` and `\\` escape the special characters; field names are taken verbatim (no trimming,
//! no escapes). Which fields a resource supports is checked by the caller.

use std::fmt;

/// A term's operator (`=` and `==` are the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

impl FieldRequirement {
    /// A missing field reads as the empty string, as in Kubernetes.
    fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let have = get(&self.field).unwrap_or("");
        match self.op {
            FieldOp::Equals => have == self.value,
            FieldOp::NotEquals => have != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector. The default matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses a selector. Errors are kube-apiserver's texts, e.g.
    /// `invalid selector: 'a'; can't understand 'a'` or
    /// `invalid field selector: invalid escape sequence: \x`.
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut parts = split_terms(s);
        // Kubernetes sorts the terms before parsing them.
        parts.sort_unstable();
        let mut reqs = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let value = unescape_value(rhs)?;
            // A term with an empty field and value is dropped (Transform yields Everything()).
            if lhs.is_empty() && value.is_empty() {
                continue;
            }
            reqs.push(FieldRequirement {
                field: lhs.to_string(),
                op,
                value,
            });
        }
        Ok(FieldSelector { reqs })
    }

    /// A selector requiring `field=value`.
    pub fn one_term_equal(field: &str, value: &str) -> FieldSelector {
        FieldSelector {
            reqs: vec![FieldRequirement {
                field: field.to_string(),
                op: FieldOp::Equals,
                value: value.to_string(),
            }],
        }
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.reqs
    }

    /// Whether the object's fields (given as a lookup) satisfy every term.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|r| r.matches(&get))
    }

    /// `RequiresExactMatch`: the value of the first `=`/`==` term on `field`.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.reqs
            .iter()
            .find(|r| r.op == FieldOp::Equals && r.field == field)
            .map(|r| r.value.as_str())
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The field names the selector mentions (possibly repeated).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.reqs.iter().map(|r| r.field.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` in a value (`fields.EscapeValue`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas not preceded by an escaping backslash; escapes are kept.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, b) in s.bytes().enumerate() {
        if in_slash {
            in_slash = false;
        } else if b == b'\\' {
            in_slash = true;
        } else if b == b',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first operator, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    let b = term.as_bytes();
    for i in 0..b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"!=") {
            return Some((&term[..i], FieldOp::NotEquals, &term[i + 2..]));
        }
        if rest.starts_with(b"==") {
            return Some((&term[..i], FieldOp::Equals, &term[i + 2..]));
        }
        if rest.starts_with(b"=") {
            return Some((&term[..i], FieldOp::Equals, &term[i + 1..]));
        }
    }
    None
}

/// `fields.UnescapeValue`, with its error texts (Go prints the unescaped rune as a number).
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn m(sel: &FieldSelector, fields: &[(&str, &str)]) -> bool {
        let map: HashMap<&str, &str> = fields.iter().copied().collect();
        sel.matches(|k| map.get(k).copied())
    }

    #[test]
    fn basics() {
        assert!(sel("").is_empty());
        assert!(sel(",,").is_empty());
        let s = sel("metadata.name=a,spec.nodeName!=n1");
        assert!(m(&s, &[("metadata.name", "a"), ("spec.nodeName", "n2")]));
        assert!(!m(&s, &[("metadata.name", "a"), ("spec.nodeName", "n1")]));
        assert!(!m(&s, &[("metadata.name", "b")]));
        assert_eq!(s.exact("metadata.name"), Some("a"));
        assert_eq!(s.exact("spec.nodeName"), None);
        assert_eq!(
            s.fields().collect::<Vec<_>>(),
            vec!["metadata.name", "spec.nodeName"]
        );
        assert_eq!(
            sel("a==b").requirements(),
            &[FieldRequirement {
                field: "a".into(),
                op: FieldOp::Equals,
                value: "b".into()
            }]
        );
        // A missing field reads as "".
        assert!(m(&sel("a="), &[]));
        assert!(m(&sel("a!=x"), &[]));
        // No trimming.
        assert_eq!(sel("a = b").requirements()[0].field, "a ");
        assert_eq!(sel("a = b").requirements()[0].value, " b");
        // Empty field and value: dropped.
        assert!(sel("=").is_empty());
        assert_eq!(sel("=x").requirements()[0].field, "");
    }

    #[test]
    fn sorted_terms() {
        let s = sel("z=1,a=2");
        assert_eq!(s.to_string(), "a=2,z=1");
    }

    #[test]
    fn escapes() {
        let s = sel(r"a=x\,y\=z\\w,b=c");
        assert_eq!(s.exact("a"), Some(r"x,y=z\w"));
        assert_eq!(s.exact("b"), Some("c"));
        assert_eq!(s.to_string(), r"a=x\,y\=z\\w,b=c");
        assert_eq!(escape_value(r"a,b=c\"), r"a\,b\=c\\");
        // "!=" wins over "=" at the same position; the first operator position wins.
        let s = sel("a!=b");
        assert_eq!(s.requirements()[0].op, FieldOp::NotEquals);
        assert_eq!(
            FieldSelector::parse(r"a=b\!=c").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \!"
        );
        assert_eq!(
            FieldSelector::parse("a=b!=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn errors() {
        let err = |s: &str| FieldSelector::parse(s).unwrap_err();
        assert_eq!(err("a"), "invalid selector: 'a'; can't understand 'a'");
        assert_eq!(
            err("b=c,a"),
            "invalid selector: 'b=c,a'; can't understand 'a'"
        );
        assert_eq!(
            err(r"a=\x"),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            err(r"a=b\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("a==b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
    }
}

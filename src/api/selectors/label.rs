//! Label selectors (`labelSelector=`), a port of the lexer and parser of
//! `k8s.io/apimachinery/pkg/labels/selector.go` with its exact error texts.
//!
//! Grammar: comma-separated requirements, each `key`, `!key`, `key=v`, `key==v`, `key!=v`,
//! `key in (a,b)`, `key notin (a,b)`, `key>n` or `key<n`. Keys must be qualified names and values
//! valid label values.

use std::fmt;

use super::go_quote;
use crate::object::validation;

/// A requirement's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOp {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement; `values` are sorted and deduplicated, as Kubernetes keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

impl LabelRequirement {
    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether a label set (given as a lookup) satisfies this requirement. `!=` and `notin`
    /// match when the label is absent.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self.op {
            LabelOp::In | LabelOp::Equals | LabelOp::DoubleEquals => {
                get(&self.key).is_some_and(|v| self.has_value(v))
            }
            LabelOp::NotIn | LabelOp::NotEquals => {
                get(&self.key).is_none_or(|v| !self.has_value(v))
            }
            LabelOp::Exists => get(&self.key).is_some(),
            LabelOp::DoesNotExist => get(&self.key).is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let Some(Ok(have)) = get(&self.key).map(str::parse::<i64>) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == LabelOp::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            LabelOp::Exists | LabelOp::DoesNotExist => return Ok(()),
            LabelOp::Equals => "=",
            LabelOp::DoubleEquals => "==",
            LabelOp::NotEquals => "!=",
            LabelOp::In => " in (",
            LabelOp::NotIn => " notin (",
            LabelOp::GreaterThan => ">",
            LabelOp::LessThan => "<",
        };
        f.write_str(op)?;
        f.write_str(&self.values.join(","))?;
        if matches!(self.op, LabelOp::In | LabelOp::NotIn) {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key. The default matches
/// everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses a selector. The error is the message kube-apiserver returns in its 400, e.g.
    /// `unable to parse requirement: <nil>: Invalid value: "a$": name part must consist of …`.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut p = Parser {
            items: scan(s.as_bytes()),
            pos: 0,
        };
        let mut reqs = p.parse()?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { reqs })
    }

    /// Whether the labels (given as a lookup from key to value) satisfy every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|r| r.matches(&get))
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.reqs
    }

    /// `RequiresExactMatch`: the single value the first requirement on `key` demands
    /// (`=`, `==`, or `in` with one value).
    pub fn exact(&self, key: &str) -> Option<&str> {
        let r = self.reqs.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (LabelOp::Equals | LabelOp::DoubleEquals | LabelOp::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
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

// ---- lexer ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// The next byte, or 0 at the end (a NUL byte in the input acts as an end, as in Go).
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn scan_id_or_keyword(&mut self) -> (Tok, String) {
        let start = self.pos;
        let mut end;
        loop {
            end = self.pos;
            match self.read() {
                0 => break,
                ch if is_special(ch) || is_whitespace(ch) => {
                    self.unread();
                    break;
                }
                _ => {}
            }
        }
        let buf = &self.s[start..end];
        let lit = String::from_utf8_lossy(buf).into_owned();
        (keyword(buf).unwrap_or(Tok::Identifier), lit)
    }

    fn scan_special_symbol(&mut self) -> (Tok, String) {
        let start = self.pos;
        let mut last: Option<(Tok, usize)> = None;
        loop {
            match self.read() {
                0 => break,
                ch if is_special(ch) => {
                    let buf = &self.s[start..self.pos];
                    if let Some(t) = keyword(buf) {
                        last = Some((t, self.pos));
                    } else if last.is_some() {
                        self.unread();
                        break;
                    }
                }
                _ => {
                    self.unread();
                    break;
                }
            }
        }
        match last {
            Some((t, end)) => (t, String::from_utf8_lossy(&self.s[start..end]).into_owned()),
            None => (
                Tok::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&self.s[start..self.pos])
                ),
            ),
        }
    }

    fn lex(&mut self) -> (Tok, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Tok::EndOfString, String::new());
        }
        self.unread();
        if is_special(ch) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

fn scan(s: &[u8]) -> Vec<(Tok, String)> {
    let mut l = Lexer { s, pos: 0 };
    let mut items = Vec::new();
    loop {
        let item = l.lex();
        let end = item.0 == Tok::EndOfString;
        items.push(item);
        if end {
            return items;
        }
    }
}

// ---- parser ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    /// `in`/`notin` read as identifiers.
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn item(&self, i: usize, ctx: Ctx) -> (Tok, String) {
        let (tok, lit) = self
            .items
            .get(i)
            .cloned()
            .unwrap_or((Tok::EndOfString, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Ctx::Values => (Tok::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.item(self.pos, ctx)
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        self.pos += 1;
        self.item(self.pos - 1, ctx)
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::EndOfString => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::EndOfString => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (LabelOp::Exists | LabelOp::DoesNotExist)) = op {
            return new_requirement(key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, op, values)
    }

    /// Reads `[!]key`; infers Exists when no operator follows.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOp>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(LabelOp::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = validation::qualified_name(&lit);
        if !errs.is_empty() {
            // Kubernetes builds this field error with a nil path, hence "<nil>".
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&lit),
                errs.join("; ")
            ));
        }
        if matches!(self.lookahead(Ctx::Values).0, Tok::EndOfString | Tok::Comma) && op.is_none() {
            op = Some(LabelOp::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<LabelOp, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => LabelOp::In,
            Tok::Equals => LabelOp::Equals,
            Tok::DoubleEquals => LabelOp::DoubleEquals,
            Tok::GreaterThan => LabelOp::GreaterThan,
            Tok::LessThan => LabelOp::LessThan,
            Tok::NotIn => LabelOp::NotIn,
            Tok::NotEquals => LabelOp::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `(a,b,…)`; returns the sorted, deduplicated values.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.parse_identifiers_list()?;
                if self.consume(Ctx::Values).0 != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    set.push(lit);
                    let (tok2, lit2) = self.lookahead(Ctx::Values);
                    match tok2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(sorted_set(set)),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    // "(," ",," and ",)" each stand for an empty value.
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    match self.lookahead(Ctx::Values).0 {
                        Tok::ClosedPar => {
                            set.push(String::new());
                            return Ok(sorted_set(set));
                        }
                        Tok::Comma => set.push(String::new()),
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.lookahead(Ctx::Values).0, Tok::EndOfString | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

fn sorted_set(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// `NewRequirement`'s checks (the key was already validated by the parser): integer values
/// for `>`/`<`, and label-value syntax, reported as an aggregate of field errors.
fn new_requirement(
    key: String,
    op: LabelOp,
    values: Vec<String>,
) -> Result<LabelRequirement, String> {
    let mut errs: Vec<String> = Vec::new();
    if matches!(op, LabelOp::GreaterThan | LabelOp::LessThan) {
        if values.len() != 1 {
            errs.push(format!("values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required", go_string_list(&values)));
        }
        for (i, v) in values.iter().enumerate() {
            if v.parse::<i64>().is_err() {
                errs.push(format!("values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer", go_quote(v)));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let problems = validation::label_value(v);
        if !problems.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(v),
                problems.join("; ")
            ));
        }
    }
    let mut unique: Vec<String> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => Ok(LabelRequirement { key, op, values }),
        1 => Err(unique.remove(0)),
        _ => Err(format!("[{}]", unique.join(", "))),
    }
}

/// How a Go field error prints a `[]string` bad value (JSON).
fn go_string_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn m(sel: &LabelSelector, labels: &[(&str, &str)]) -> bool {
        let map: HashMap<&str, &str> = labels.iter().copied().collect();
        sel.matches(|k| map.get(k).copied())
    }

    #[test]
    fn empty() {
        assert!(sel("").is_empty());
        assert!(sel("  \t").is_empty());
        assert!(m(&sel(""), &[]));
    }

    #[test]
    fn equality() {
        let s = sel("a=b");
        assert!(m(&s, &[("a", "b")]));
        assert!(!m(&s, &[("a", "c")]));
        assert!(!m(&s, &[]));
        assert!(m(&sel("a==b"), &[("a", "b")]));
        let ne = sel("a!=b");
        assert!(m(&ne, &[]));
        assert!(m(&ne, &[("a", "c")]));
        assert!(!m(&ne, &[("a", "b")]));
        assert!(m(&sel("a="), &[("a", "")]));
        assert!(!m(&sel("a="), &[]));
    }

    #[test]
    fn sets_and_existence() {
        let s = sel("a in (x, y),b!=z");
        assert_eq!(s.requirements().len(), 2);
        assert!(m(&s, &[("a", "x")]));
        assert!(m(&s, &[("a", "y"), ("b", "w")]));
        assert!(!m(&s, &[("a", "y"), ("b", "z")]));
        assert!(!m(&s, &[("b", "w")]));
        let n = sel("a notin (x,y)");
        assert!(m(&n, &[]));
        assert!(m(&n, &[("a", "z")]));
        assert!(!m(&n, &[("a", "x")]));
        assert!(m(&sel("a"), &[("a", "")]));
        assert!(!m(&sel("a"), &[]));
        assert!(m(&sel("!a"), &[("b", "c")]));
        assert!(!m(&sel("!a"), &[("a", "c")]));
        assert!(m(&sel(" a , !b "), &[("a", "1")]));
        // "in"/"notin" are plain values in value position.
        assert!(m(&sel("a=in"), &[("a", "in")]));
        assert!(m(&sel("a in (in,notin)"), &[("a", "notin")]));
        assert_eq!(
            sel("x in (foo,,baz),y,z notin ()").to_string(),
            "x in (,baz,foo),y,z notin ()"
        );
        assert_eq!(
            sel("a in (b,)").requirements()[0].values,
            vec!["".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn numeric() {
        assert!(m(&sel("a>5"), &[("a", "6")]));
        assert!(!m(&sel("a>5"), &[("a", "5")]));
        assert!(!m(&sel("a>5"), &[("a", "x")]));
        assert!(m(&sel("a<5"), &[("a", "-1")]));
        assert!(!m(&sel("a<5"), &[]));
    }

    #[test]
    fn exact_and_display() {
        let s = sel("b=2,a in (1)");
        assert_eq!(s.exact("a"), Some("1"));
        assert_eq!(s.exact("b"), Some("2"));
        assert_eq!(sel("a!=1").exact("a"), None);
        assert_eq!(s.to_string(), "a in (1),b=2");
        assert_eq!(sel("!a,b").to_string(), "!a,b");
    }

    #[test]
    fn syntax_errors() {
        let err = |s: &str| LabelSelector::parse(s).unwrap_err();
        assert_eq!(err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(
            err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            err("a in"),
            "unable to parse requirement: found '' expected: '('"
        );
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("a in (b,="),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert!(m(&sel("a=="), &[("a", "")]));
        assert_eq!(
            err("a=(b"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
    }

    #[test]
    fn validation_errors() {
        let err = |s: &str| LabelSelector::parse(s).unwrap_err();
        assert_eq!(
            err("app:monolith"),
            "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let value_msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        assert_eq!(err("app=demo-{nginx}"), format!("unable to parse requirement: values[0][app]: Invalid value: \"demo-{{nginx}}\": {value_msg}"));
        // Values are sorted before they are indexed.
        assert_eq!(
            err("a in (z, b$)"),
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"b$\": {value_msg}"
            )
        );
        assert_eq!(
            err("a in (-x, -y)"),
            format!("unable to parse requirement: [values[0][a]: Invalid value: \"-x\": {value_msg}, values[1][a]: Invalid value: \"-y\": {value_msg}]")
        );
        assert_eq!(err("environment>qa"), "unable to parse requirement: values[0]: Invalid value: \"qa\": for 'Gt', 'Lt' operators, the value must be an integer");
        assert!(err(&format!("a={}", "b".repeat(64))).ends_with(": must be no more than 63 bytes"));
    }
}

//! Field paths and field sets (`sigs.k8s.io/structured-merge-diff/v4/fieldpath`), and their
//! `FieldsV1` JSON encoding.
//!
//! A [`Set`] is a tree: every node may be a *member* (the field itself is owned) and may have
//! children. `FieldsV1` writes a node that is both a member and has children as an object whose
//! first key is `"."`; a member without children as `{}`. Keys inside an object follow the
//! path-element order: `f:` names, then `k:` list-map keys, `v:` set values and `i:` indexes.
//!
//! `i:<n>` elements select an item of a non-associative list by position. Atomic lists are leaves
//! in every set, so Kubernetes never writes `i:` in practice; it is parsed and written for
//! completeness.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// One step of a path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of a struct or a key of a map: `f:<name>`.
    Field(String),
    /// An item of an associative list, by its key fields (sorted by name): `k:{"name":"c"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set (a list of scalars): `v:<json>`.
    Value(Value),
    /// An item of a non-associative list by position: `i:<n>`.
    Index(i64),
}

impl PathElement {
    pub fn field(name: impl Into<String>) -> Self {
        PathElement::Field(name.into())
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key form: `f:name`, `k:{"a":1}`, `v:"x"`, `i:0`.
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(fields) => {
                let mut m = Map::new();
                for (k, v) in fields {
                    m.insert(k.clone(), v.clone());
                }
                format!("k:{}", Value::Object(m))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key. `Ok(None)` for an unknown element type (ignored, like
    /// structured-merge-diff does).
    pub fn deserialize(s: &str) -> Result<Option<Self>, String> {
        if s.len() < 2 {
            return Err(format!("key must be 2 characters long: {s}"));
        }
        let (ty, rest) = s.split_at(2);
        if !ty.ends_with(':') {
            return Err(format!("missing colon: {s}"));
        }
        match &ty[..1] {
            "f" => Ok(Some(PathElement::Field(rest.to_string()))),
            "v" => serde_json::from_str(rest)
                .map(|v| Some(PathElement::Value(v)))
                .map_err(|e| e.to_string()),
            "k" => {
                let v: Value = serde_json::from_str(rest).map_err(|e| e.to_string())?;
                let Value::Object(m) = v else {
                    return Err(format!("expected object for key: {s}"));
                };
                let mut fields: Vec<(String, Value)> = m.into_iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Some(PathElement::Key(fields)))
            }
            "i" => rest
                .parse::<i64>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.as_bytes().cmp(b.as_bytes()),
            (PathElement::Key(a), PathElement::Key(b)) => compare_field_lists(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl fmt::Display for PathElement {
    /// The human form used in conflict messages: `.name`, `[name="c"]`, `[="x"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_to_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the root of an object.
pub type Path = Vec<PathElement>;

/// `.spec.template.spec.containers[name="nginx"].image`
pub fn path_string(p: &[PathElement]) -> String {
    p.iter().map(ToString::to_string).collect()
}

/// Go's `%q` for the strings in path and error messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// structured-merge-diff's `value.ToString`.
pub fn value_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_to_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_string(v)))
            .collect::<Vec<_>>()
            .join(""),
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// structured-merge-diff's total order on values: numbers (compared numerically), strings,
/// booleans, lists, maps, null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x.cmp(&y);
            }
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let c = compare_values(l, r);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|a, b| a.0.cmp(b.0));
            ys.sort_by(|a, b| a.0.cmp(b.0));
            for ((kl, vl), (kr, vr)) in xs.iter().zip(&ys) {
                let c = kl.cmp(kr).then_with(|| compare_values(vl, vr));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Value equality as structured-merge-diff sees it (`1` equals `1.0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

fn compare_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((kl, vl), (kr, vr)) in a.iter().zip(b) {
        let c = kl
            .as_bytes()
            .cmp(kr.as_bytes())
            .then_with(|| compare_values(vl, vr));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// A set of field paths, as a tree. Nodes without members below them are never kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: std::collections::BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Self {
        Set::default()
    }

    pub fn from_paths<I: IntoIterator<Item = Path>>(paths: I) -> Self {
        let mut s = Set::new();
        for p in paths {
            s.insert(&p);
        }
        s
    }

    /// Adds `p` (its parents are not added). The empty path (the whole object) is never owned.
    pub fn insert(&mut self, p: &[PathElement]) {
        match p {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn has(&self, p: &[PathElement]) -> bool {
        match p {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Whether `pe` is a member at this level.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe`, without the prefix (`WithPrefix`).
    pub fn with_prefix(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe).filter(|s| !s.is_empty())
    }

    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    fn normalized(mut self) -> Self {
        self.children.retain(|_, c| !c.is_empty());
        self
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out.normalized()
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if let Some(c2) = other.children.get(pe) {
                let i = c.intersection(c2);
                if !i.is_empty() {
                    children.insert(pe.clone(), i);
                }
            }
        }
        Set { members, children }
    }

    /// Paths of `self` that are not in `other` (path-wise; a member of `other` does not remove
    /// the paths below it).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(c2) => c.difference(c2),
                None => c.clone(),
            };
            if !d.is_empty() {
                children.insert(pe.clone(), d);
            }
        }
        Set { members, children }
    }

    /// Paths of `self` that are neither in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let d = match other.children.get(pe) {
                Some(c2) => c.recursive_difference(c2),
                None => c.clone(),
            };
            if !d.is_empty() {
                children.insert(pe.clone(), d);
            }
        }
        Set { members, children }
    }

    /// Every member path, depth first: at each level the members, then the children, each in
    /// path-element order (structured-merge-diff's `Iterate`).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    pub(crate) fn members_mut(&mut self) -> &mut std::collections::BTreeSet<PathElement> {
        &mut self.members
    }

    pub(crate) fn set_child(&mut self, pe: PathElement, s: Set) {
        if s.is_empty() {
            self.children.remove(&pe);
        } else {
            self.children.insert(pe, s);
        }
    }

    /// The `FieldsV1` JSON object.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let mut keys: Vec<&PathElement> = self.members.iter().collect();
        keys.extend(self.children.keys().filter(|k| !self.members.contains(k)));
        keys.sort();
        for pe in keys {
            let v = match self.children.get(pe) {
                Some(c) => c.emit(self.members.contains(pe)),
                None => Map::new(),
            };
            out.insert(pe.serialize(), Value::Object(v));
        }
        out
    }

    /// Parses a `FieldsV1` object.
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(m) = v else {
            return Err("FieldsV1 must be an object".into());
        };
        let (set, _) = read_v1(m)?;
        Ok(set.unwrap_or_default())
    }
}

/// Returns the subtree (None when it has no children) and whether the node itself is a member.
fn read_v1(m: &Map<String, Value>) -> Result<(Option<Set>, bool), String> {
    let mut children: Option<Set> = None;
    let mut is_member = false;
    for (k, v) in m {
        if k == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::deserialize(k)? else {
            continue;
        };
        let grandchildren = match v {
            Value::Object(inner) => read_v1(inner)?,
            _ => (None, true),
        };
        let (grand, child_is_member) = grandchildren;
        if child_is_member {
            children
                .get_or_insert_with(Set::new)
                .members
                .insert(pe.clone());
        }
        if let Some(g) = grand {
            if !g.is_empty() {
                children.get_or_insert_with(Set::new).children.insert(pe, g);
            }
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElement {
        PathElement::field(n)
    }

    #[test]
    fn fields_v1_round_trip_and_order() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}
            }
        });
        let s = Set::from_fields_v1(&v).unwrap();
        assert!(s.has(&[f("metadata"), f("labels")]));
        assert!(s.has(&[f("metadata"), f("labels"), f("app")]));
        assert!(!s.has(&[f("metadata")]));
        assert!(s.has(&[f("spec"), f("replicas")]));
        let key = PathElement::Key(vec![("name".into(), json!("nginx"))]);
        let c = [
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            key.clone(),
        ];
        assert!(s.has(&c));
        assert_eq!(
            serde_json::to_string(&s.to_fields_v1()).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
        assert_eq!(
            path_string(&c),
            ".spec.template.spec.containers[name=\"nginx\"]"
        );
    }

    #[test]
    fn element_order_and_keys() {
        let mut s = Set::new();
        s.insert(&[f("x"), PathElement::Index(1)]);
        s.insert(&[f("x"), PathElement::Value(json!("b"))]);
        s.insert(&[
            f("x"),
            PathElement::Key(vec![
                ("containerPort".into(), json!(80)),
                ("protocol".into(), json!("TCP")),
            ]),
        ]);
        s.insert(&[f("x"), f("z")]);
        let out = serde_json::to_string(&s.to_fields_v1()).unwrap();
        assert_eq!(
            out,
            r#"{"f:x":{"f:z":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{},"v:\"b\"":{},"i:1":{}}}"#
        );
        let back = Set::from_fields_v1(&serde_json::from_str(&out).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn set_algebra() {
        let a = Set::from_paths([vec![f("a"), f("b")], vec![f("a"), f("c")], vec![f("d")]]);
        let b = Set::from_paths([vec![f("a"), f("b")], vec![f("a")]]);
        let d = a.difference(&b);
        assert_eq!(d.paths(), vec![vec![f("d")], vec![f("a"), f("c")]]);
        let rd = a.recursive_difference(&b);
        assert_eq!(rd.paths(), vec![vec![f("d")]]);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("a"), f("b")]]);
        assert_eq!(a.union(&b).paths().len(), 4);
        assert!(a.difference(&a).is_empty());
    }
}

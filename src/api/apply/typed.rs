//! Schema-driven walks over JSON objects (structured-merge-diff's `typed` package): the field set
//! of a value, the merge of an applied configuration into a live object, the comparison of two
//! objects, and the removal of items.

use super::fieldpath::{go_quote, path_string, values_equal, Path, PathElement, Set};
use super::schema::{Atom, ListKind, ScalarKind, Ty};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A problem with a value at a path (`.spec.foo: field not declared in schema`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// structured-merge-diff's `ValidationErrors.Error()`.
pub fn errors_string(errs: &[ValidationError]) -> String {
    if errs.len() == 1 {
        return errs[0].to_string();
    }
    let mut parts = vec!["errors:".to_string()];
    parts.extend(errs.iter().map(|e| format!("  {e}")));
    parts.join("\n")
}

fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

/// The path element of a list item.
pub fn item_pe(
    kind: &ListKind,
    elem: Ty,
    index: usize,
    item: &Value,
) -> Result<PathElement, String> {
    match kind {
        ListKind::Map(keys) => {
            let Value::Object(m) = item else {
                return Err(if item.is_null() {
                    "associative list with keys may not have a null element".into()
                } else {
                    "associative list with keys may not have non-map elements".into()
                });
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                match m.get(*k) {
                    Some(v) => fields.push((k.to_string(), v.clone())),
                    None => match elem.key_default(k) {
                        Some(d) => fields.push((k.to_string(), d)),
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                                go_quote(k)
                            ))
                        }
                    },
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
        ListKind::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::Value(v.clone())),
        },
        ListKind::Atomic => Ok(PathElement::Index(index as i64)),
    }
}

/// How a node is walked, decided from its type and (for deduced types) its value.
enum Shape<'s> {
    Leaf,
    List(Ty<'s>, ListKind<'s>),
    Map(Ty<'s>),
}

/// The shape of a node holding `v` (and, for comparisons and merges, `other`). Values that do
/// not fit the schema are leaves: comparing or merging them replaces them whole.
fn shape<'s>(ty: Ty<'s>, v: Option<&Value>, other: Option<&Value>) -> Shape<'s> {
    let kind_of = |v: &Value| match v {
        Value::Object(_) => 2,
        Value::Array(_) => 1,
        Value::Null => 3,
        _ => 0,
    };
    // null fits any container.
    let fits = |want: u8| {
        [v, other]
            .iter()
            .all(|x| x.is_none_or(|x| kind_of(x) == want || x.is_null()))
    };
    match ty.atom() {
        Atom::Scalar(_) => Shape::Leaf,
        Atom::List { elem, kind } => {
            if kind != ListKind::Atomic && fits(1) {
                Shape::List(elem, kind)
            } else {
                Shape::Leaf
            }
        }
        Atom::Map { atomic, .. } => {
            if !atomic && fits(2) {
                Shape::Map(ty)
            } else {
                Shape::Leaf
            }
        }
        Atom::Deduced => {
            let any_map = [v, other].iter().any(|x| x.is_some_and(Value::is_object));
            if any_map && fits(2) {
                Shape::Map(ty)
            } else {
                Shape::Leaf
            }
        }
    }
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn as_list(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array)
}

// ---------------------------------------------------------------------------------------------
// ToFieldSet (with validation of applied configurations)
// ---------------------------------------------------------------------------------------------

/// The fields set in `v`. With `strict`, type errors, undeclared fields, list items without
/// keys and duplicate keys are reported (the applied configuration is checked this way); without,
/// values that do not fit the schema are taken as leaves.
pub fn to_field_set(v: &Value, ty: Ty, strict: bool) -> Result<Set, Vec<ValidationError>> {
    let mut set = Set::new();
    let mut errs = Vec::new();
    let mut path = Vec::new();
    tfs(v, ty, &mut path, &mut set, &mut errs, strict);
    if strict && !errs.is_empty() {
        return Err(errs);
    }
    Ok(set)
}

fn scalar_error(kind: ScalarKind, v: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match kind {
        ScalarKind::Numeric if !v.is_number() => Some(format!(
            "expected numeric (int or float), got {}",
            go_type(v)
        )),
        ScalarKind::String if !v.is_string() => Some(format!(
            "expected string, got &value.valueUnstructured{{Value:{}}}",
            go_value(v)
        )),
        ScalarKind::Boolean if !v.is_boolean() => {
            Some(format!("expected boolean, got {}", go_value(v)))
        }
        ScalarKind::Untyped if v.is_object() || v.is_array() => {
            Some(format!("expected any scalar, got {}", go_value(v)))
        }
        _ => None,
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Number(_) => "float64",
        Value::Null => "<nil>",
    }
}

fn tfs(
    v: &Value,
    ty: Ty,
    path: &mut Path,
    set: &mut Set,
    errs: &mut Vec<ValidationError>,
    strict: bool,
) {
    let err = |errs: &mut Vec<ValidationError>, path: &Path, message: String| {
        errs.push(ValidationError {
            path: path_string(path),
            message,
        })
    };
    match ty.atom() {
        Atom::Scalar(kind) => {
            if strict {
                if let Some(m) = scalar_error(kind, v) {
                    err(errs, path, m);
                }
            }
            set.insert(path);
        }
        Atom::List { elem, kind } => {
            if v.is_null() {
                if kind == ListKind::Atomic {
                    set.insert(path);
                }
                return;
            }
            let Value::Array(items) = v else {
                if strict {
                    err(errs, path, format!("expected list, got {}", go_value(v)));
                }
                set.insert(path);
                return;
            };
            if kind == ListKind::Atomic {
                set.insert(path);
                return;
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let pe = match item_pe(&kind, elem, i, item) {
                    Ok(pe) => pe,
                    Err(e) => {
                        if strict {
                            err(errs, path, format!("element {i}: {e}"));
                        }
                        continue;
                    }
                };
                if !seen.insert(pe.clone()) {
                    if strict {
                        err(errs, path, format!("duplicate entries for key {pe}"));
                    }
                    continue;
                }
                path.push(pe);
                tfs(item, elem, path, set, errs, strict);
                set.insert(path);
                path.pop();
            }
        }
        Atom::Map { atomic, .. } => {
            if v.is_null() {
                if atomic {
                    set.insert(path);
                }
                return;
            }
            let Value::Object(m) = v else {
                if strict {
                    err(errs, path, format!("expected map, got {}", go_value(v)));
                }
                set.insert(path);
                return;
            };
            if atomic {
                set.insert(path);
                return;
            }
            tfs_map(m, ty, path, set, errs, strict);
        }
        Atom::Deduced => match v {
            Value::Object(m) => tfs_map(m, ty, path, set, errs, strict),
            Value::Null => {}
            _ => set.insert(path),
        },
    }
}

fn tfs_map(
    m: &Map<String, Value>,
    ty: Ty,
    path: &mut Path,
    set: &mut Set,
    errs: &mut Vec<ValidationError>,
    strict: bool,
) {
    for (k, val) in m {
        let pe = PathElement::field(k.clone());
        let (fty, declared) = match ty.field(k) {
            Some(f) => f,
            None => {
                path.push(pe);
                if strict {
                    errs.push(ValidationError {
                        path: path_string(path),
                        message: "field not declared in schema".into(),
                    });
                    path.pop();
                    // structured-merge-diff stops at the first undeclared field of a map.
                    return;
                }
                set.insert(path);
                path.pop();
                continue;
            }
        };
        path.push(pe);
        tfs(val, fty, path, set, errs, strict);
        // Undeclared keys, nulls and empty maps are owned themselves.
        if !declared || val.is_null() || val.as_object().is_some_and(Map::is_empty) {
            set.insert(path);
        }
        path.pop();
    }
}

// ---------------------------------------------------------------------------------------------
// Merge
// ---------------------------------------------------------------------------------------------

/// Merges `rhs` (an applied configuration) into `lhs` (the live object): scalars and atomic
/// values are replaced, granular maps merged key by key, associative lists item by item.
pub fn merge(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty) -> Option<Value> {
    match (lhs, rhs) {
        (None, None) => return None,
        (None, Some(r)) => return Some(r.clone()),
        (Some(l), None) => return Some(l.clone()),
        _ => {}
    }
    match shape(ty, lhs, rhs) {
        Shape::Leaf => rhs.cloned(),
        Shape::Map(ty) => {
            let (l, r) = (as_map(lhs), as_map(rhs));
            let empty = |m: Option<&Map<String, Value>>| m.is_none_or(Map::is_empty);
            if empty(l) && empty(r) {
                return rhs.cloned();
            }
            let mut out = Map::new();
            if let Some(l) = l {
                for (k, lv) in l {
                    let fty = field_ty(ty, k);
                    if let Some(v) = merge(Some(lv), r.and_then(|r| r.get(k)), fty) {
                        out.insert(k.clone(), v);
                    }
                }
            }
            if let Some(r) = r {
                for (k, rv) in r {
                    if l.is_some_and(|l| l.contains_key(k)) {
                        continue;
                    }
                    out.insert(k.clone(), rv.clone());
                }
            }
            Some(Value::Object(out))
        }
        Shape::List(elem, kind) => {
            let (l, r) = (as_list(lhs), as_list(rhs));
            let empty = |x: Option<&Vec<Value>>| x.is_none_or(Vec::is_empty);
            if empty(l) && empty(r) {
                return rhs.cloned();
            }
            let out = merge_list_items(
                l.map(Vec::as_slice).unwrap_or(&[]),
                r.map(Vec::as_slice).unwrap_or(&[]),
                elem,
                &kind,
            );
            Some(Value::Array(out))
        }
    }
}

fn field_ty<'s>(ty: Ty<'s>, k: &str) -> Ty<'s> {
    ty.field(k)
        .map(|(t, _)| t)
        .unwrap_or_else(|| Ty::deduced(ty.defs()))
}

type Indexed<'a> = (Vec<PathElement>, BTreeMap<PathElement, &'a Value>);

fn index_items<'a>(items: &'a [Value], elem: Ty, kind: &ListKind) -> Indexed<'a> {
    let mut order = Vec::with_capacity(items.len());
    let mut by_pe = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let Ok(pe) = item_pe(kind, elem, i, item) else {
            continue;
        };
        if by_pe.contains_key(&pe) {
            continue;
        }
        by_pe.insert(pe.clone(), item);
        order.push(pe);
    }
    (order, by_pe)
}

/// structured-merge-diff's list merge order: the applied items in their order, with live items
/// the configuration does not mention kept where they were relative to the shared ones.
fn merge_list_items(lhs: &[Value], rhs: &[Value], elem: Ty, kind: &ListKind) -> Vec<Value> {
    let (lorder, lmap) = index_items(lhs, elem, kind);
    let (rorder, rmap) = index_items(rhs, elem, kind);
    let mut shared: std::collections::VecDeque<&PathElement> =
        rorder.iter().filter(|pe| lmap.contains_key(*pe)).collect();
    let mut next_shared = shared.pop_front();
    let mut out = Vec::with_capacity(lorder.len().max(rorder.len()));
    let push = |pe: &PathElement, out: &mut Vec<Value>| {
        if let Some(v) = merge(lmap.get(pe).copied(), rmap.get(pe).copied(), elem) {
            out.push(v);
        }
    };
    let (mut li, mut ri) = (0, 0);
    while li < lorder.len() || ri < rorder.len() {
        if li < lorder.len() && ri < rorder.len() {
            let pe = &lorder[li];
            if *pe == rorder[ri] {
                push(pe, &mut out);
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if rmap.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                // A shared item, but not the one due in this round.
                li += 1;
                continue;
            }
        }
        if li < lorder.len() && !rmap.contains_key(&lorder[li]) {
            push(&lorder[li], &mut out);
            li += 1;
            continue;
        }
        if ri < rorder.len() {
            let pe = &rorder[ri];
            push(pe, &mut out);
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        } else {
            // Only shared live items remain, all merged already.
            li += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Compare
// ---------------------------------------------------------------------------------------------

/// The fields `rhs` adds to, changes in, and removes from `lhs`.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    pub fn exclude(&self, fields: &Set) -> Comparison {
        if fields.is_empty() {
            return self.clone();
        }
        Comparison {
            added: self.added.recursive_difference(fields),
            modified: self.modified.recursive_difference(fields),
            removed: self.removed.recursive_difference(fields),
        }
    }
}

pub fn compare(lhs: &Value, rhs: &Value, ty: Ty) -> Comparison {
    let mut c = Comparison::default();
    cmp_walk(Some(lhs), Some(rhs), ty, &mut Vec::new(), &mut c);
    c
}

fn cmp_leaf(lhs: Option<&Value>, rhs: Option<&Value>, path: &Path, c: &mut Comparison) {
    match (lhs, rhs) {
        (None, _) => c.added.insert(path),
        (_, None) => c.removed.insert(path),
        (Some(l), Some(r)) => {
            if !values_equal(l, r) {
                c.modified.insert(path)
            }
        }
    }
}

fn cmp_walk(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty, path: &mut Path, c: &mut Comparison) {
    match shape(ty, lhs, rhs) {
        Shape::Leaf => {
            cmp_leaf(lhs, rhs, path, c);
            return;
        }
        Shape::Map(ty) => {
            let (l, r) = (as_map(lhs), as_map(rhs));
            let empty = |m: Option<&Map<String, Value>>| m.is_none_or(Map::is_empty);
            if empty(l) && empty(r) {
                cmp_leaf(lhs, rhs, path, c);
                return;
            }
            if let Some(l) = l {
                for (k, lv) in l {
                    path.push(PathElement::field(k.clone()));
                    cmp_walk(Some(lv), r.and_then(|r| r.get(k)), field_ty(ty, k), path, c);
                    path.pop();
                }
            }
            if let Some(r) = r {
                for (k, rv) in r {
                    if l.is_some_and(|l| l.contains_key(k)) {
                        continue;
                    }
                    path.push(PathElement::field(k.clone()));
                    cmp_walk(None, Some(rv), field_ty(ty, k), path, c);
                    path.pop();
                }
            }
        }
        Shape::List(elem, kind) => {
            let (l, r) = (as_list(lhs), as_list(rhs));
            let empty = |x: Option<&Vec<Value>>| x.is_none_or(Vec::is_empty);
            if empty(l) && empty(r) {
                cmp_leaf(lhs, rhs, path, c);
                return;
            }
            let (_, lmap) = index_items(l.map(Vec::as_slice).unwrap_or(&[]), elem, &kind);
            let (rorder, rmap) = index_items(r.map(Vec::as_slice).unwrap_or(&[]), elem, &kind);
            for pe in &rorder {
                path.push(pe.clone());
                cmp_walk(lmap.get(pe).copied(), rmap.get(pe).copied(), elem, path, c);
                path.pop();
            }
            let (lorder, _) = index_items(l.map(Vec::as_slice).unwrap_or(&[]), elem, &kind);
            for pe in &lorder {
                if rmap.contains_key(pe) {
                    continue;
                }
                path.push(pe.clone());
                cmp_walk(lmap.get(pe).copied(), None, elem, path, c);
                path.pop();
            }
        }
    }
    if lhs.is_none() {
        c.added.insert(path);
    } else if rhs.is_none() {
        c.removed.insert(path);
    }
}

// ---------------------------------------------------------------------------------------------
// RemoveItems and EnsureNamedFieldsAreMembers
// ---------------------------------------------------------------------------------------------

/// `v` without the fields and items in `remove`. None when nothing is left of a container.
pub fn remove_items(v: &Value, remove: &Set, ty: Ty) -> Option<Value> {
    match shape(ty, Some(v), None) {
        Shape::Leaf => Some(v.clone()),
        Shape::Map(ty) => {
            let Value::Object(m) = v else {
                return Some(v.clone());
            };
            if m.is_empty() {
                return Some(v.clone());
            }
            let mut out = Map::new();
            for (k, val) in m {
                let pe = PathElement::field(k.clone());
                if remove.has_member(&pe) {
                    continue;
                }
                match remove.with_prefix(&pe) {
                    Some(sub) => {
                        if let Some(nv) = remove_items(val, sub, field_ty(ty, k)) {
                            out.insert(k.clone(), nv);
                        }
                    }
                    None => {
                        out.insert(k.clone(), val.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Shape::List(elem, kind) => {
            let Value::Array(items) = v else {
                return Some(v.clone());
            };
            if items.is_empty() {
                return Some(v.clone());
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = item_pe(&kind, elem, i, item) else {
                    out.push(item.clone());
                    continue;
                };
                if remove.has_member(&pe) {
                    continue;
                }
                match remove.with_prefix(&pe) {
                    Some(sub) => {
                        if let Some(nv) = remove_items(item, sub, elem) {
                            out.push(nv);
                        }
                    }
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

/// `s` plus, as members, the struct fields that have children in `s` (so that removing them
/// removes the field itself, not only the items below it).
pub fn ensure_named_fields_are_members(s: &Set, ty: Ty) -> Set {
    let mut out = Set::new();
    let atom = ty.atom();
    for m in s.members() {
        out.members_mut().insert(m.clone());
    }
    for (pe, child) in s.children() {
        let child_ty = match (pe, &atom) {
            (PathElement::Field(name), Atom::Map { .. }) => {
                if ty.declares(name) {
                    out.members_mut().insert(pe.clone());
                }
                field_ty(ty, name)
            }
            (PathElement::Key(_), Atom::List { elem, .. }) => *elem,
            _ => Ty::deduced(ty.defs()),
        };
        out.set_child(pe.clone(), ensure_named_fields_are_members(child, child_ty));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::schema::Schema;
    use super::*;
    use serde_json::json;

    fn deploy_ty() -> Ty<'static> {
        Schema::for_kind("apps/v1", "Deployment", "").root()
    }

    #[test]
    fn list_merge_order() {
        let ty = deploy_ty();
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "x", "image": "x:1"}, {"name": "b", "image": "b:1"}
        ]}}}});
        let cfg = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}, {"name": "a", "image": "a:2"}
        ]}}}});
        let out = merge(Some(&live), Some(&cfg), ty).unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["x", "b", "c", "a"]);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][3]["image"],
            "a:2"
        );
    }

    #[test]
    fn strict_field_set_errors() {
        let ty = deploy_ty();
        let cfg = json!({"spec": {"foo": 1}});
        let e = to_field_set(&cfg, ty, true).unwrap_err();
        assert_eq!(errors_string(&e), ".spec.foo: field not declared in schema");
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let e = to_field_set(&cfg, ty, true).unwrap_err();
        assert_eq!(
            errors_string(&e),
            ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        );
        let cfg = json!({"spec": {"replicas": "3"}});
        let e = to_field_set(&cfg, ty, true).unwrap_err();
        assert_eq!(
            errors_string(&e),
            ".spec.replicas: expected numeric (int or float), got string"
        );
    }

    #[test]
    fn compare_marks_new_containers() {
        let ty = deploy_ty();
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let b = json!({"metadata": {"labels": {"a": "2", "b": "1"}}, "spec": {}});
        let c = compare(&a, &b, ty);
        let s = |p: &Set| -> Vec<String> { p.paths().iter().map(|p| path_string(p)).collect() };
        assert_eq!(s(&c.modified), [".metadata.labels.a"]);
        assert_eq!(s(&c.added), [".metadata.labels.b"]);
        assert_eq!(s(&c.removed), [".spec.replicas"]);
    }
}

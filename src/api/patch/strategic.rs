//! Strategic merge patch (`application/strategic-merge-patch+json`), the server side of
//! apimachinery `pkg/util/strategicpatch` (`StrategicMergeMapPatch`).
//!
//! A JSON merge patch (RFC 7386) with list semantics taken from the schema:
//!
//! - Maps merge recursively; a `null` deletes the key.
//! - A list whose property has `x-kubernetes-patch-strategy: merge` and a merge key
//!   (containers by `name`, container ports by `containerPort`, …) merges item by item: patch
//!   items update the live item with the same key or are added. A merging list of scalars
//!   (`finalizers`) is a set union. Every other list is replaced.
//! - Directives: `$patch: replace` (the map or list is replaced by the patch), `$patch: delete`
//!   (in a map: it becomes empty; as a list item `{"name": "x", "$patch": "delete"}`: the live
//!   item with that key is removed), `$retainKeys: [..]` (keys of the live map that are not
//!   listed are cleared, used for union types such as volume sources and deployment strategies),
//!   `$deleteFromPrimitiveList/<field>: [..]` (scalars removed from a merging list) and
//!   `$setElementOrder/<field>: [..]` (the order of a merging list after the patch).
//! - Order of a merged list: items named by the patch keep the patch's (or
//!   `$setElementOrder`'s) relative order, live-only items keep theirs, and the two are
//!   interleaved by their live positions. kubectl's 3-way patches rely on this.
//!
//! Errors are returned as their Go texts; [`error_code`] maps them to the HTTP status
//! kube-apiserver answers with (`interpretStrategicMergePatchError`). Where the Go code would
//! store a directive verbatim (a directive inside a value with nothing to merge into, a deletion
//! list for a missing field), the value is instead applied to an empty one, which drops the
//! directives and nulls the typed decoder would also drop.

use super::{SchemaRef, Strategy};
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// `mergepatch.ErrBadJSONDoc`.
pub const ERR_BAD_JSON_DOC: &str = "invalid JSON document";
/// `mergepatch.ErrNoListOfLists`.
pub const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
/// `mergepatch.ErrBadPatchFormatForPrimitiveList`.
pub const ERR_BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
/// `mergepatch.ErrBadPatchFormatForRetainKeys`.
pub const ERR_BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
/// `mergepatch.ErrBadPatchFormatForSetElementOrderList`.
pub const ERR_BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";
/// `mergepatch.ErrPatchContentNotMatchRetainKeys`.
pub const ERR_NOT_MATCH_RETAIN_KEYS: &str = "patch content doesn't match retainKeys list";
/// `mergepatch.ErrUnsupportedStrategicMergePatchFormat`.
pub const ERR_UNSUPPORTED_FORMAT: &str = "strategic merge patch format is not supported";

/// Applies strategic merge patch `patch` to `original`, both JSON objects, with list semantics
/// from `schema` (the kind's definition).
pub fn apply(original: &Value, patch: &Value, schema: &SchemaRef) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err(ERR_BAD_JSON_DOC.into());
    };
    let original = match original {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => return Err(ERR_BAD_JSON_DOC.into()),
    };
    merge_map(original, patch.clone(), schema).map(Value::Object)
}

/// The HTTP status kube-apiserver answers an [`apply`] error with: 400 for malformed directives,
/// 422 for unsupported shapes, and 500 (a plain error) for the rest, such as a list item without
/// its merge key.
pub fn error_code(err: &str) -> u16 {
    match err {
        ERR_BAD_JSON_DOC
        | ERR_BAD_PRIMITIVE_LIST
        | ERR_BAD_RETAIN_KEYS
        | ERR_BAD_SET_ELEMENT_ORDER
        | ERR_UNSUPPORTED_FORMAT => 400,
        ERR_NO_LIST_OF_LISTS | ERR_NOT_MATCH_RETAIN_KEYS => 422,
        _ => 500,
    }
}

/// What the schema says about one field of a map.
struct FieldMeta<'a> {
    schema: SchemaRef<'a>,
    strategy: Strategy,
    merge_key: Option<&'a str>,
}

fn field_meta<'a>(schema: &SchemaRef<'a>, key: &str) -> FieldMeta<'a> {
    // Unknown fields have no metadata: maps merge, lists are replaced (Go errors out only when
    // both sides hold a map or list, which a typed live object never does).
    let field = schema
        .field(key)
        .unwrap_or_else(|| SchemaRef::unknown(schema.defs));
    let (strategy, _) = field.patch_strategy();
    FieldMeta {
        schema: field,
        strategy,
        merge_key: field.merge_key(),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: &SchemaRef,
) -> Result<Map<String, Value>, String> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some(REPLACE) => {
                patch.remove(DIRECTIVE);
                merge_map(Map::new(), patch, schema)
            }
            Some(DELETE) => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;
    for (k, patch_value) in patch {
        let (key, delete_list) = match k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(_) => (
                extract_key(&k, DELETE_FROM_PRIMITIVE_LIST, ERR_BAD_PRIMITIVE_LIST)?,
                true,
            ),
            None => (k, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let meta = field_meta(schema, &key);
        let Some(current) = original.get_mut(&key) else {
            if !delete_list {
                let v = fresh(patch_value, &meta)?;
                original.insert(key, v);
            }
            continue;
        };
        let merged = match (std::mem::take(current), patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                if meta.strategy == Strategy::Replace {
                    Value::Object(merge_map(Map::new(), p, &meta.schema)?)
                } else {
                    Value::Object(merge_map(o, p, &meta.schema)?)
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                if delete_list || meta.strategy == Strategy::Merge {
                    Value::Array(merge_slice(
                        o,
                        p,
                        &meta.schema.items(),
                        meta.merge_key,
                        delete_list,
                    )?)
                } else {
                    fresh(Value::Array(p), &meta)?
                }
            }
            (_, p) => fresh(p, &meta)?,
        };
        *current = merged;
    }
    Ok(original)
}

/// A patch value with no live value to merge into: applied to an empty value, so that its
/// directives are interpreted and its nulls dropped.
fn fresh(value: Value, meta: &FieldMeta) -> Result<Value, String> {
    match value {
        Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, &meta.schema)?)),
        Value::Array(items) => Ok(Value::Array(fresh_list(items, meta)?)),
        other => Ok(other),
    }
}

fn fresh_list(items: Vec<Value>, meta: &FieldMeta) -> Result<Vec<Value>, String> {
    let item_schema = meta.schema.items();
    if meta.strategy == Strategy::Merge {
        return merge_slice(Vec::new(), items, &item_schema, meta.merge_key, false);
    }
    items
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, &item_schema)?)),
            other => Ok(other),
        })
        .collect()
}

/// `$retainKeys`: live keys that are not listed are cleared; every key the patch sets must be
/// listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), String> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(ERR_BAD_RETAIN_KEYS.into());
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(ERR_BAD_RETAIN_KEYS.into());
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's list (if the patch has one) and orders the
/// result: the listed items in the directive's order, interleaved with live-only items.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: &SchemaRef,
) -> Result<(), String> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let order = patch.remove(&key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER, ERR_BAD_SET_ELEMENT_ORDER)?;
        let live = match original.get(&field) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
            None => None,
        };
        let patched = match patch.remove(&field) {
            Some(Value::Array(a)) => Some(a),
            Some(other) => return Err(bad_arg_type("[]interface {}", &other)),
            None => None,
        };
        let meta = field_meta(schema, &field);
        let mk = meta.merge_key;
        validate_set_element_order(patched.as_deref().unwrap_or(&[]), &order, mk)?;
        let live_order = live.clone().unwrap_or_default();
        let merged = match (live, patched) {
            (Some(l), None) => l,
            (None, Some(p)) => fresh_list(p, &meta)?,
            (Some(l), Some(p)) => {
                if meta.strategy == Strategy::Merge {
                    merge_slice(l, p, &meta.schema.items(), mk, false)?
                } else {
                    fresh_list(p, &meta)?
                }
            }
            (None, None) => continue,
        };
        let mk = if merged.iter().any(Value::is_object) {
            mk
        } else {
            None
        };
        let (listed, live_only) = partition(merged, &order, mk)?;
        let ordered = normalize_element_order(listed, live_only, &order, &live_order, mk)?;
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// The items of a `$setElementOrder` list must name the patch's items in the patch's order.
fn validate_set_element_order(
    patch: &[Value],
    order: &[Value],
    mk: Option<&str>,
) -> Result<(), String> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = match mk {
        Some(_) => {
            let mut kept = Vec::new();
            for v in patch {
                let Value::Object(m) = v else {
                    return Err(bad_arg_type("map[string]interface {}", v));
                };
                if m.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE) {
                    kept.push(v);
                }
            }
            kept
        }
        None => patch.iter().collect(),
    };
    let (mut pi, mut si) = (0, 0);
    while pi < items.len() && si < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(items[pi], &order[si], mk)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < items.len() && si >= order.len() {
        return Err(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        ));
    }
    Ok(())
}

fn merge_key_value_equal(l: &Value, r: &Value, mk: Option<&str>) -> Result<bool, String> {
    let Some(mk) = mk else {
        return Ok(json_eq(l, r));
    };
    let Value::Object(lm) = l else {
        return Err(bad_arg_type("map[string]interface {}", l));
    };
    let Value::Object(rm) = r else {
        return Err(bad_arg_type("map[string]interface {}", r));
    };
    let lk = lm.get(mk).ok_or_else(|| no_merge_key(lm, mk))?;
    let rk = rm.get(mk).ok_or_else(|| no_merge_key(rm, mk))?;
    Ok(json_eq(lk, rk))
}

/// Merges a patch list into a live list with `merge` strategy.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    item_schema: &SchemaRef,
    merge_key: Option<&str>,
    delete_list: bool,
) -> Result<Vec<Value>, String> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if !element_kind_is_object(&original, &patch)? {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| json_eq(d, v)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| json_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (listed, live_only) = partition(merged, &patch, None)?;
        return normalize_element_order(listed, live_only, &patch, &original, None);
    }
    let Some(mk) = merge_key else {
        return Err("cannot merge lists without merge key for type struct".into());
    };
    let (original, patch) = split_special_items(original, patch, mk, item_schema)?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(p) = item else {
            return Err(bad_arg_type("map[string]interface {}", item));
        };
        let key = p.get(mk).ok_or_else(|| no_merge_key(p, mk))?;
        match find_by_key(&merged, mk, key)? {
            Some(i) => {
                let Value::Object(live) = std::mem::take(&mut merged[i]) else {
                    unreachable!("find_by_key only matches maps")
                };
                merged[i] = Value::Object(merge_map(live, p.clone(), item_schema)?);
            }
            None => merged.push(Value::Object(merge_map(
                Map::new(),
                p.clone(),
                item_schema,
            )?)),
        }
    }
    let (listed, live_only) = partition(merged, &patch, Some(mk))?;
    normalize_element_order(listed, live_only, &patch, &original, Some(mk))
}

/// Handles the list items that carry `$patch`: `delete` removes the live items with the item's
/// key, `replace` makes the rest of the patch list the whole list. Returns the live list and the
/// patch items left to merge.
fn split_special_items(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    mk: &str,
    item_schema: &SchemaRef,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = &item else {
            return Err(bad_arg_type("map[string]interface {}", &item));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => {
                // Each delete item removes one live item, so duplicates can be trimmed one by
                // one (`deleteMatchingEntry`).
                let key = m.get(mk).ok_or_else(|| no_merge_key(m, mk))?;
                if let Some(i) = find_by_key(&original, mk, key)? {
                    original.remove(i);
                }
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => return Err("merging lists cannot yet be specified in the patch".into()),
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        let items = rest
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, item_schema)?)),
                other => Ok(other),
            })
            .collect::<Result<Vec<_>, String>>()?;
        return Ok((items, Vec::new()));
    }
    Ok((original, rest))
}

/// The position of the map with `mk == key` (`findMapInSliceBasedOnKeyValue`).
fn find_by_key(list: &[Value], mk: &str, key: &Value) -> Result<Option<usize>, String> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(format!("value for key {i} is not a map"));
        };
        if m.get(mk).is_some_and(|k| json_eq(k, key)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Whether the items of the lists are maps (true) or scalars (false). Lists of lists and mixed
/// lists are errors, as in `sliceElementType`.
fn element_kind_is_object(a: &[Value], b: &[Value]) -> Result<bool, String> {
    let mut kind: Option<u8> = None;
    for v in a.iter().chain(b.iter()) {
        let k = match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => return Err(ERR_NO_LIST_OF_LISTS.into()),
            Value::Object(_) => 5,
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(format!(
                    "list element types are not identical: {}",
                    go_fmt(&Value::Array(vec![
                        Value::Array(a.to_vec()),
                        Value::Array(b.to_vec())
                    ]))
                ))
            }
            Some(_) => {}
        }
    }
    Ok(kind == Some(5))
}

/// The merge-key value of a map item, or a scalar item itself.
fn key_of<'v>(item: &'v Value, mk: Option<&str>) -> Option<&'v Value> {
    match mk {
        Some(mk) => item.as_object().and_then(|m| m.get(mk)),
        None => Some(item),
    }
}

fn index_of(list: &[Value], item: &Value, mk: Option<&str>) -> Option<usize> {
    let key = key_of(item, mk)?;
    list.iter()
        .position(|v| key_of(v, mk).is_some_and(|k| json_eq(k, key)))
}

/// Splits `merged` into the items named by `by` and the others, keeping their order.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    mk: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut listed = Vec::new();
    let mut others = Vec::new();
    for v in merged {
        let found = match mk {
            None => by.iter().any(|b| json_eq(b, &v)),
            Some(mk) => {
                let Value::Object(m) = &v else {
                    return Err(bad_arg_type("map[string]interface {}", &v));
                };
                let key = m.get(mk).ok_or_else(|| no_merge_key(m, mk))?;
                find_by_key(by, mk, key)?.is_some()
            }
        };
        if found {
            listed.push(v);
        } else {
            others.push(v);
        }
    }
    Ok((listed, others))
}

/// Sorts `listed` by `listed_order` and `live_only` by `live_order`, then interleaves them by
/// live position (`normalizeElementOrder`).
fn normalize_element_order(
    listed: Vec<Value>,
    live_only: Vec<Value>,
    listed_order: &[Value],
    live_order: &[Value],
    mk: Option<&str>,
) -> Result<Vec<Value>, String> {
    let listed = normalize_slice_order(listed, listed_order, mk)?;
    let live_only = normalize_slice_order(live_only, live_order, mk)?;
    Ok(merge_sorted(live_only, listed, live_order, mk))
}

/// Stable sort of `items` by their position in `order`; items of a map list that carry
/// `$patch: delete` go last (`normalizeSliceOrder`).
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    mk: Option<&str>,
) -> Result<Vec<Value>, String> {
    let mut deletes = Vec::new();
    let mut items = match mk {
        Some(mk) => {
            for v in order {
                let Value::Object(m) = v else {
                    return Err(bad_arg_type("map[string]interface {}", v));
                };
                if !m.contains_key(mk) {
                    return Err(no_merge_key(m, mk));
                }
            }
            let mut kept = Vec::with_capacity(items.len());
            for v in items {
                let Value::Object(m) = &v else {
                    return Err(bad_arg_type("map[string]interface {}", &v));
                };
                if !m.contains_key(mk) {
                    return Err(no_merge_key(m, mk));
                }
                if m.get(DIRECTIVE).and_then(Value::as_str) == Some(DELETE) {
                    deletes.push(v);
                } else {
                    kept.push(v);
                }
            }
            kept
        }
        None => items,
    };
    // Items missing from `order` sort first, as Go's comparator puts them.
    items.sort_by_key(|v| index_of(order, v, mk).map_or(0, |i| i + 1));
    items.extend(deletes);
    Ok(items)
}

/// Merges two sorted lists: a `left` item goes first only when both items have live positions
/// and the left one's is smaller (`mergeSortedSlice`).
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    live_order: &[Value],
    mk: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_of(live_order, l, mk), index_of(live_order, r, mk)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// `extractKey`: `$prefix/<field>` → `<field>`.
fn extract_key(s: &str, prefix: &str, err: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => Err(err.into()),
    }
}

/// JSON equality that treats `1` and `1.0` alike (Go decodes both sides to the same type).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn no_merge_key(m: &Map<String, Value>, mk: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {mk}",
        go_fmt(&Value::Object(m.clone()))
    )
}

fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> String {
    format!(
        "unknown patch type: {} in map: {}",
        go_fmt(directive),
        go_fmt(&Value::Object(m.clone()))
    )
}

fn bad_arg_type(expected: &str, actual: &Value) -> String {
    let actual = match actual {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    };
    format!("expected a {expected}, but received a {actual}")
}

/// Go's `%v` of a decoded JSON value: `map[a:1 b:[x y]]` (keys sorted), `<nil>` for null.
pub fn go_fmt(v: &Value) -> String {
    let mut out = String::new();
    write_go(v, &mut out);
    out
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&go_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(&m[k.as_str()], out);
            }
            out.push(']');
        }
    }
}

/// `%v` of a float64: shortest representation, exponent form from 1e21.
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// The `mergeItem` test type of apimachinery's strategicpatch tests, as OpenAPI.
    fn merge_item_defs() -> BTreeMap<String, Value> {
        serde_json::from_value(json!({
            "mergeItem": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "other": {"type": "string"},
                    "mergingList": {
                        "type": "array",
                        "items": {"allOf": [{"$ref": "#/components/schemas/mergeItem"}]},
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "nonMergingList": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/mergeItem"}
                    },
                    "mergingIntList": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
                    "mergeItemPtr": {
                        "allOf": [{"$ref": "#/components/schemas/mergeItem"}],
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
                    "replacingItem": {"type": "object", "x-kubernetes-patch-strategy": "replace"},
                    "retainKeysMap": {
                        "allOf": [{"$ref": "#/components/schemas/retainKeysMergeItem"}],
                        "x-kubernetes-patch-strategy": "retainKeys"
                    },
                    "retainKeysMergingList": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/mergeItem"},
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge,retainKeys"
                    }
                }
            },
            "retainKeysMergeItem": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "other": {"type": "string"},
                    "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
                    "mergingIntList": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "mergingList": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/mergeItem"},
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "nonMergingList": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/mergeItem"}
                    }
                }
            }
        }))
        .unwrap()
    }

    fn yaml(s: &str) -> Value {
        let v: Value = serde_norway::from_str(s).expect("test YAML");
        if v.is_null() {
            json!({})
        } else {
            v
        }
    }

    /// Applies `patch` to `current` with the mergeItem schema (YAML inputs).
    fn merge_item(current: &str, patch: &str) -> Result<Value, String> {
        let defs = merge_item_defs();
        let schema = SchemaRef::definition(&defs, "mergeItem").unwrap();
        apply(&yaml(current), &yaml(patch), &schema)
    }

    #[track_caller]
    fn check(current: &str, patch: &str, want: &str) {
        let got = merge_item(current, patch).unwrap_or_else(|e| panic!("patch failed: {e}"));
        assert_eq!(
            got,
            yaml(want),
            "\ncurrent:{current}\npatch:{patch}\ngot: {got}"
        );
    }

    // Cases from apimachinery strategicpatch patch_test.go (current + patch → result).

    #[test]
    fn maps_merge_and_null_deletes() {
        check(
            "name: 1\nother: a",
            "value: 1",
            "name: 1\nvalue: 1\nother: a",
        );
        check(
            "name: 1\nother: a",
            "name: null\nvalue: 1",
            "value: 1\nother: a",
        );
        check(
            "simpleMap: {key1: 1, key2: 1, other: a}",
            "simpleMap: {key2: null}",
            "simpleMap: {key1: 1, other: a}",
        );
        check(
            "name: a\nother: a",
            "name: 1\nvalue: 1\nother: null",
            "name: 1\nvalue: 1",
        );
        check("name: 1", "{}", "name: 1");
    }

    #[test]
    fn non_merging_lists_are_replaced() {
        check(
            "nonMergingIntList: [1, 4]",
            "nonMergingIntList: [2, 3]",
            "nonMergingIntList: [2, 3]",
        );
        check(
            "nonMergingList: [{name: 1, value: a}, {name: 2}]",
            "nonMergingList: [{name: 3}]",
            "nonMergingList: [{name: 3}]",
        );
    }

    #[test]
    fn merging_lists_merge_by_key_and_as_sets() {
        check(
            "mergingIntList: [1, 2]",
            "mergingIntList: [2, 3]",
            "mergingIntList: [1, 2, 3]",
        );
        check(
            "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]",
            "$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}]\nmergingList: [{name: 4, value: 4}, {name: 3, value: 3}]",
            "mergingList: [{name: 4, value: 4}, {name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
        );
        check(
            "mergingList: [{name: 1, other: a}, {name: 2, value: 3, other: b}]",
            "$setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]\nmergingList: [{name: 2, value: 2}, {name: 3, value: 3}]",
            "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
        );
    }

    #[test]
    fn patch_order_is_preserved() {
        check(
            "mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]",
            "mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, other: x}]",
            "mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, value: b, other: x}]",
        );
        check(
            "mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]",
            "mergingList: [{name: 3, value: c}, {name: 1, value: a}]",
            "mergingList: [{name: 2, value: b}, {name: 3, value: c}, {name: 1, value: a}]",
        );
        check(
            "mergingIntList: [1, 2, 3]",
            "mergingIntList: [3, 1, 2]",
            "mergingIntList: [3, 1, 2]",
        );
        check(
            "mergingIntList: [1, 2, 3]",
            "mergingIntList: [3, 1]",
            "mergingIntList: [2, 3, 1]",
        );
    }

    #[test]
    fn patch_directives_in_lists_and_maps() {
        check(
            "mergingList: [{name: 1, other: a}, {name: 2, other: b}]",
            "mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]",
            "mergingList: []",
        );
        check(
            "mergingList: []",
            "mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]",
            "mergingList: []",
        );
        check(
            "mergingList: [{name: 1}, {name: 2}]",
            "mergingList: [{$patch: replace}]",
            "mergingList: []",
        );
        check(
            "mergingList: [{name: 1, value: a}, {name: 2}]",
            "mergingList: [{$patch: replace}, {name: 3, value: c}]",
            "mergingList: [{name: 3, value: c}]",
        );
        check("name: 1\nvalue: 1", "$patch: replace", "{}");
        check("name: 1\nvalue: 1", "other: a\n$patch: replace", "other: a");
        check(
            "simpleMap: {key1: 1, key2: 1}",
            "simpleMap: {$patch: delete}",
            "simpleMap: {}",
        );
        // One delete item removes one of several duplicates.
        check(
            "mergingList: [{name: 1}, {name: 1}, {name: 2, value: a}, {name: 3}, {name: 3}]",
            "mergingList: [{name: 1, $patch: delete}, {name: 3, $patch: delete}]",
            "mergingList: [{name: 1}, {name: 2, value: a}, {name: 3}]",
        );
        check(
            "mergingList: [{name: b, value: b}, {name: a, value: a}]\nmergeItemPtr: [{name: c, value: c}, {name: d, value: d}]",
            "$setElementOrder/mergingList: [{name: b}]\n$setElementOrder/mergeItemPtr: [{name: d}, {name: c}]\nmergingList: [{$patch: delete, name: a}]",
            "mergingList: [{name: b, value: b}]\nmergeItemPtr: [{name: d, value: d}, {name: c, value: c}]",
        );
    }

    #[test]
    fn delete_from_primitive_list() {
        check(
            "mergingIntList: [1, 2, 3, 4]",
            "$setElementOrder/mergingIntList: [1, 2]\n$deleteFromPrimitiveList/mergingIntList: [3]",
            "mergingIntList: [1, 2, 4]",
        );
        check(
            "mergingIntList: [1, 2, 3, 3, 4]",
            "$setElementOrder/mergingIntList: [1, 2]\n$deleteFromPrimitiveList/mergingIntList: [3]",
            "mergingIntList: [1, 2, 4]",
        );
        check(
            "mergingIntList: [1, 2, 3]",
            "$setElementOrder/mergingIntList: [1, 2, 4]\n$deleteFromPrimitiveList/mergingIntList: [3]\nmergingIntList: [4]",
            "mergingIntList: [1, 2, 4]",
        );
        // Nothing to delete from: nothing is added either.
        check(
            "name: a",
            "$deleteFromPrimitiveList/mergingIntList: [3]",
            "name: a",
        );
    }

    #[test]
    fn set_element_order() {
        check(
            "mergingList: [{name: 1}, {name: 3}]",
            "$setElementOrder/mergingList: [{name: 3}, {name: 2}, {name: 1}]\nmergingList: [{name: 3, value: 3}, {name: 1, value: 1}]",
            "mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]",
        );
        check(
            "mergingIntList: [1, 3]",
            "$setElementOrder/mergingIntList: [3, 2, 1]",
            "mergingIntList: [3, 1]",
        );
        let err = merge_item(
            "mergingList: [{name: 1}, {name: 3}, {name: 2}]",
            "$setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}]\nmergingList: [{name: 3, value: 3}, {name: 1, value: 1}]",
        )
        .unwrap_err();
        assert!(err.contains("doesn't match"), "{err}");
        assert_eq!(error_code(&err), 500);
        let err = merge_item(
            "mergingIntList: [1, 3, 2]",
            "$setElementOrder/mergingIntList: [1, 2, 3]\nmergingIntList: [3, 1]",
        )
        .unwrap_err();
        assert!(err.contains("doesn't match"), "{err}");
    }

    #[test]
    fn retain_keys() {
        check(
            "retainKeysMap: {name: foo, mergingIntList: [1, 2, 3]}",
            "retainKeysMap: {$retainKeys: [name], mergingIntList: null}",
            "retainKeysMap: {name: foo}",
        );
        check(
            "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: c}]}",
            "retainKeysMap: {$retainKeys: [mergingList, name, value], '$setElementOrder/mergingList': [{name: a}, {name: b}], value: bar}",
            "retainKeysMap: {name: foo, value: bar, mergingList: [{name: a}, {name: b}, {name: c}]}",
        );
        check(
            "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: x}]}",
            "retainKeysMap: {$retainKeys: [mergingList, name], '$setElementOrder/mergingList': [{name: a}, {name: b}, {name: c}], mergingList: [{name: c}]}",
            "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: c}, {name: x}]}",
        );
        check(
            "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: b}, {name: x}]}",
            "retainKeysMap: {$retainKeys: [mergingList, name], '$setElementOrder/mergingList': [{name: a}], mergingList: [{name: b, $patch: delete}]}",
            "retainKeysMap: {name: foo, mergingList: [{name: a}, {name: x}]}",
        );
        check(
            "retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]",
            "$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]\nretainKeysMergingList: [{$retainKeys: [name, value], name: foo}]",
            "retainKeysMergingList: [{name: bar}, {name: foo, value: a}]",
        );
        check(
            "retainKeysMergingList: [{name: bar}, {name: foo, value: a, other: x}]",
            "$setElementOrder/retainKeysMergingList: [{name: bar}, {name: foo}]\nretainKeysMergingList: [{$retainKeys: [name], name: foo, value: null}]",
            "retainKeysMergingList: [{name: bar}, {name: foo}]",
        );
        // Without the directive, a retainKeys field merges normally.
        check(
            "retainKeysMap: {name: foo, value: a}",
            "retainKeysMap: {value: b}",
            "retainKeysMap: {name: foo, value: b}",
        );
        let err = merge_item(
            "retainKeysMap: {name: foo}",
            "retainKeysMap: {$retainKeys: [name], value: x}",
        )
        .unwrap_err();
        assert_eq!(err, ERR_BAD_RETAIN_KEYS);
        assert_eq!(error_code(&err), 400);
    }

    #[test]
    fn replace_strategy_replaces_maps() {
        check(
            "replacingItem: {a: 1, b: 2}",
            "replacingItem: {c: 3}",
            "replacingItem: {c: 3}",
        );
    }

    #[test]
    fn errors() {
        let err = merge_item(
            "mergingList: [{name: 1, value: a}]",
            "mergingList: [{value: b}]",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "map: map[value:b] does not contain declared merge key: name"
        );
        assert_eq!(error_code(&err), 500);
        let err = merge_item(
            "mergingList: [{name: 1}]",
            "mergingList: [{name: 1, $patch: merge}]",
        )
        .unwrap_err();
        assert_eq!(err, "merging lists cannot yet be specified in the patch");
        let err = merge_item("name: 1", "$patch: bogus").unwrap_err();
        assert_eq!(err, "unknown patch type: bogus in map: map[$patch:bogus]");
        let err = merge_item("mergingIntList: [1]", "mergingIntList: [[2]]").unwrap_err();
        assert_eq!(err, ERR_NO_LIST_OF_LISTS);
        assert_eq!(error_code(&err), 422);
        let err = merge_item("name: 1", "$setElementOrder: [1]").unwrap_err();
        assert_eq!(err, ERR_BAD_SET_ELEMENT_ORDER);
        let err = merge_item("name: 1", "$deleteFromPrimitiveList: [1]").unwrap_err();
        assert_eq!(err, ERR_BAD_PRIMITIVE_LIST);
        let defs = merge_item_defs();
        let schema = SchemaRef::definition(&defs, "mergeItem").unwrap();
        assert_eq!(
            apply(&json!({}), &json!([1]), &schema).unwrap_err(),
            ERR_BAD_JSON_DOC
        );
    }

    #[test]
    fn new_values_lose_directives_and_nulls() {
        check(
            "name: 1",
            "mergingList: [{name: a, value: null}, {name: b, $patch: delete}]\nsimpleMap: {a: x, b: null}",
            "name: 1\nmergingList: [{name: a}]\nsimpleMap: {a: x}",
        );
    }

    #[test]
    fn go_formatting() {
        assert_eq!(
            go_fmt(&json!({"b": [1, "x", null], "a": {"c": true}, "f": 1.5})),
            "map[a:map[c:true] b:[1 x <nil>] f:1.5]"
        );
        assert_eq!(go_fmt(&json!(1e21)), "1e+21");
    }

    // Kubernetes objects with the real schemas.

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "finalizers": ["a/x", "b/y", "c/z"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "app:1",
                                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}]
                            },
                            {"name": "sidecar", "image": "side:1"}
                        ],
                        "volumes": [
                            {"name": "data", "emptyDir": {}},
                            {"name": "cfg", "configMap": {"name": "cfg"}}
                        ]
                    }
                }
            }
        })
    }

    fn patch_deployment(patch: Value) -> Result<Value, String> {
        let schema = SchemaRef::for_kind("apps", "v1", "Deployment").unwrap();
        apply(&deployment(), &patch, &schema)
    }

    #[test]
    fn containers_merge_by_name() {
        let got = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "side:2"},
            {"name": "new", "image": "new:1"}
        ]}}}}))
        .unwrap();
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 3);
        assert_eq!(containers[0]["name"], "app");
        assert_eq!(containers[0]["image"], "app:1");
        assert_eq!(containers[1], json!({"name": "sidecar", "image": "side:2"}));
        assert_eq!(containers[2], json!({"name": "new", "image": "new:1"}));
        assert_eq!(got["spec"]["replicas"], 2);
    }

    #[test]
    fn env_merges_by_name_and_ports_by_container_port() {
        let got = patch_deployment(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{
                "name": "app",
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                "$setElementOrder/ports": [{"containerPort": 80}],
                "ports": [{"containerPort": 443, "$patch": "delete"}]
            }]
        }}}}))
        .unwrap();
        let app = &got["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            app["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(
            app["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        assert_eq!(app["image"], "app:1");
    }

    #[test]
    fn volumes_retain_keys() {
        // kubectl apply switching a volume from emptyDir to a secret.
        let got = patch_deployment(json!({"spec": {"template": {"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}],
            "volumes": [{"$retainKeys": ["name", "secret"], "name": "data", "secret": {"secretName": "s"}}]
        }}}}))
        .unwrap();
        assert_eq!(
            got["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "data", "secret": {"secretName": "s"}}, {"name": "cfg", "configMap": {"name": "cfg"}}])
        );
        // The strategy union: Recreate drops rollingUpdate.
        let got = patch_deployment(json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null
        }}}))
        .unwrap();
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn finalizers_delete_from_primitive_list() {
        let got = patch_deployment(json!({"metadata": {
            "$setElementOrder/finalizers": ["a/x", "d/w"],
            "$deleteFromPrimitiveList/finalizers": ["b/y"],
            "finalizers": ["d/w"]
        }}))
        .unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["a/x", "d/w", "c/z"]));
        // Without $setElementOrder, items named by the patch keep the patch's order and come
        // before live-only items that sit after them.
        let got = patch_deployment(json!({"metadata": {"finalizers": ["a/x", "e/v"]}})).unwrap();
        assert_eq!(
            got["metadata"]["finalizers"],
            json!(["a/x", "e/v", "b/y", "c/z"])
        );
    }

    #[test]
    fn kubectl_set_image_patch() {
        let got = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:2"}
        ]}}}}))
        .unwrap();
        let c = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "app:2");
        assert_eq!(c[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(c[1]["image"], "side:1");
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let schema = SchemaRef::for_kind("", "v1", "Pod").unwrap();
        let pod = json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"]}], "tolerations": [{"key": "x"}]}});
        let got = apply(
            &pod,
            &json!({"spec": {"containers": [{"name": "c", "args": ["z"]}], "tolerations": [{"key": "y"}]}}),
            &schema,
        )
        .unwrap();
        assert_eq!(got["spec"]["containers"][0]["args"], json!(["z"]));
        assert_eq!(got["spec"]["tolerations"], json!([{"key": "y"}]));
    }
}

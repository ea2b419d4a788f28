//! managedFields: decoding and encoding the entries, the Update and Apply operations of
//! structured-merge-diff's `merge.Updater`, and the wrappers kube-apiserver puts around them
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal`): strip-meta, the `current-operation`
//! updater that merges a manager's successive updates, the cap of 10 update managers
//! (`ancient-changes`), `before-first-apply`, and the last-applied annotation sync.

use super::fieldpath::{go_quote, path_string, values_equal, Path, PathElement, Set};
use super::schema::{Schema, Ty};
use super::typed::{self, ensure_named_fields_are_members as enfam};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// At most this many Update entries are kept; older ones merge into `ancient-changes`.
pub const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";
const CURRENT_OPERATION: &str = "current-operation";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields of one manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedSet {
    pub set: Set,
    pub api_version: String,
    pub applied: bool,
}

/// Managers by identifier (the JSON of their entry without fields and time), with the time of
/// each one's last change.
#[derive(Clone, Debug, Default)]
pub struct Managed {
    pub fields: BTreeMap<String, VersionedSet>,
    pub times: BTreeMap<String, Option<String>>,
}

/// `BuildManagerIdentifier`: `{"manager":"m","operation":"Update","apiVersion":"apps/v1"}`;
/// appliers have no apiVersion, so they keep one identity across versions.
pub fn manager_identifier(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: &str,
) -> String {
    let mut m = Map::new();
    if !manager.is_empty() {
        m.insert("manager".into(), Value::String(manager.into()));
    }
    if !operation.is_empty() {
        m.insert("operation".into(), Value::String(operation.into()));
    }
    if operation != "Apply" && !api_version.is_empty() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    if !subresource.is_empty() {
        m.insert("subresource".into(), Value::String(subresource.into()));
    }
    Value::Object(m).to_string()
}

fn identifier_fields(id: &str) -> Map<String, Value> {
    match serde_json::from_str(id) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// How a manager is named in conflict messages (`printManager`): `"m"` for appliers,
/// `"m" using apps/v1` for updaters, with `with subresource "status"` when there is one.
pub fn print_manager(id: &str) -> String {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(id) else {
        return go_quote(id);
    };
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    let mut out = go_quote(s("manager"));
    if !s("subresource").is_empty() {
        out = format!("{out} with subresource {}", go_quote(s("subresource")));
    }
    if s("operation") == "Update" {
        out = match m.get("time").and_then(Value::as_str) {
            Some(t) => format!("{out} using {} at {t}", s("apiVersion")),
            None => format!("{out} using {}", s("apiVersion")),
        };
    }
    out
}

/// Decodes `metadata.managedFields` (`DecodeManagedFields`).
pub fn decode_managed_fields(entries: &Value) -> Result<Managed, String> {
    let mut out = Managed::default();
    let list = match entries {
        Value::Null => return Ok(out),
        Value::Array(a) => a,
        _ => return Err("managedFields must be a list".into()),
    };
    for (i, e) in list.iter().enumerate() {
        let Value::Object(e) = e else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        let operation = s("operation");
        if operation != "Apply" && operation != "Update" {
            return Err("operation must be `Apply` or `Update`".into());
        }
        if s("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match s("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {} in managed fields entry {i}",
                    go_quote(other)
                ))
            }
        }
        let id = manager_identifier(s("manager"), operation, s("apiVersion"), s("subresource"));
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(v) => {
                Set::from_fields_v1(v).map_err(|err| format!("error decoding set: {err}"))?
            }
        };
        out.fields.insert(
            id.clone(),
            VersionedSet {
                set,
                api_version: s("apiVersion").to_string(),
                applied: operation == "Apply",
            },
        );
        out.times.insert(
            id,
            e.get("time").and_then(Value::as_str).map(str::to_string),
        );
    }
    Ok(out)
}

/// Encodes the managers as `metadata.managedFields` entries, sorted like kube-apiserver sorts
/// them (operation, time, manager, apiVersion, subresource). None when there are none.
pub fn encode_managed_fields(managed: &Managed) -> Option<Value> {
    if managed.fields.is_empty() {
        return None;
    }
    let mut entries: Vec<Map<String, Value>> = Vec::new();
    for (id, vs) in &managed.fields {
        let idf = identifier_fields(id);
        let s = |k: &str| idf.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let operation = if vs.applied {
            "Apply".to_string()
        } else {
            s("operation")
        };
        let mut e = Map::new();
        if !s("manager").is_empty() {
            e.insert("manager".into(), Value::String(s("manager")));
        }
        if !operation.is_empty() {
            e.insert("operation".into(), Value::String(operation));
        }
        if !vs.api_version.is_empty() {
            e.insert("apiVersion".into(), Value::String(vs.api_version.clone()));
        }
        if let Some(Some(t)) = managed.times.get(id) {
            e.insert("time".into(), Value::String(t.clone()));
        }
        e.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        e.insert("fieldsV1".into(), vs.set.to_fields_v1());
        if !s("subresource").is_empty() {
            e.insert("subresource".into(), Value::String(s("subresource")));
        }
        entries.push(e);
    }
    let key = |e: &Map<String, Value>| {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let secs = e
            .get("time")
            .and_then(Value::as_str)
            .and_then(unix_seconds)
            .unwrap_or(0);
        (
            s("operation"),
            secs,
            s("manager"),
            s("apiVersion"),
            s("subresource"),
        )
    };
    entries.sort_by_key(key);
    Some(Value::Array(
        entries.into_iter().map(Value::Object).collect(),
    ))
}

/// Seconds since the epoch of an RFC 3339 time (`2024-10-02T17:19:44Z`, offsets allowed).
pub fn unix_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = t.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = r.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + s - offset)
}

/// Fields never tracked (`stripMetaManager`).
fn strip_set() -> Set {
    let f = |p: &[&str]| -> Path { p.iter().map(|s| PathElement::field(*s)).collect() };
    Set::from_paths([
        f(&["apiVersion"]),
        f(&["kind"]),
        f(&["metadata"]),
        f(&["metadata", "name"]),
        f(&["metadata", "namespace"]),
        f(&["metadata", "creationTimestamp"]),
        f(&["metadata", "selfLink"]),
        f(&["metadata", "uid"]),
        f(&["metadata", "clusterName"]),
        f(&["metadata", "generation"]),
        f(&["metadata", "managedFields"]),
        f(&["metadata", "resourceVersion"]),
    ])
}

fn strip_fields(fields: &mut BTreeMap<String, VersionedSet>, manager: &str) {
    if let Some(vs) = fields.get_mut(manager) {
        vs.set = vs.set.difference(&strip_set());
        if vs.set.is_empty() {
            fields.remove(manager);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// merge.Updater
// ---------------------------------------------------------------------------------------------

/// One field another manager owns and the applier would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager's identifier (JSON).
    pub manager: String,
    pub path: Path,
}

struct Updater<'s> {
    ty: Ty<'s>,
    version: String,
    ignored: Set,
}

impl Updater<'_> {
    /// Removes the fields that `new` changes from every manager but `workflow`; without
    /// `force`, changes to fields others own are conflicts instead.
    fn update(
        &self,
        old: &Value,
        new: &Value,
        managers: &mut BTreeMap<String, VersionedSet>,
        workflow: &str,
        force: bool,
    ) -> Result<typed::Comparison, Vec<Conflict>> {
        let compare = typed::compare(old, new, self.ty).exclude(&self.ignored);
        let changed = compare.modified.union(&compare.added);
        let mut conflicts: Vec<(String, Set)> = Vec::new();
        for (m, vs) in managers.iter() {
            if m == workflow {
                continue;
            }
            let c = vs.set.intersection(&changed);
            if !c.is_empty() {
                conflicts.push((m.clone(), c));
            }
        }
        if !force && !conflicts.is_empty() {
            let mut out = Vec::new();
            for (m, set) in conflicts {
                for path in set.paths() {
                    out.push(Conflict {
                        manager: m.clone(),
                        path,
                    });
                }
            }
            return Err(out);
        }
        for (m, c) in &conflicts {
            if let Some(vs) = managers.get_mut(m) {
                vs.set = vs.set.difference(c);
            }
        }
        if !compare.removed.is_empty() {
            for (m, vs) in managers.iter_mut() {
                if m != workflow {
                    vs.set = vs.set.difference(&compare.removed);
                }
            }
        }
        managers.retain(|_, vs| !vs.set.is_empty());
        Ok(compare)
    }

    /// `Updater.Update`: `manager` gains what changed between `live` and `new`.
    fn update_op(
        &self,
        live: &Value,
        new: &Value,
        managers: &mut BTreeMap<String, VersionedSet>,
        manager: &str,
    ) {
        let compare = match self.update(live, new, managers, manager, true) {
            Ok(c) => c,
            Err(_) => unreachable!("forced updates do not conflict"),
        };
        let prev = managers
            .get(manager)
            .map(|vs| vs.set.clone())
            .unwrap_or_default();
        let set = prev
            .union(&compare.modified)
            .union(&compare.added)
            .difference(&compare.removed)
            .recursive_difference(&self.ignored);
        if set.is_empty() {
            managers.remove(manager);
        } else {
            managers.insert(
                manager.to_string(),
                VersionedSet {
                    set,
                    api_version: self.version.clone(),
                    applied: false,
                },
            );
        }
    }

    /// `Updater.Apply`: merges `config` into `live`, gives `manager` exactly the fields of
    /// `config`, and removes what it applied before but no longer does (unless someone else
    /// owns it). Returns the new object, or None when it equals `live`.
    fn apply_op(
        &self,
        live: &Value,
        config: &Value,
        config_set: Set,
        managers: &mut BTreeMap<String, VersionedSet>,
        manager: &str,
        force: bool,
    ) -> Result<Option<Value>, Vec<Conflict>> {
        let merged = typed::merge(Some(live), Some(config), self.ty).unwrap_or(Value::Null);
        let last_set = managers.get(manager).cloned();
        let set = config_set.recursive_difference(&self.ignored);
        managers.insert(
            manager.to_string(),
            VersionedSet {
                set,
                api_version: self.version.clone(),
                applied: true,
            },
        );
        let new = self.prune(merged, managers, last_set.as_ref());
        self.update(live, &new, managers, manager, force)?;
        if values_equal(live, &new) {
            return Ok(None);
        }
        Ok(Some(new))
    }

    fn field_set(&self, v: &Value) -> Set {
        let s = typed::to_field_set(v, self.ty, false).unwrap_or_default();
        enfam(&s, self.ty)
    }

    fn remove(&self, v: &Value, set: &Set) -> Value {
        typed::remove_items(v, set, self.ty).unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn prune(
        &self,
        merged: Value,
        managers: &BTreeMap<String, VersionedSet>,
        last: Option<&VersionedSet>,
    ) -> Value {
        let Some(last) = last.filter(|l| !l.set.is_empty()) else {
            return merged;
        };
        let last_e = enfam(&last.set, self.ty);
        let pruned = self.remove(&merged, &last_e);
        // Add back what any manager (the applier's new configuration included) owns.
        let mut managed = Set::new();
        for vs in managers.values() {
            managed = managed.union(&vs.set);
        }
        let merged_set = self.field_set(&merged);
        let pruned_set = self.field_set(&pruned);
        let keep = pruned_set.union(&enfam(&managed, self.ty));
        let pruned = self.remove(&merged, &merged_set.difference(&keep));
        // Add back what the applier did not own before (dangling items).
        let pruned_set = self.field_set(&pruned);
        let gone = merged_set.difference(&pruned_set).intersection(&last_e);
        self.remove(&merged, &gone)
    }
}

/// Merges the oldest update managers into `ancient-changes` buckets (one per apiVersion) until
/// at most `max` remain (`capManagersManager`).
fn cap_update_managers(managed: &mut Managed, max: usize) {
    let mut updaters: Vec<String> = managed
        .fields
        .iter()
        .filter(|(_, vs)| !vs.applied)
        .map(|(id, _)| id.clone())
        .collect();
    if updaters.len() <= max {
        return;
    }
    let secs = |id: &String| {
        managed
            .times
            .get(id)
            .and_then(|t| t.as_deref())
            .and_then(unix_seconds)
            .unwrap_or(0)
    };
    updaters.sort_by(|a, b| secs(a).cmp(&secs(b)).then_with(|| a.cmp(b)));
    let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
    let mut length = updaters.len();
    for manager in &updaters {
        if length <= max {
            break;
        }
        let Some(vs) = managed.fields.get(manager).cloned() else {
            continue;
        };
        let time = managed.times.get(manager).cloned().flatten();
        let bucket = manager_identifier(ANCIENT_CHANGES, "Update", &vs.api_version, "");
        match first_of_version.get(&vs.api_version) {
            Some(first) => {
                if !managed.fields.contains_key(&bucket) {
                    if let Some(s) = managed.fields.remove(first) {
                        managed.fields.insert(bucket.clone(), s);
                    }
                }
                let merged = match managed.fields.get(&bucket) {
                    Some(b) => vs.set.union(&b.set),
                    None => vs.set.clone(),
                };
                managed.fields.insert(
                    bucket.clone(),
                    VersionedSet {
                        set: merged,
                        api_version: vs.api_version.clone(),
                        applied: vs.applied,
                    },
                );
                managed.fields.remove(manager);
                length -= 1;
                managed.times.insert(bucket, time);
            }
            None => {
                first_of_version.insert(vs.api_version.clone(), manager.clone());
            }
        }
    }
    managed
        .times
        .retain(|id, _| managed.fields.contains_key(id));
}

/// The update chain (`managedFieldsUpdater` → `stripMeta` → `Updater.Update`), then the cap.
fn update_managed(
    up: &Updater,
    live: &Value,
    new: &Value,
    managed: &mut Managed,
    manager_id: &str,
    now: &str,
) {
    let mut fields = managed.fields.clone();
    up.update_op(live, new, &mut fields, CURRENT_OPERATION);
    strip_fields(&mut fields, CURRENT_OPERATION);
    if let Some(vs) = fields.remove(CURRENT_OPERATION) {
        let set = match fields.get(manager_id) {
            Some(prev) => vs.set.union(&prev.set),
            None => vs.set,
        };
        fields.insert(
            manager_id.to_string(),
            VersionedSet {
                set,
                api_version: vs.api_version,
                applied: vs.applied,
            },
        );
        managed
            .times
            .insert(manager_id.to_string(), Some(now.to_string()));
    }
    managed.fields = fields;
    managed
        .times
        .retain(|id, _| managed.fields.contains_key(id));
    cap_update_managers(managed, MAX_UPDATE_MANAGERS);
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Why an apply failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change (409).
    Conflicts(Vec<Conflict>),
    /// 400 BadRequest.
    BadRequest(String),
    /// A plain error: kube-apiserver answers 500 with no reason.
    Internal(String),
}

impl ApplyError {
    /// kube's message: `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.x`.
    pub fn message(&self) -> String {
        match self {
            ApplyError::BadRequest(m) | ApplyError::Internal(m) => m.clone(),
            ApplyError::Conflicts(c) => conflict_message(c),
        }
    }

    pub fn to_api_error(&self) -> crate::api::status::ApiError {
        use crate::api::status::{ApiError, Cause};
        match self {
            ApplyError::BadRequest(m) => ApiError::bad_request(m.clone()),
            ApplyError::Internal(m) => ApiError::new(500, "", m.clone()),
            ApplyError::Conflicts(c) => {
                let mut e = ApiError::new(409, "Conflict", conflict_message(c));
                e.details.causes = c
                    .iter()
                    .map(|c| Cause {
                        reason: "FieldManagerConflict".into(),
                        message: format!("conflict with {}", print_manager(&c.manager)),
                        field: path_string(&c.path),
                    })
                    .collect();
                e
            }
        }
    }
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApplyError {}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if conflicts.len() == 1 {
        let c = &conflicts[0];
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(&c.manager),
            path_string(&c.path)
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.manager.as_str())
            .or_default()
            .push(path_string(&c.path));
    }
    let mut lines = Vec::new();
    for (m, paths) in by_manager {
        lines.push(format!("conflicts with {}:", print_manager(m)));
        lines.extend(paths.into_iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn meta(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let e = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut().expect("just made an object")
}

fn key_index(m: &Map<String, Value>, key: &str) -> Option<usize> {
    m.keys().position(|k| k == key)
}

/// Takes `metadata.managedFields` out of `obj`, with its position among the metadata keys.
fn take_managed_fields(obj: &mut Map<String, Value>) -> (Option<Value>, Option<usize>) {
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => match key_index(m, "managedFields") {
            Some(i) => (m.shift_remove("managedFields"), Some(i)),
            None => (None, None),
        },
        _ => (None, None),
    }
}

/// Writes the managers into `obj` at `index` among the metadata keys (where they were), or
/// last; removes the key when there are none.
fn put_managed_fields(obj: &mut Map<String, Value>, managed: &Managed, index: Option<usize>) {
    let m = meta_mut(obj);
    m.shift_remove("managedFields");
    if let Some(v) = encode_managed_fields(managed) {
        match index {
            Some(i) if i <= m.len() => {
                m.shift_insert(i, "managedFields".into(), v);
            }
            _ => {
                m.insert("managedFields".into(), v);
            }
        }
    }
}

fn without_managed_fields(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut o = obj.clone();
    take_managed_fields(&mut o);
    o
}

/// The object as compared for no-op detection: without managedFields and the
/// resourceVersion/selfLink the server fills in when serving.
fn comparable(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut o = without_managed_fields(obj);
    if let Some(Value::Object(m)) = o.get_mut("metadata") {
        m.shift_remove("resourceVersion");
        m.shift_remove("selfLink");
    }
    o
}

/// The group-version of an apiVersion as Go prints it (`apps/v1`, `v1`, or empty).
fn group_version(av: &str) -> String {
    av.trim_matches('/').to_string()
}

fn gvknn(obj: &Map<String, Value>) -> String {
    let s = |k: &str| {
        meta(obj)
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (g, v) = super::schema::split_api_version(av);
    format!("{}/{}; {g}/{v}, Kind={kind}", s("namespace"), s("name"))
}

/// Server-side apply: merges `applied` into `live` (None: the object does not exist yet) and
/// returns the new object with its managedFields. `now` is the RFC 3339 time stamped on the
/// applier's entry when the object changes.
///
/// The result still needs the endpoint's strategy (system metadata, status reset, generation)
/// before it is stored; fields in `schema.reset_fields` are never owned through this endpoint.
pub fn apply(
    live: Option<&Map<String, Value>>,
    applied: &Map<String, Value>,
    manager: &str,
    force: bool,
    schema: &Schema,
    now: &str,
) -> Result<Map<String, Value>, ApplyError> {
    let patch_version = group_version(
        applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    if patch_version != group_version(&schema.api_version) {
        return Err(ApplyError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {patch_version}, expected: {}",
            group_version(&schema.api_version)
        )));
    }
    if meta(applied)
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let ty = schema.root();
    let up = Updater {
        ty,
        version: schema.api_version.clone(),
        ignored: schema.reset_fields.clone(),
    };
    let (mut live_obj, mf_index) = match live {
        Some(l) => {
            let mut o = l.clone();
            let (_, i) = take_managed_fields(&mut o);
            (o, i)
        }
        None => (zero_with_type(schema), None),
    };
    let managed0 = match live
        .and_then(|l| meta(l))
        .and_then(|m| m.get("managedFields"))
    {
        Some(v) => decode_managed_fields(v)
            .map_err(|e| ApplyError::Internal(format!("failed to decode managed fields: {e}")))?,
        None => Managed::default(),
    };
    let config = Value::Object(applied.clone());
    let config_set = typed::to_field_set(&config, ty, true).map_err(|errs| {
        ApplyError::Internal(format!(
            "failed to create typed patch object ({}): {}",
            gvknn(applied),
            typed::errors_string(&errs)
        ))
    })?;
    let id = manager_identifier(manager, "Apply", &schema.api_version, &schema.subresource);
    let live_val = Value::Object(live_obj.clone());
    let attempt = |force: bool| -> Result<(Option<Value>, Managed), Vec<Conflict>> {
        let mut managed = managed0.clone();
        // Fields set before anyone applied belong to `before-first-apply`
        // (skipNonAppliedManager).
        if managed.fields.is_empty() {
            let zero = Value::Object(zero_with_type(schema));
            let bfa = manager_identifier(
                BEFORE_FIRST_APPLY,
                "Update",
                &schema.api_version,
                &schema.subresource,
            );
            update_managed(&up, &zero, &live_val, &mut managed, &bfa, now);
        }
        let mut fields = managed.fields.clone();
        let new = up.apply_op(
            &live_val,
            &config,
            config_set.clone(),
            &mut fields,
            &id,
            force,
        )?;
        strip_fields(&mut fields, &id);
        managed.fields = fields;
        managed.times.retain(|k, _| managed.fields.contains_key(k));
        Ok((new, managed))
    };
    let (new, mut managed) = match attempt(force) {
        Ok(r) => r,
        Err(mut conflicts) => {
            // kubectl moving from client-side to server-side apply: conflicts on fields its
            // last-applied annotation set, with the values still live, are forced
            // (lastAppliedManager).
            let allowed = (manager == "kubectl")
                .then(|| live.and_then(|l| allowed_from_last_applied(l, &live_val, schema)))
                .flatten();
            let retried = match allowed {
                Some(allowed) => {
                    conflicts.retain(|c| !allowed.has(&c.path));
                    if conflicts.is_empty() {
                        attempt(true).ok()
                    } else {
                        None
                    }
                }
                None => None,
            };
            match retried {
                Some(r) => r,
                None => {
                    conflicts.sort_by(|a, b| a.manager.cmp(&b.manager));
                    return Err(ApplyError::Conflicts(conflicts));
                }
            }
        }
    };
    let mut result = match new {
        // A create is the configuration itself: the zero object it was merged into only
        // served to compute ownership.
        Some(_) if live.is_none() => {
            managed.times.insert(id.clone(), Some(now.to_string()));
            applied.clone()
        }
        Some(Value::Object(m)) => {
            managed.times.insert(id.clone(), Some(now.to_string()));
            m
        }
        Some(_) => Map::new(),
        None if live.is_none() => applied.clone(),
        None => std::mem::take(&mut live_obj),
    };

    // kubectl's server-side apply keeps the client-side annotation in sync (lastAppliedUpdater).
    if manager == "kubectl" && has_last_applied(&result) {
        let mut cfg = applied.clone();
        if let Some(Value::Object(ann)) = cfg
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
        {
            ann.shift_remove(LAST_APPLIED_ANNOTATION);
        }
        let text = format!("{}\n", sorted_json(&Value::Object(cfg)));
        if let Some(Value::Object(ann)) = meta_mut(&mut result).get_mut("annotations") {
            ann.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(text));
        }
    }

    put_managed_fields(&mut result, &managed, mf_index);
    if let Some(l) = live {
        ignore_managed_fields_timestamps(l, &mut result);
    }
    Ok(result)
}

fn has_last_applied(obj: &Map<String, Value>) -> bool {
    meta(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// The fields kubectl's client-side apply set (its last-applied annotation) that still have those
/// values in the live object.
fn allowed_from_last_applied(
    live: &Map<String, Value>,
    live_val: &Value,
    schema: &Schema,
) -> Option<Set> {
    let text = meta(live)?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(schema.api_version.as_str()) {
        return None;
    }
    let ty = schema.root();
    let set = typed::to_field_set(&last, ty, true).ok()?;
    let c = typed::compare(&last, live_val, ty);
    Some(
        set.difference(&c.modified)
            .difference(&c.added)
            .difference(&c.removed),
    )
}

/// JSON with object keys sorted (Go's encoding of maps).
fn sorted_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

fn zero_with_type(schema: &Schema) -> Map<String, Value> {
    let mut z = schema.zero_object();
    z.insert(
        "apiVersion".into(),
        Value::String(schema.api_version.clone()),
    );
    z.insert("kind".into(), Value::String(schema.kind.clone()));
    z
}

/// `managedFields: []` (or one empty entry) in a request resets them (`isResetManagedFields`).
fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(a)) if a.is_empty() => true,
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_object().is_some_and(Map::is_empty),
        _ => false,
    }
}

/// managedFields for a create, update or non-apply patch: `new` (the object about to be stored,
/// after the endpoint's strategy) gets entries in which `manager` owns what it changed relative
/// to `live` (None for a create) and other managers lose it.
///
/// - `managedFields` in `new` that differ from the live ones replace them (clients may edit
///   them); `[]` resets them; absent or undecodable ones keep the live entries. On a
///   subresource the live entries are always used.
/// - An update of an object without managedFields does not start tracking (a create does).
/// - At most 10 Update entries are kept; the oldest merge into `ancient-changes`.
/// - If nothing but managedFields timestamps would change, the live timestamps are kept.
///
/// `manager` is the `fieldManager` (or the User-Agent prefix, see [`manager_or_user_agent`]);
/// `operation` is `"Update"`.
pub fn track_update(
    live: Option<&Map<String, Value>>,
    new: &mut Map<String, Value>,
    manager: &str,
    operation: &str,
    subresource: &str,
    now: &str,
) {
    let schema = Schema::for_object(new, subresource);
    let live_obj = match live {
        Some(l) => without_managed_fields(l),
        None => zero_with_type(&schema),
    };
    let live_mf = live
        .and_then(|l| meta(l))
        .and_then(|m| m.get("managedFields"));
    let decode_live = || {
        live_mf
            .map(decode_managed_fields)
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let new_mf = meta(new).and_then(|m| m.get("managedFields")).cloned();
    let mut managed = if !subresource.is_empty() {
        decode_live()
    } else if is_reset(new_mf.as_ref()) {
        Managed::default()
    } else {
        match new_mf.as_ref().map(decode_managed_fields) {
            Some(Ok(m)) if !m.fields.is_empty() => m,
            _ => decode_live(),
        }
    };
    let (_, new_index) = take_managed_fields(new);
    let mf_index = new_index.or_else(|| {
        live.and_then(|l| meta(l))
            .and_then(|m| key_index(m, "managedFields"))
    });
    let uid_of = |o: &Map<String, Value>| {
        meta(o)
            .and_then(|m| m.get("uid"))
            .and_then(Value::as_str)
            .is_some_and(|u| !u.is_empty())
    };
    if managed.fields.is_empty() && live.is_some_and(uid_of) {
        // The object was not tracked before this update: it stays untracked.
        if let Some(l) = live {
            ignore_managed_fields_timestamps(l, new);
        }
        return;
    }
    let version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(&schema.api_version)
        .to_string();
    let up = Updater {
        ty: schema.root(),
        version: version.clone(),
        ignored: schema.reset_fields.clone(),
    };
    let name = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let op = if operation.is_empty() {
        "Update"
    } else {
        operation
    };
    let id = manager_identifier(name, op, &version, subresource);
    update_managed(
        &up,
        &Value::Object(live_obj),
        &Value::Object(new.clone()),
        &mut managed,
        &id,
        now,
    );
    put_managed_fields(new, &managed, mf_index);
    if let Some(l) = live {
        ignore_managed_fields_timestamps(l, new);
    }
}

/// If `new` differs from `old` only in managedFields timestamps, puts the old timestamps back so
/// the write is a no-op (`IgnoreManagedFieldsTimestampsTransformer`).
pub fn ignore_managed_fields_timestamps(old: &Map<String, Value>, new: &mut Map<String, Value>) {
    let mf = |o: &Map<String, Value>| -> Vec<Value> {
        meta(o)
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (old_mf, new_mf) = (mf(old), mf(new));
    if old_mf.len() != new_mf.len() || old_mf.is_empty() {
        return;
    }
    let untimed = |v: &Value| {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.shift_remove("time");
        }
        v
    };
    if old_mf
        .iter()
        .zip(&new_mf)
        .any(|(a, b)| untimed(a) != untimed(b))
    {
        return;
    }
    if old_mf == new_mf || comparable(old) != comparable(new) {
        return;
    }
    meta_mut(new).insert("managedFields".into(), Value::Array(old_mf));
}

// ---------------------------------------------------------------------------------------------
// Manager names and request options
// ---------------------------------------------------------------------------------------------

/// The manager of a non-apply write: `?fieldManager=`, else the User-Agent up to its first `/`
/// without unprintable characters, cut to 128 bytes (`managerOrUserAgent`).
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let prefix = user_agent.unwrap_or("").split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| is_printable(*c)) {
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

/// Go's `unicode.IsPrint` (letters, marks, numbers, punctuation, symbols and ASCII space).
pub fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    // Format characters, surrogates, private use and unassigned noncharacters are not printable.
    !matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFFFE | 0xFFFF)
}

/// One invalid request option, as a `Status` cause.
fn option_cause(reason: &str, field: &str, message: String) -> crate::api::status::Cause {
    crate::api::status::Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// `ValidateFieldManager`: at most 128 bytes, printable characters only.
pub fn field_manager_causes(field_manager: &str) -> Vec<crate::api::status::Cause> {
    let mut causes = Vec::new();
    if field_manager.len() > 128 {
        causes.push(option_cause(
            "FieldValueTooLong",
            "fieldManager",
            "Too long: may not be more than 128 bytes".into(),
        ));
    }
    let mut pos = 0;
    for c in field_manager.chars() {
        if !is_printable(c) {
            causes.push(option_cause(
                "FieldValueInvalid",
                "fieldManager",
                format!(
                    "Invalid value: {}: invalid character U+{:04X} (at position {pos})",
                    go_quote(field_manager),
                    c as u32
                ),
            ));
        }
        pos += c.len_utf8();
    }
    causes
}

/// 422 `<Kind>.meta.k8s.io "" is invalid: ...` for invalid write options.
pub fn invalid_options(
    kind: &str,
    causes: Vec<crate::api::status::Cause>,
) -> crate::api::status::ApiError {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let joined = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    let mut e = crate::api::status::ApiError::new(
        422,
        "Invalid",
        format!("{kind}.meta.k8s.io \"\" is invalid: {joined}"),
    );
    e.details.group = "meta.k8s.io".into();
    e.details.kind = kind.into();
    e.details.causes = causes;
    e
}

/// `ValidatePatchOptions`: apply needs a fieldManager, `force` is only for apply, and the
/// manager name must be valid. 422 `PatchOptions.meta.k8s.io "" is invalid: ...`.
pub fn validate_patch_options(
    is_apply: bool,
    field_manager: Option<&str>,
    force: Option<bool>,
) -> Result<(), crate::api::status::ApiError> {
    let fm = field_manager.unwrap_or("");
    let mut causes = Vec::new();
    if !is_apply {
        if force.is_some() {
            causes.push(option_cause(
                "FieldValueForbidden",
                "force",
                "Forbidden: may not be specified for non-apply patch".into(),
            ));
        }
    } else if fm.is_empty() {
        causes.push(option_cause(
            "FieldValueRequired",
            "fieldManager",
            "Required value: is required for apply patch".into(),
        ));
    }
    causes.extend(field_manager_causes(fm));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid_options("PatchOptions", causes))
    }
}

/// `ValidateCreateOptions`/`ValidateUpdateOptions` for the manager name (`kind` is
/// `CreateOptions` or `UpdateOptions`).
pub fn validate_field_manager(
    kind: &str,
    field_manager: Option<&str>,
) -> Result<(), crate::api::status::ApiError> {
    let causes = field_manager_causes(field_manager.unwrap_or(""));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid_options(kind, causes))
    }
}

/// The `force` query parameter (kapi's `Query` does not carry it yet).
pub fn parse_force(raw_query: Option<&str>) -> Result<Option<bool>, crate::api::status::ApiError> {
    let mut out = None;
    for (k, v) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if k == "force" {
            out = Some(match &*v {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                other => {
                    return Err(crate::api::status::ApiError::bad_request(format!(
                        "invalid boolean value {other:?} for force"
                    )))
                }
            });
        }
    }
    Ok(out)
}

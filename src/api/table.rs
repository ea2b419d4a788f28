//! Alternative representations of served objects (API-SEMANTICS §7 "Table output",
//! "Metadata-only and media types"): `meta.k8s.io` `Table` (v1 and v1beta1) and
//! `PartialObjectMetadata` / `PartialObjectMetadataList`.
//!
//! Tables follow kube-apiserver's printers (`k8s/pkg/printers/internalversion`): the server
//! always prints the wide form (every column, priority 1 included; kubectl hides priority
//! columns unless `-o wide`), and computes ages itself, as strings such as `5m` or `3d2h`
//! (`translateTimestampSince` + `duration.HumanDuration`). Kinds without a printer get the
//! default convertor's `Name` and `Created At` (RFC 3339) columns.
//!
//! Everything here is a pure function of JSON objects (plus the current time, passed in), so
//! the same code serves get, list, every verb's response and each watch event.

use bytes::Bytes;
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// The version of `meta.k8s.io` a representation was requested in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }

    /// The `v=` parameter of an Accept entry (with `g=meta.k8s.io`).
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "v1" => Some(MetaVersion::V1),
            "v1beta1" => Some(MetaVersion::V1beta1),
            _ => None,
        }
    }
}

/// `?includeObject=`: what each row's `object` holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum IncludeObject {
    /// `null`.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// The query value; `""` means the default. None for anything else (400 upstream).
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableOptions {
    pub version: MetaVersion,
    pub include: IncludeObject,
}

/// A representation asked for with `as=<Kind>;g=meta.k8s.io;v=<version>`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetaTarget {
    Table(TableOptions),
    PartialObjectMetadata(MetaVersion),
    PartialObjectMetadataList(MetaVersion),
}

/// The list metadata a list representation carries over from the list.
#[derive(Clone, Debug, Default)]
pub struct ListMeta<'a> {
    pub resource_version: String,
    pub continue_token: Option<&'a str>,
    pub remaining: Option<i64>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Whole-response conversion
// ---------------------------------------------------------------------------------------------

/// Converts one served JSON document (an object, a list, or a `Status`) to `target`. A `Status`
/// passes through unchanged, as in kube-apiserver; the error is the message of a 406.
pub fn convert(json: &[u8], target: MetaTarget, now: i64) -> Result<Bytes, String> {
    let v: Value = serde_json::from_slice(json).map_err(|e| format!("cannot convert: {e}"))?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind == "Status" {
        return Ok(Bytes::copy_from_slice(json));
    }
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .filter(|_| kind.ends_with("List"));
    match (target, items) {
        (MetaTarget::Table(opts), None) => Ok(object_table(&v, json, opts, true, now)),
        (MetaTarget::Table(opts), Some(items)) => {
            let raws: Vec<Vec<u8>> = items
                .iter()
                .map(|i| serde_json::to_vec(i).unwrap_or_default())
                .collect();
            let item_kind = kind.strip_suffix("List").unwrap_or(kind);
            Ok(list_table(
                group_of(api_version),
                item_kind,
                raws.iter().map(Vec::as_slice),
                &list_meta_of(&v),
                opts,
                now,
            ))
        }
        (MetaTarget::PartialObjectMetadata(version), None) => Ok(partial_from_value(&v, version)),
        (MetaTarget::PartialObjectMetadata(_), Some(_)) => Err(format!(
            "you requested PartialObjectMetadata, but the requested object is a list ({})",
            go_type(group_of(api_version), kind)
        )),
        (MetaTarget::PartialObjectMetadataList(version), Some(items)) => {
            let mut out = list_head("PartialObjectMetadataList", version, &list_meta_of(&v));
            out.extend_from_slice(b",\"items\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_partial(&mut out, item.get("metadata"), version);
            }
            out.extend_from_slice(b"]}");
            Ok(Bytes::from(out))
        }
        (MetaTarget::PartialObjectMetadataList(_), None) => Err(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
            go_type(group_of(api_version), kind)
        )),
    }
}

/// The message of the 406 for a list asked for as `PartialObjectMetadata`.
pub fn partial_of_list_error(group: &str, list_kind: &str) -> String {
    format!(
        "you requested PartialObjectMetadata, but the requested object is a list ({})",
        go_type(group, list_kind)
    )
}

/// `*<package>.<Kind>`, the Go type name kube-apiserver puts in its 406 messages.
fn go_type(group: &str, kind: &str) -> String {
    let pkg = match group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("*{pkg}.{kind}")
}

/// The group of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

fn list_meta_of(v: &Value) -> ListMeta<'_> {
    let m = v.get("metadata");
    ListMeta {
        resource_version: m
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        continue_token: m
            .and_then(|m| m.get("continue"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty()),
        remaining: m
            .and_then(|m| m.get("remainingItemCount"))
            .and_then(Value::as_i64),
    }
}

// ---------------------------------------------------------------------------------------------
// PartialObjectMetadata
// ---------------------------------------------------------------------------------------------

/// Just the metadata of a served object (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: Option<Value>,
}

fn metadata_of(json: &[u8]) -> Option<Value> {
    serde_json::from_slice::<MetadataOnly>(json)
        .ok()
        .and_then(|m| m.metadata)
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/<v>","metadata":{…}}`.
fn write_partial(out: &mut Vec<u8>, metadata: Option<&Value>, version: MetaVersion) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    match metadata {
        Some(m @ Value::Object(_)) => {
            serde_json::to_writer(&mut *out, m).expect("JSON value serializes")
        }
        _ => out.extend_from_slice(b"{}"),
    }
    out.push(b'}');
}

fn partial_from_value(v: &Value, version: MetaVersion) -> Bytes {
    let mut out = Vec::with_capacity(512);
    write_partial(&mut out, v.get("metadata"), version);
    Bytes::from(out)
}

/// The `PartialObjectMetadata` of one served object.
pub fn partial_object_metadata(json: &[u8], version: MetaVersion) -> Bytes {
    let mut out = Vec::with_capacity(512);
    write_partial(&mut out, metadata_of(json).as_ref(), version);
    Bytes::from(out)
}

/// A `PartialObjectMetadataList` of served objects.
pub fn partial_object_metadata_list<'a>(
    items: impl IntoIterator<Item = &'a [u8]>,
    meta: &ListMeta,
    version: MetaVersion,
) -> Bytes {
    let mut out = list_head("PartialObjectMetadataList", version, meta);
    out.extend_from_slice(b",\"items\":[");
    for (i, json) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_partial(&mut out, metadata_of(json).as_ref(), version);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// `{"kind":"<kind>","apiVersion":"meta.k8s.io/<v>","metadata":{<list meta>}` (left open).
fn list_head(kind: &str, version: MetaVersion, meta: &ListMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":{");
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, name: &str, value: &Value| {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, name).expect("string serializes");
        out.push(b':');
        serde_json::to_writer(&mut *out, value).expect("JSON value serializes");
    };
    if !meta.resource_version.is_empty() {
        field(
            &mut out,
            "resourceVersion",
            &Value::from(meta.resource_version.as_str()),
        );
    }
    if let Some(c) = meta.continue_token {
        field(&mut out, "continue", &Value::from(c));
    }
    if let Some(n) = meta.remaining {
        field(&mut out, "remainingItemCount", &Value::from(n));
    }
    out.push(b'}');
    out
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

/// One `TableColumnDefinition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `boolean`, `date`, ….
    pub kind: &'static str,
    /// `name` for the object name column, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: shown by `kubectl get -o wide`.
    pub priority: u8,
}

const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: D_NAME,
    priority: 0,
};
const AGE: Column = col("Age", "string", D_CREATED);
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

type Cells = fn(&Value, i64) -> Vec<Value>;

/// The columns of a kind and the function that prints one object's cells.
pub struct Printer {
    pub columns: &'static [Column],
    cells: Cells,
    /// The default convertor: an empty list has `rows: null`.
    default: bool,
}

impl Printer {
    /// The cells of one object's row (every column, wide ones included).
    pub fn cells(&self, obj: &Value, now: i64) -> Vec<Value> {
        (self.cells)(obj, now)
    }
}

/// The printer of (group, kind): one of kube-apiserver's, or the default convertor.
pub fn printer(group: &str, kind: &str) -> &'static Printer {
    match (group, kind) {
        ("", "Pod") => &POD,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("apps", "DaemonSet") => &DAEMON_SET,
        ("apps", "ControllerRevision") => &CONTROLLER_REVISION,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("", "Service") => &SERVICE,
        ("", "Endpoints") => &ENDPOINTS,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("networking.k8s.io", "IngressClass") => &INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        ("", "Node") => &NODE,
        ("", "Event") | ("events.k8s.io", "Event") => &EVENT,
        ("", "Namespace") => &NAMESPACE,
        ("", "Secret") => &SECRET,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "ConfigMap") => &CONFIG_MAP,
        ("", "PersistentVolume") => &PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => &PERSISTENT_VOLUME_CLAIM,
        ("", "ResourceQuota") => &RESOURCE_QUOTA,
        ("rbac.authorization.k8s.io", "RoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &CLUSTER_ROLE_BINDING,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        ("storage.k8s.io", "StorageClass") => &STORAGE_CLASS,
        ("scheduling.k8s.io", "PriorityClass") => &PRIORITY_CLASS,
        ("autoscaling", "Scale") => &SCALE,
        _ => &DEFAULT,
    }
}

/// A Table of a list's items (each the served JSON of one object).
pub fn list_table<'a>(
    group: &str,
    kind: &str,
    items: impl IntoIterator<Item = &'a [u8]>,
    meta: &ListMeta,
    opts: TableOptions,
    now: i64,
) -> Bytes {
    let printer = printer(group, kind);
    let mut out = table_head(opts.version, meta, Some(printer));
    out.extend_from_slice(b",\"rows\":");
    let mut n = 0;
    for json in items {
        out.push(if n == 0 { b'[' } else { b',' });
        n += 1;
        match serde_json::from_slice::<Value>(json) {
            Ok(v) => write_row(&mut out, printer, &v, json, opts, now),
            Err(_) => write_row(&mut out, printer, &Value::Null, json, opts, now),
        }
    }
    if n == 0 {
        out.extend_from_slice(if printer.default { b"null" } else { b"[]" });
    } else {
        out.push(b']');
    }
    out.push(b'}');
    Bytes::from(out)
}

/// A one-row Table of one served object. Watch events after the first carry no column
/// definitions (`headers: false` gives `"columnDefinitions":null`).
pub fn table_for_object(
    json: &[u8],
    opts: TableOptions,
    headers: bool,
    now: i64,
) -> Result<Bytes, String> {
    let v: Value =
        serde_json::from_slice(json).map_err(|e| format!("cannot convert to a Table: {e}"))?;
    Ok(object_table(&v, json, opts, headers, now))
}

fn object_table(v: &Value, json: &[u8], opts: TableOptions, headers: bool, now: i64) -> Bytes {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let printer = printer(group_of(api_version), kind);
    let meta = ListMeta {
        resource_version: str_at(v, &["metadata", "resourceVersion"]).to_string(),
        ..Default::default()
    };
    let mut out = table_head(opts.version, &meta, headers.then_some(printer));
    out.extend_from_slice(b",\"rows\":[");
    write_row(&mut out, printer, v, json, opts, now);
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// `{"kind":"Table","apiVersion":…,"metadata":{…},"columnDefinitions":[…]|null` (left open).
fn table_head(version: MetaVersion, meta: &ListMeta, columns: Option<&Printer>) -> Vec<u8> {
    let mut out = list_head("Table", version, meta);
    out.extend_from_slice(b",\"columnDefinitions\":");
    match columns {
        None => out.extend_from_slice(b"null"),
        Some(p) => {
            out.push(b'[');
            for (i, c) in p.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                serde_json::to_writer(&mut out, c.name).expect("string serializes");
                out.extend_from_slice(b",\"type\":");
                serde_json::to_writer(&mut out, c.kind).expect("string serializes");
                out.extend_from_slice(b",\"format\":");
                serde_json::to_writer(&mut out, c.format).expect("string serializes");
                out.extend_from_slice(b",\"description\":");
                serde_json::to_writer(&mut out, c.description).expect("string serializes");
                out.extend_from_slice(format!(",\"priority\":{}}}", c.priority).as_bytes());
            }
            out.push(b']');
        }
    }
    out
}

/// `{"cells":[…],["conditions":[…],]"object":…}`.
fn write_row(
    out: &mut Vec<u8>,
    printer: &Printer,
    obj: &Value,
    json: &[u8],
    opts: TableOptions,
    now: i64,
) {
    out.extend_from_slice(b"{\"cells\":");
    serde_json::to_writer(&mut *out, &printer.cells(obj, now)).expect("JSON values serialize");
    if let Some(c) = row_conditions(printer, obj) {
        out.extend_from_slice(b",\"conditions\":");
        serde_json::to_writer(&mut *out, &c).expect("JSON values serialize");
    }
    out.extend_from_slice(b",\"object\":");
    // The bookmark that ends a watch's initial events always embeds metadata.
    let initial_events_end = str_at(
        obj,
        &["metadata", "annotations", "k8s.io/initial-events-end"],
    ) == "true";
    match opts.include {
        IncludeObject::Object if !initial_events_end => out.extend_from_slice(json),
        IncludeObject::None if !initial_events_end => out.extend_from_slice(b"null"),
        _ => write_partial(out, obj.get("metadata"), opts.version),
    }
    out.push(b'}');
}

/// Row conditions: a pod that has run to completion is marked `Completed`.
fn row_conditions(printer: &Printer, obj: &Value) -> Option<Value> {
    if !std::ptr::eq(printer, &POD) {
        return None;
    }
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(
        serde_json::json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]),
    )
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// `duration.HumanDuration` of a duration in milliseconds.
pub fn human_duration(ms: i64) -> String {
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = ms / 60_000;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = ms / 3_600_000;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{}h", hours / 24, h)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{}d", hours / 24 / 365, dy)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, fractions and offsets allowed) into
/// Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| c.contains(&b[i]);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        ms = first3.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1000 + ms)
}

/// Formats Unix milliseconds as RFC 3339 in UTC, whole seconds (Go's `time.RFC3339`).
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A timestamp field in milliseconds, None when unset (Go's zero time).
fn time_at(v: &Value, path: &[&str]) -> Option<i64> {
    parse_rfc3339(str_at(v, path))
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(t: Option<i64>, now: i64) -> String {
    match t {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value, now: i64) -> Value {
    Value::String(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

// ---------------------------------------------------------------------------------------------
// JSON accessors
// ---------------------------------------------------------------------------------------------

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

fn bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn map_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

fn len_at(v: &Value, path: &[&str]) -> i64 {
    match at(v, path) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn name(obj: &Value) -> Value {
    Value::from(str_at(obj, &["metadata", "name"]))
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// An int-or-string as Go's `IntOrString.String()`.
fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(m: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// `metav1.LabelSelectorAsSelector(s).String()`: requirements sorted by key; `""` for a nil or
/// empty selector.
fn selector_string(s: Option<&Value>) -> String {
    let Some(s) = s.filter(|s| s.is_object()) else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in map_at(s, &["matchLabels"]).into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in arr_at(s, &["matchExpressions"]) {
        let key = str_at(e, &["key"]);
        let mut values: Vec<&str> = arr_at(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match str_at(e, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<invalid>".into(),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: as [`selector_string`], `<none>` when empty.
fn format_label_selector(s: Option<&Value>) -> String {
    match selector_string(s) {
        s if s.is_empty() => "<none>".into(),
        s => s,
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
fn container_cells(pod_spec: Option<&Value>) -> (Value, Value) {
    let containers = pod_spec.map(|s| arr_at(s, &["containers"])).unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// `printBoolPtr`.
fn bool_ptr(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

// ---------------------------------------------------------------------------------------------
// Printers
// ---------------------------------------------------------------------------------------------

static DEFAULT: Printer = Printer {
    columns: &[NAME, col("Created At", "date", D_CREATED)],
    cells: |o, _| {
        let created = time_at(o, &["metadata", "creationTimestamp"]).unwrap_or(-62_135_596_800_000);
        vec![name(o), Value::from(format_rfc3339(created))]
    },
    default: true,
};

static POD: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        wide("IP", "string", D_POD_IP),
        wide("Node", "string", D_POD_NODE),
        wide("Nominated Node", "string", D_POD_NOMINATED),
        wide("Readiness Gates", "string", D_POD_GATES),
    ],
    cells: pod_cells,
    default: false,
};

fn condition_true(conditions: &[Value], ty: &str) -> bool {
    conditions
        .iter()
        .find(|c| str_at(c, &["type"]) == ty)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

fn latest(cur: Option<i64>, t: Option<i64>) -> Option<i64> {
    match (cur, t) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `printPod`: READY, STATUS and RESTARTS as kubectl shows them.
fn pod_cells(pod: &Value, now: i64) -> Vec<Value> {
    let conditions = arr_at(pod, &["status", "conditions"]);
    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .find(|c| str_at(c, &["name"]) == name)
            .is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
    };
    let mut restarts = 0;
    let mut restartable_restarts = 0;
    let total = arr_at(pod, &["spec", "containers"]).len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, &["restartPolicy"]) == "Always")
            .count();
    let mut ready = 0;
    let mut last_restart: Option<i64> = None;
    let mut last_restartable_restart: Option<i64> = None;

    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = or(str_at(pod, &["status", "reason"]), phase).to_string();
    for c in conditions {
        if str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }

    let mut initializing = false;
    for (i, c) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(c, &["restartCount"]);
        let finished = time_at(c, &["lastState", "terminated", "finishedAt"]);
        restarts += count;
        last_restart = latest(last_restart, finished);
        let sidecar = restartable(str_at(c, &["name"]));
        if sidecar {
            restartable_restarts += count;
            last_restartable_restart = latest(last_restartable_restart, finished);
        }
        let terminated = at(c, &["state", "terminated"]).filter(|t| t.is_object());
        let waiting_reason = str_at(c, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(c, &["started"]) == Some(true) {
            if bool_at(c, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match str_at(t, &["reason"]) {
                "" if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                "" => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for c in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(c, &["restartCount"]);
            last_restart = latest(
                last_restart,
                time_at(c, &["lastState", "terminated", "finishedAt"]),
            );
            let waiting = at(c, &["state", "waiting"]).filter(|w| w.is_object());
            let terminated = at(c, &["state", "terminated"]).filter(|t| t.is_object());
            let running = at(c, &["state", "running"]).is_some_and(Value::is_object);
            if let Some(r) = waiting
                .map(|w| str_at(w, &["reason"]))
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, &["reason"]) {
                    "" if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    "" => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                    r => r.to_string(),
                };
            } else if bool_at(c, &["ready"]) == Some(true) && running {
                has_running = true;
                ready += 1;
            }
        }
        // A pod with a container still running is not "Completed".
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null()) {
        if str_at(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    // v1 → internal conversion: podIP wins, else the first of podIPs.
    let pod_ip = match str_at(pod, &["status", "podIP"]) {
        "" => arr_at(pod, &["status", "podIPs"])
            .first()
            .map(|p| str_at(p, &["ip"]))
            .unwrap_or(""),
        ip => ip,
    };
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_conditions = gates
            .iter()
            .filter(|g| condition_true(conditions, str_at(g, &["conditionType"])))
            .count();
        format!("{true_conditions}/{}", gates.len())
    };
    vec![
        name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        age(pod, now),
        Value::from(or(pod_ip, "<none>")),
        Value::from(or(str_at(pod, &["spec", "nodeName"]), "<none>")),
        Value::from(or(str_at(pod, &["status", "nominatedNodeName"]), "<none>")),
        Value::from(readiness_gates),
    ]
}

/// Desired, Current, Ready, Age, Containers, Images, Selector: ReplicationControllers and
/// ReplicaSets print the same cells and differ only in how their selector is written.
fn replica_cells(o: &Value, now: i64, selector: String) -> Vec<Value> {
    let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
    vec![
        name(o),
        Value::from(opt_int(o, &["spec", "replicas"]).unwrap_or(1)),
        Value::from(int_at(o, &["status", "replicas"])),
        Value::from(int_at(o, &["status", "readyReplicas"])),
        age(o, now),
        names,
        images,
        Value::from(selector),
    ]
}

static REPLICATION_CONTROLLER: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", D_RC_SPEC_REPLICAS),
        col("Current", "integer", D_RC_STATUS_REPLICAS),
        col("Ready", "integer", D_RC_READY),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", D_RC_SELECTOR),
    ],
    cells: |o, now| {
        let selector = format_labels(map_at(o, &["spec", "selector"]));
        replica_cells(o, now, selector)
    },
    default: false,
};

static REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", D_RS_SPEC_REPLICAS),
        col("Current", "integer", D_RS_STATUS_REPLICAS),
        col("Ready", "integer", D_RS_READY),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", D_RS_SELECTOR),
    ],
    cells: |o, now| {
        let selector = format_label_selector(at(o, &["spec", "selector"]));
        replica_cells(o, now, selector)
    },
    default: false,
};

static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col("Up-to-date", "string", D_DEP_UPDATED),
        col("Available", "string", D_DEP_AVAILABLE),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", D_DEP_SELECTOR),
    ],
    cells: |o, now| {
        let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
        let desired = opt_int(o, &["spec", "replicas"]).unwrap_or(1);
        vec![
            name(o),
            Value::from(format!(
                "{}/{desired}",
                int_at(o, &["status", "readyReplicas"])
            )),
            Value::from(int_at(o, &["status", "updatedReplicas"])),
            Value::from(int_at(o, &["status", "availableReplicas"])),
            age(o, now),
            names,
            images,
            Value::from(selector_string(at(o, &["spec", "selector"]))),
        ]
    },
    default: false,
};

static STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: |o, now| {
        let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
        let desired = opt_int(o, &["spec", "replicas"]).unwrap_or(1);
        vec![
            name(o),
            Value::from(format!(
                "{}/{desired}",
                int_at(o, &["status", "readyReplicas"])
            )),
            age(o, now),
            names,
            images,
        ]
    },
    default: false,
};

static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", D_DS_DESIRED),
        col("Current", "integer", D_DS_CURRENT),
        col("Ready", "integer", D_DS_READY),
        col("Up-to-date", "integer", D_DS_UPDATED),
        col("Available", "integer", D_DS_AVAILABLE),
        col("Node Selector", "string", D_POD_NODE_SELECTOR),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", D_DS_SELECTOR),
    ],
    cells: |o, now| {
        let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
        vec![
            name(o),
            Value::from(int_at(o, &["status", "desiredNumberScheduled"])),
            Value::from(int_at(o, &["status", "currentNumberScheduled"])),
            Value::from(int_at(o, &["status", "numberReady"])),
            Value::from(int_at(o, &["status", "updatedNumberScheduled"])),
            Value::from(int_at(o, &["status", "numberAvailable"])),
            Value::from(format_labels(map_at(
                o,
                &["spec", "template", "spec", "nodeSelector"],
            ))),
            age(o, now),
            names,
            images,
            Value::from(format_label_selector(at(o, &["spec", "selector"]))),
        ]
    },
    default: false,
};

static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "string", "Controller of the object"),
        col("Revision", "string", D_CR_REVISION),
        AGE,
    ],
    cells: |o, now| {
        let controller = arr_at(o, &["metadata", "ownerReferences"])
            .iter()
            .find(|r| bool_at(r, &["controller"]) == Some(true))
            .map(|r| {
                let group = group_of(str_at(r, &["apiVersion"]));
                let kind = str_at(r, &["kind"]).to_lowercase();
                let gk = if group.is_empty() {
                    kind
                } else {
                    format!("{kind}.{group}")
                };
                format!("{gk}/{}", str_at(r, &["name"]))
            })
            .unwrap_or_else(|| "<none>".into());
        vec![
            name(o),
            Value::from(controller),
            Value::from(int_at(o, &["revision"])),
            age(o, now),
        ]
    },
    default: false,
};

fn job_condition(o: &Value, ty: &str) -> bool {
    condition_true(arr_at(o, &["status", "conditions"]), ty)
}

static JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the job."),
        col("Completions", "string", D_JOB_SUCCEEDED),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", D_JOB_SELECTOR),
    ],
    cells: |o, now| {
        let succeeded = int_at(o, &["status", "succeeded"]);
        let completions = opt_int(o, &["spec", "completions"]);
        let parallelism = opt_int(o, &["spec", "parallelism"]);
        // v1 defaulting: neither set means one completion.
        let completions = match (completions, parallelism) {
            (Some(c), _) => format!("{succeeded}/{c}"),
            (None, None) => format!("{succeeded}/1"),
            (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
            (None, Some(_)) => format!("{succeeded}/1"),
        };
        let duration = match (
            time_at(o, &["status", "startTime"]),
            time_at(o, &["status", "completionTime"]),
        ) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(now - start),
            (Some(start), Some(end)) => human_duration(end - start),
        };
        let status = if job_condition(o, "Complete") {
            "Complete"
        } else if job_condition(o, "Failed") {
            "Failed"
        } else if at(o, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null()) {
            "Terminating"
        } else if job_condition(o, "Suspended") {
            "Suspended"
        } else if job_condition(o, "FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
        vec![
            name(o),
            Value::from(status),
            Value::from(completions),
            Value::from(duration),
            age(o, now),
            names,
            images,
            Value::from(format_label_selector(at(o, &["spec", "selector"]))),
        ]
    },
    default: false,
};

static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "string", D_CJ_SCHEDULE),
        col("Timezone", "string", D_CJ_TZ),
        col("Suspend", "boolean", D_CJ_SUSPEND),
        col("Active", "integer", D_CJ_ACTIVE),
        col("Last Schedule", "string", D_CJ_LAST),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", D_JOB_SELECTOR),
    ],
    cells: |o, now| {
        let last = match time_at(o, &["status", "lastScheduleTime"]) {
            Some(t) => since(Some(t), now),
            None => "<none>".into(),
        };
        let (names, images) =
            container_cells(at(o, &["spec", "jobTemplate", "spec", "template", "spec"]));
        vec![
            name(o),
            Value::from(str_at(o, &["spec", "schedule"])),
            Value::from(or(str_at(o, &["spec", "timeZone"]), "<none>")),
            // v1 defaulting sets suspend to false.
            Value::from(bool_ptr(bool_at(o, &["spec", "suspend"]).or(Some(false)))),
            Value::from(len_at(o, &["status", "active"])),
            Value::from(last),
            age(o, now),
            names,
            images,
            Value::from(format_label_selector(at(
                o,
                &["spec", "jobTemplate", "spec", "selector"],
            ))),
        ]
    },
    default: false,
};

/// `loadBalancerStatusStringer` (wide: never truncated): the sorted, distinct IPs or hostnames.
fn load_balancer_ingress(ingress: &[Value]) -> String {
    let mut out: Vec<&str> = ingress
        .iter()
        .filter_map(|i| match (str_at(i, &["ip"]), str_at(i, &["hostname"])) {
            ("", "") => None,
            ("", h) => Some(h),
            (ip, _) => Some(ip),
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out.join(",")
}

static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", D_SVC_TYPE),
        col("Cluster-IP", "string", D_SVC_CLUSTER_IP),
        col("External-IP", "string", D_SVC_EXTERNAL_IPS),
        col("Port(s)", "string", D_SVC_PORTS),
        AGE,
        wide("Selector", "string", D_SVC_SELECTOR),
    ],
    cells: |o, now| {
        let ty = or(str_at(o, &["spec", "type"]), "ClusterIP");
        let cluster_ip = arr_at(o, &["spec", "clusterIPs"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or(str_at(o, &["spec", "clusterIP"]));
        let external: Vec<&str> = arr_at(o, &["spec", "externalIPs"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let external_ip = match ty {
            "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
            "ClusterIP" | "NodePort" => "<none>".into(),
            "LoadBalancer" => {
                let lb = load_balancer_ingress(arr_at(o, &["status", "loadBalancer", "ingress"]));
                match (lb.is_empty(), external.is_empty()) {
                    (_, false) => {
                        let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
                        all.extend(external);
                        all.join(",")
                    }
                    (false, true) => lb,
                    (true, true) => "<pending>".into(),
                }
            }
            "ExternalName" => str_at(o, &["spec", "externalName"]).to_string(),
            _ => "<unknown>".into(),
        };
        let ports: Vec<String> = arr_at(o, &["spec", "ports"])
            .iter()
            .map(|p| {
                let protocol = or(str_at(p, &["protocol"]), "TCP");
                match int_at(p, &["nodePort"]) {
                    n if n > 0 => format!("{}:{n}/{protocol}", int_at(p, &["port"])),
                    _ => format!("{}/{protocol}", int_at(p, &["port"])),
                }
            })
            .collect();
        vec![
            name(o),
            Value::from(ty),
            Value::from(or(cluster_ip, "<none>")),
            Value::from(external_ip),
            Value::from(if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",")
            }),
            age(o, now),
            Value::from(format_labels(map_at(o, &["spec", "selector"]))),
        ]
    },
    default: false,
};

/// `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints` with every port: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(o: &Value) -> String {
    let subsets = arr_at(o, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, &["ip"]), int_at(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

static ENDPOINTS: Printer = Printer {
    columns: &[NAME, col("Endpoints", "string", D_EP_SUBSETS), AGE],
    cells: |o, now| vec![name(o), Value::from(format_endpoints(o)), age(o, now)],
    default: false,
};

/// `listWithMoreString`.
fn list_with_more(list: Vec<String>, more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        return "<unset>".into();
    }
    ret
}

static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col("AddressType", "string", D_ES_ADDRESS_TYPE),
        col("Ports", "string", D_ES_PORTS),
        col("Endpoints", "string", D_ES_ENDPOINTS),
        AGE,
    ],
    cells: |o, now| {
        const MAX: usize = 3;
        let (mut ports, mut more, mut count) = (Vec::new(), false, 0);
        for p in arr_at(o, &["ports"]) {
            if ports.len() < MAX {
                ports.push(match (opt_int(p, &["port"]), str_at(p, &["name"])) {
                    (Some(n), _) => n.to_string(),
                    (None, "") => "*".to_string(),
                    (None, n) => n.to_string(),
                });
            } else if ports.len() == MAX {
                more = true;
            }
            count += 1;
        }
        let ports = list_with_more(ports, more, count, MAX);
        let (mut eps, mut more, mut count) = (Vec::new(), false, 0);
        for e in arr_at(o, &["endpoints"]) {
            for a in arr_at(e, &["addresses"]) {
                if eps.len() < MAX {
                    eps.push(a.as_str().unwrap_or("").to_string());
                } else if eps.len() == MAX {
                    more = true;
                }
                count += 1;
            }
        }
        vec![
            name(o),
            Value::from(str_at(o, &["addressType"])),
            Value::from(ports),
            Value::from(list_with_more(eps, more, count, MAX)),
            age(o, now),
        ]
    },
    default: false,
};

static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        col(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: |o, now| {
        let rules = arr_at(o, &["spec", "rules"]);
        const MAX: usize = 3;
        let mut hosts: Vec<&str> = Vec::new();
        let mut more = false;
        for r in rules {
            if hosts.len() == MAX {
                more = true;
            }
            let host = str_at(r, &["host"]);
            if !more && !host.is_empty() {
                hosts.push(host);
            }
        }
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else if more {
            format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
        } else {
            hosts.join(",")
        };
        let ports = if arr_at(o, &["spec", "tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name(o),
            Value::from(or(str_at(o, &["spec", "ingressClassName"]), "<none>")),
            Value::from(hosts),
            Value::from(load_balancer_ingress(arr_at(o, &["status", "loadBalancer", "ingress"]))),
            Value::from(ports),
            age(o, now),
        ]
    },
    default: false,
};

static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    cells: |o, now| {
        let parameters = match at(o, &["spec", "parameters"]).filter(|p| p.is_object()) {
            None => "<none>".to_string(),
            Some(p) => {
                let mut s = str_at(p, &["kind"]).to_string();
                if let Some(g) = at(p, &["apiGroup"]).and_then(Value::as_str) {
                    s = format!("{s}.{g}");
                }
                format!("{s}/{}", str_at(p, &["name"]))
            }
        };
        vec![
            name(o),
            Value::from(str_at(o, &["spec", "controller"])),
            Value::from(parameters),
            age(o, now),
        ]
    },
    default: false,
};

static NETWORK_POLICY: Printer = Printer {
    columns: &[NAME, col("Pod-Selector", "string", D_NP_PODSELECTOR), AGE],
    cells: |o, now| {
        let selector = at(o, &["spec", "podSelector"])
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        vec![
            name(o),
            Value::from(format_label_selector(Some(&selector))),
            age(o, now),
        ]
    },
    default: false,
};

static NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", D_NODE_KUBELET),
        wide("Internal-IP", "string", D_NODE_ADDRESSES),
        wide("External-IP", "string", D_NODE_ADDRESSES),
        wide("OS-Image", "string", D_NODE_OS),
        wide("Kernel-Version", "string", D_NODE_KERNEL),
        wide("Container-Runtime", "string", D_NODE_CRI),
    ],
    cells: |o, now| {
        // The last condition of a type wins (the printer indexes them in a map).
        let ready = arr_at(o, &["status", "conditions"])
            .iter()
            .rfind(|c| str_at(c, &["type"]) == "Ready");
        let mut status = vec![match ready {
            Some(c) if str_at(c, &["status"]) == "True" => "Ready",
            Some(_) => "NotReady",
            None => "Unknown",
        }];
        if bool_at(o, &["spec", "unschedulable"]) == Some(true) {
            status.push("SchedulingDisabled");
        }
        let mut roles: Vec<&str> = map_at(o, &["metadata", "labels"])
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                Some(role) if !role.is_empty() => Some(role),
                Some(_) => None,
                None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()),
                None => None,
            })
            .collect();
        roles.sort_unstable();
        roles.dedup();
        let address = |ty: &str| {
            arr_at(o, &["status", "addresses"])
                .iter()
                .find(|a| str_at(a, &["type"]) == ty)
                .map(|a| str_at(a, &["address"]))
                .unwrap_or("<none>")
        };
        let info = |k: &str| or(str_at(o, &["status", "nodeInfo", k]), "<unknown>");
        vec![
            name(o),
            Value::from(status.join(",")),
            Value::from(if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            }),
            age(o, now),
            Value::from(str_at(o, &["status", "nodeInfo", "kubeletVersion"])),
            Value::from(address("InternalIP")),
            Value::from(address("ExternalIP")),
            Value::from(info("osImage")),
            Value::from(info("kernelVersion")),
            Value::from(info("containerRuntimeVersion")),
        ]
    },
    default: false,
};

/// A core/v1 Event field, or its events.k8s.io/v1 name.
fn ev<'a>(o: &'a Value, core: &[&str], v1: &[&str]) -> Option<&'a Value> {
    at(o, core).or_else(|| at(o, v1)).filter(|v| !v.is_null())
}

fn ev_str<'a>(o: &'a Value, core: &[&str], v1: &[&str]) -> &'a str {
    ev(o, core, v1).and_then(Value::as_str).unwrap_or("")
}

static EVENT: Printer = Printer {
    columns: &[
        col("Last Seen", "string", D_EV_LAST),
        col("Type", "string", D_EV_TYPE),
        col("Reason", "string", D_EV_REASON),
        col("Object", "string", D_EV_OBJECT),
        wide("Subobject", "string", D_EV_FIELDPATH),
        wide("Source", "string", D_EV_SOURCE),
        col("Message", "string", D_EV_MESSAGE),
        wide("First Seen", "string", D_EV_FIRST),
        wide("Count", "string", D_EV_COUNT),
        Column {
            priority: 1,
            ..NAME
        },
    ],
    cells: |o, now| {
        let ts = |core: &str, v1: &str| parse_rfc3339(ev_str(o, &[core], &[v1]));
        let first = match ts("firstTimestamp", "deprecatedFirstTimestamp") {
            Some(t) => since(Some(t), now),
            None => since(time_at(o, &["eventTime"]), now),
        };
        let mut last = match ts("lastTimestamp", "deprecatedLastTimestamp") {
            Some(t) => since(Some(t), now),
            None => first.clone(),
        };
        let mut count = ev(o, &["count"], &["deprecatedCount"])
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(series) = at(o, &["series"]).filter(|s| s.is_object()) {
            last = since(time_at(series, &["lastObservedTime"]), now);
            count = int_at(series, &["count"]);
        } else if count == 0 {
            count = 1;
        }
        let involved = |k: &str| ev_str(o, &["involvedObject", k], &["regarding", k]);
        let kind = involved("kind").to_lowercase();
        let target = match involved("name") {
            "" => kind,
            n => format!("{kind}/{n}"),
        };
        let component = or(
            ev_str(
                o,
                &["source", "component"],
                &["deprecatedSource", "component"],
            ),
            ev_str(o, &["reportingComponent"], &["reportingController"]),
        );
        let instance = or(
            ev_str(o, &["source", "host"], &["deprecatedSource", "host"]),
            str_at(o, &["reportingInstance"]),
        );
        let source = if instance.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {instance}")
        };
        vec![
            Value::from(last),
            Value::from(str_at(o, &["type"])),
            Value::from(str_at(o, &["reason"])),
            Value::from(target),
            Value::from(involved("fieldPath")),
            Value::from(source),
            Value::from(ev_str(o, &["message"], &["note"]).trim()),
            Value::from(first),
            Value::from(count),
            name(o),
        ]
    },
    default: false,
};

static NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(str_at(o, &["status", "phase"])),
            age(o, now),
        ]
    },
    default: false,
};

static SECRET: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", D_SECRET_TYPE),
        col("Data", "string", D_SECRET_DATA),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(or(str_at(o, &["type"]), "Opaque")),
            Value::from(len_at(o, &["data"])),
            age(o, now),
        ]
    },
    default: false,
};

static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[NAME, col("Secrets", "string", D_SA_SECRETS), AGE],
    cells: |o, now| vec![name(o), Value::from(len_at(o, &["secrets"])), age(o, now)],
    default: false,
};

static CONFIG_MAP: Printer = Printer {
    columns: &[NAME, col("Data", "string", D_CM_DATA), AGE],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(len_at(o, &["data"]) + len_at(o, &["binaryData"])),
            age(o, now),
        ]
    },
    default: false,
};

/// `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, s)| *s)
    .collect::<Vec<_>>()
    .join(",")
}

fn deleting(o: &Value) -> bool {
    at(o, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null())
}

const STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "string", D_PV_CAPACITY),
        col("Access Modes", "string", D_PV_ACCESS),
        col("Reclaim Policy", "string", D_PV_RECLAIM),
        col("Status", "string", D_PV_PHASE),
        col("Claim", "string", D_PV_CLAIM),
        col("StorageClass", "string", "StorageClass of the pv"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        col("Reason", "string", D_PV_REASON),
        AGE,
        wide("VolumeMode", "string", D_PV_MODE),
    ],
    cells: |o, now| {
        let claim = match at(o, &["spec", "claimRef"]).filter(|c| c.is_object()) {
            Some(c) => format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])),
            None => String::new(),
        };
        let phase = if deleting(o) {
            "Terminating"
        } else {
            or(str_at(o, &["status", "phase"]), "Pending")
        };
        let class = match at(o, &["metadata", "annotations", STORAGE_CLASS_ANNOTATION])
            .and_then(Value::as_str)
        {
            Some(c) => c,
            None => str_at(o, &["spec", "storageClassName"]),
        };
        vec![
            name(o),
            Value::from(or(str_at(o, &["spec", "capacity", "storage"]), "0")),
            Value::from(access_modes(arr_at(o, &["spec", "accessModes"]))),
            Value::from(or(
                str_at(o, &["spec", "persistentVolumeReclaimPolicy"]),
                "Retain",
            )),
            Value::from(phase),
            Value::from(claim),
            Value::from(class),
            Value::from(or(
                str_at(o, &["spec", "volumeAttributesClassName"]),
                "<unset>",
            )),
            Value::from(str_at(o, &["status", "reason"])),
            age(o, now),
            Value::from(or(str_at(o, &["spec", "volumeMode"]), "Filesystem")),
        ]
    },
    default: false,
};

static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", D_PVC_PHASE),
        col("Volume", "string", D_PVC_VOLUME),
        col("Capacity", "string", D_PVC_CAPACITY),
        col("Access Modes", "string", D_PVC_ACCESS),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide("VolumeMode", "string", D_PVC_MODE),
    ],
    cells: |o, now| {
        let phase = if deleting(o) {
            "Terminating"
        } else {
            or(str_at(o, &["status", "phase"]), "Pending")
        };
        let volume = str_at(o, &["spec", "volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                or(str_at(o, &["status", "capacity", "storage"]), "0").to_string(),
                access_modes(arr_at(o, &["status", "accessModes"])),
            )
        };
        let class = match at(o, &["metadata", "annotations", STORAGE_CLASS_ANNOTATION])
            .and_then(Value::as_str)
        {
            Some(c) => c,
            None => str_at(o, &["spec", "storageClassName"]),
        };
        vec![
            name(o),
            Value::from(phase),
            Value::from(volume),
            Value::from(capacity),
            Value::from(modes),
            Value::from(class),
            Value::from(or(
                str_at(o, &["spec", "volumeAttributesClassName"]),
                "<unset>",
            )),
            age(o, now),
            Value::from(or(str_at(o, &["spec", "volumeMode"]), "Filesystem")),
        ]
    },
    default: false,
};

static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        AGE,
    ],
    cells: |o, now| {
        let mut resources: Vec<&String> = map_at(o, &["status", "hard"])
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        resources.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for r in resources {
            let used = or(str_at(o, &["status", "used", r]), "0");
            let hard = or(str_at(o, &["status", "hard", r]), "0");
            let entry = format!("{r}: {used}/{hard}");
            if r.split('.').next() == Some("limits") && r.contains('.') {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
        vec![
            name(o),
            Value::from(requests.join(", ")),
            Value::from(limits.join(", ")),
            age(o, now),
        ]
    },
    default: false,
};

/// `rbac.SubjectsStrings`, each list joined with `, `.
fn subjects(o: &Value) -> (Value, Value, Value) {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in arr_at(o, &["subjects"]) {
        let n = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "ServiceAccount" => sas.push(format!("{}/{n}", str_at(s, &["namespace"]))),
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            _ => {}
        }
    }
    (
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(sas.join(", ")),
    )
}

fn binding_cells(o: &Value, now: i64) -> Vec<Value> {
    let (users, groups, sas) = subjects(o);
    vec![
        name(o),
        Value::from(format!(
            "{}/{}",
            str_at(o, &["roleRef", "kind"]),
            str_at(o, &["roleRef", "name"])
        )),
        age(o, now),
        users,
        groups,
        sas,
    ]
}

static ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "string", D_RB_ROLEREF),
        AGE,
        wide("Users", "string", "Users in the roleBinding"),
        wide("Groups", "string", "Groups in the roleBinding"),
        wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the roleBinding",
        ),
    ],
    cells: binding_cells,
    default: false,
};

static CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "string", D_CRB_ROLEREF),
        AGE,
        wide("Users", "string", "Users in the clusterRoleBinding"),
        wide("Groups", "string", "Groups in the clusterRoleBinding"),
        wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the clusterRoleBinding",
        ),
    ],
    cells: binding_cells,
    default: false,
};

static LEASE: Printer = Printer {
    columns: &[NAME, col("Holder", "string", D_LEASE_HOLDER), AGE],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(str_at(o, &["spec", "holderIdentity"])),
            age(o, now),
        ]
    },
    default: false,
};

static POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(
                int_or_string(at(o, &["spec", "minAvailable"])).unwrap_or_else(|| "N/A".into()),
            ),
            Value::from(
                int_or_string(at(o, &["spec", "maxUnavailable"])).unwrap_or_else(|| "N/A".into()),
            ),
            Value::from(int_at(o, &["status", "disruptionsAllowed"])),
            age(o, now),
        ]
    },
    default: false,
};

static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Provisioner", "string", D_SC_PROVISIONER),
        col("ReclaimPolicy", "string", D_SC_RECLAIM),
        col("VolumeBindingMode", "string", D_SC_BINDING),
        col("AllowVolumeExpansion", "string", D_SC_EXPANSION),
        AGE,
    ],
    cells: |o, now| {
        let is_default = |k: &str| str_at(o, &["metadata", "annotations", k]) == "true";
        let mut n = str_at(o, &["metadata", "name"]).to_string();
        if is_default("storageclass.kubernetes.io/is-default-class")
            || is_default("storageclass.beta.kubernetes.io/is-default-class")
        {
            n.push_str(" (default)");
        }
        vec![
            Value::from(n),
            Value::from(str_at(o, &["provisioner"])),
            Value::from(or(str_at(o, &["reclaimPolicy"]), "Delete")),
            Value::from(or(str_at(o, &["volumeBindingMode"]), "Immediate")),
            Value::from(bool_at(o, &["allowVolumeExpansion"]).unwrap_or(false)),
            age(o, now),
        ]
    },
    default: false,
};

static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Value", "integer", D_PC_VALUE),
        col("Global-Default", "boolean", D_PC_DEFAULT),
        AGE,
        col("PreemptionPolicy", "string", D_PC_PREEMPTION),
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(int_at(o, &["value"])),
            Value::from(bool_at(o, &["globalDefault"]).unwrap_or(false)),
            age(o, now),
            // v1 defaulting: PreemptLowerPriority.
            Value::from(or(str_at(o, &["preemptionPolicy"]), "PreemptLowerPriority")),
        ]
    },
    default: false,
};

static SCALE: Printer = Printer {
    columns: &[
        Column { format: "", ..NAME },
        col("Desired", "integer", D_SCALE_SPEC_REPLICAS),
        col("Available", "integer", D_SCALE_STATUS_REPLICAS),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(int_at(o, &["spec", "replicas"])),
            Value::from(int_at(o, &["status", "replicas"])),
            age(o, now),
        ]
    },
    default: false,
};

// ---------------------------------------------------------------------------------------------
// Column descriptions (the Go types' SwaggerDoc, as in the OpenAPI documents)
// ---------------------------------------------------------------------------------------------

const D_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const D_CREATED: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const D_POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const D_POD_NODE: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const D_POD_NOMINATED: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const D_POD_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
const D_RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const D_RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const D_RC_READY: &str = "The number of ready replicas for this replication controller.";
const D_RC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_RS_SPEC_REPLICAS: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const D_RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const D_RS_READY: &str =
    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
const D_RS_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_DS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const D_DS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const D_DS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const D_DS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
const D_DS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const D_POD_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const D_DS_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_JOB_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const D_JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_CJ_SCHEDULE: &str = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
const D_CJ_TZ: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const D_CJ_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
const D_CJ_ACTIVE: &str = "A list of pointers to currently running jobs.";
const D_CJ_LAST: &str = "Information when was the last time the job was successfully scheduled.";
const D_SVC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const D_SVC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const D_SVC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const D_SVC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const D_SVC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
const D_EP_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
const D_NODE_KUBELET: &str = "Kubelet Version reported by the node.";
const D_NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const D_NODE_OS: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const D_NODE_KERNEL: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const D_NODE_CRI: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
const D_EV_LAST: &str = "The time at which the most recent occurrence of this event was recorded.";
const D_EV_TYPE: &str =
    "Type of this event (Normal, Warning), new types could be added in the future";
const D_EV_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const D_EV_OBJECT: &str = "The object that this event is about.";
const D_EV_FIELDPATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const D_EV_SOURCE: &str =
    "The component reporting this event. Should be a short machine understandable string.";
const D_EV_MESSAGE: &str = "A human-readable description of the status of this operation.";
const D_EV_FIRST: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const D_EV_COUNT: &str = "The number of times this event has occurred.";
const D_SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
const D_SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
const D_SA_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
const D_PV_CAPACITY: &str = "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity";
const D_PV_ACCESS: &str = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes";
const D_PV_RECLAIM: &str = "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming";
const D_PV_PHASE: &str = "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase";
const D_PV_CLAIM: &str = "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding";
const D_PV_REASON: &str = "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.";
const D_PV_MODE: &str = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.";
const D_PVC_PHASE: &str = "phase represents the current phase of PersistentVolumeClaim.";
const D_PVC_VOLUME: &str =
    "volumeName is the binding reference to the PersistentVolume backing this claim.";
const D_PVC_CAPACITY: &str = "capacity represents the actual resources of the underlying volume.";
const D_PVC_ACCESS: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
const D_PVC_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";
const D_DEP_UPDATED: &str = "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
const D_DEP_AVAILABLE: &str = "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
const D_DEP_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
const D_CM_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
const D_NP_PODSELECTOR: &str = "podSelector selects the pods to which this NetworkPolicy object applies. The array of rules is applied to any pods selected by this field. An empty selector matches all pods in the policy's namespace. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is optional. If it is not specified, it defaults to an empty selector.";
const D_RB_ROLEREF: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const D_CRB_ROLEREF: &str = "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const D_LEASE_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
const D_SC_PROVISIONER: &str = "provisioner indicates the type of the provisioner.";
const D_SC_RECLAIM: &str = "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.";
const D_SC_BINDING: &str = "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.";
const D_SC_EXPANSION: &str =
    "allowVolumeExpansion shows whether the storage class allow volume expand.";
const D_PC_VALUE: &str = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.";
const D_PC_DEFAULT: &str = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.";
const D_PC_PREEMPTION: &str = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.";
const D_ES_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
const D_ES_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
const D_ES_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
const D_CR_REVISION: &str = "Revision indicates the revision of the state represented by Data.";
const D_SCALE_SPEC_REPLICAS: &str =
    "replicas is the desired number of instances for the scaled object.";
const D_SCALE_STATUS_REPLICAS: &str =
    "replicas is the actual number of observed instances of the scaled object.";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2024-05-01T10:00:00Z
    const T0: i64 = 1_714_557_600_000;
    const MIN: i64 = 60_000;

    fn pod(spec: Value, status: Value) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1",
               "metadata": {"name": "p", "namespace": "ns", "creationTimestamp": "2024-05-01T10:00:00Z"},
               "spec": spec, "status": status})
    }

    fn two_containers() -> Value {
        json!({"containers": [{"name": "a", "image": "img-a"}, {"name": "b", "image": "img-b"}]})
    }

    /// (READY, STATUS, RESTARTS) of a pod, 10 minutes after its creation.
    fn pod_summary(p: &Value) -> (String, String, String) {
        let c = POD.cells(p, T0 + 10 * MIN);
        let s = |i: usize| c[i].as_str().unwrap().to_string();
        (s(1), s(2), s(3))
    }

    fn running(name: &str, ready: bool, restarts: i64) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": "2024-05-01T10:01:00Z"}}})
    }

    #[test]
    fn pod_pending_without_statuses() {
        let p = pod(two_containers(), json!({"phase": "Pending"}));
        assert_eq!(
            pod_summary(&p),
            ("0/2".into(), "Pending".into(), "0".into())
        );
    }

    #[test]
    fn pod_running_and_ready() {
        let p = pod(
            two_containers(),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [running("a", true, 0), running("b", true, 0)]}),
        );
        assert_eq!(
            pod_summary(&p),
            ("2/2".into(), "Running".into(), "0".into())
        );
    }

    #[test]
    fn pod_waiting_reason_and_restarts_with_last_restart_age() {
        let p = pod(
            two_containers(),
            json!({"phase": "Running", "containerStatuses": [
                running("a", true, 0),
                {"name": "b", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T10:07:00Z"}}}
            ]}),
        );
        assert_eq!(
            pod_summary(&p),
            ("1/2".into(), "CrashLoopBackOff".into(), "4 (3m ago)".into())
        );
    }

    #[test]
    fn pod_container_creating_and_image_errors() {
        let p = pod(
            two_containers(),
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}
            ]}),
        );
        // Statuses are walked from the last, so the first container's reason wins.
        assert_eq!(pod_summary(&p).1, "ContainerCreating");
    }

    #[test]
    fn pod_terminated_reasons() {
        let term = |t: Value| {
            pod(
                json!({"containers": [{"name": "a"}]}),
                json!({"phase": "Failed", "containerStatuses": [
                    {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": t}}]}),
            )
        };
        assert_eq!(
            pod_summary(&term(json!({"exitCode": 0, "reason": "Completed"}))).1,
            "Completed"
        );
        assert_eq!(
            pod_summary(&term(json!({"exitCode": 137, "reason": "OOMKilled"}))).1,
            "OOMKilled"
        );
        assert_eq!(pod_summary(&term(json!({"exitCode": 2}))).1, "ExitCode:2");
        assert_eq!(
            pod_summary(&term(json!({"exitCode": 0, "signal": 9}))).1,
            "Signal:9"
        );
    }

    #[test]
    fn pod_completed_with_a_running_container() {
        let mk = |ready_condition: &str| {
            pod(
                two_containers(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready_condition}],
                       "containerStatuses": [
                           running("a", true, 0),
                           {"name": "b", "ready": false, "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            )
        };
        assert_eq!(
            pod_summary(&mk("True")),
            ("1/2".into(), "Running".into(), "0".into())
        );
        assert_eq!(pod_summary(&mk("False")).1, "NotReady");
    }

    #[test]
    fn pod_init_containers() {
        let spec = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}],
                          "containers": [{"name": "a"}]});
        let init = |statuses: Value| {
            pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": statuses,
                                     "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                                                            "state": {"waiting": {"reason": "PodInitializing"}}}]}),
            )
        };
        let done = json!({"name": "i1", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        // The second init container runs: Init:1/2.
        let p = init(
            json!([done, {"name": "i2", "ready": false, "restartCount": 0, "state": {"running": {}}}]),
        );
        assert_eq!(
            pod_summary(&p),
            ("0/1".into(), "Init:1/2".into(), "0".into())
        );
        // Waiting on PodInitializing counts as running.
        let p = init(
            json!([{"name": "i1", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]),
        );
        assert_eq!(pod_summary(&p).1, "Init:0/2");
        // Crash looping, with init restarts counted.
        let p = init(
            json!([done, {"name": "i2", "ready": false, "restartCount": 3,
                                   "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
        );
        assert_eq!(
            pod_summary(&p),
            ("0/1".into(), "Init:CrashLoopBackOff".into(), "3".into())
        );
        // Failed with a reason, or only an exit code / signal.
        let failed = |t: Value| {
            init(
                json!([{"name": "i1", "ready": false, "restartCount": 0, "state": {"terminated": t}}]),
            )
        };
        assert_eq!(
            pod_summary(&failed(json!({"exitCode": 1, "reason": "Error"}))).1,
            "Init:Error"
        );
        assert_eq!(
            pod_summary(&failed(json!({"exitCode": 3}))).1,
            "Init:ExitCode:3"
        );
        assert_eq!(
            pod_summary(&failed(
                json!({"exitCode": 143, "signal": 15, "reason": ""})
            ))
            .1,
            "Init:Signal:15"
        );
    }

    #[test]
    fn pod_sidecar_counts_as_a_container() {
        let p = pod(
            json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                   "containers": [{"name": "a"}]}),
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                   "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                                              "state": {"running": {}},
                                              "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T10:05:00Z"}}}],
                   "containerStatuses": [running("a", true, 1)]}),
        );
        assert_eq!(
            pod_summary(&p),
            ("2/2".into(), "Running".into(), "3 (5m ago)".into())
        );
    }

    #[test]
    fn pod_terminating_unknown_evicted_gated() {
        let mut p = pod(two_containers(), json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:09:00Z");
        assert_eq!(pod_summary(&p).1, "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(pod_summary(&p).1, "Unknown");
        // A pod that has finished keeps its phase while it is deleted.
        let mut done = pod(two_containers(), json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:09:00Z");
        assert_eq!(pod_summary(&done).1, "Succeeded");
        let evicted = pod(
            two_containers(),
            json!({"phase": "Failed", "reason": "Evicted"}),
        );
        assert_eq!(pod_summary(&evicted).1, "Evicted");
        let gated = pod(
            two_containers(),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(pod_summary(&gated).1, "SchedulingGated");
    }

    #[test]
    fn pod_wide_cells_and_conditions() {
        let mut p = pod(
            json!({"containers": [{"name": "a"}], "nodeName": "n1",
                   "readinessGates": [{"conditionType": "x/one"}, {"conditionType": "x/two"}]}),
            json!({"phase": "Succeeded", "podIPs": [{"ip": "10.0.0.7"}],
                   "conditions": [{"type": "x/one", "status": "True"}, {"type": "x/two", "status": "False"}]}),
        );
        let c = POD.cells(&p, T0 + 90_000);
        assert_eq!(c.len(), POD.columns.len());
        assert_eq!(c[4], "90s");
        assert_eq!(
            &c[5..],
            &[
                json!("10.0.0.7"),
                json!("n1"),
                json!("<none>"),
                json!("1/2")
            ]
        );
        let cond = row_conditions(&POD, &p).unwrap();
        assert_eq!(cond[0]["reason"], "Succeeded");
        p["status"]["phase"] = json!("Running");
        assert!(row_conditions(&POD, &p).is_none());
        assert_eq!(POD.cells(&pod(json!({}), json!({})), T0)[5], "<none>");
    }

    fn names(p: &Printer) -> Vec<(&'static str, u8)> {
        p.columns.iter().map(|c| (c.name, c.priority)).collect()
    }

    #[test]
    fn column_sets_of_common_kinds() {
        assert_eq!(
            names(printer("", "Pod")),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
        );
        assert_eq!(
            names(printer("apps", "Deployment")),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        assert_eq!(
            names(printer("", "Service")),
            [
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1)
            ]
        );
        assert_eq!(
            names(printer("", "Namespace")),
            [("Name", 0), ("Status", 0), ("Age", 0)]
        );
        assert_eq!(
            names(printer("", "ConfigMap")),
            [("Name", 0), ("Data", 0), ("Age", 0)]
        );
        assert_eq!(
            names(printer("", "Secret")),
            [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]
        );
        assert_eq!(
            names(printer("", "Node"))[..5],
            [
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0)
            ]
        );
        assert_eq!(
            names(printer("rbac.authorization.k8s.io", "Role")),
            [("Name", 0), ("Created At", 0)]
        );
        assert_eq!(
            printer("rbac.authorization.k8s.io", "Role").columns[1].kind,
            "date"
        );
        assert!(std::ptr::eq(
            printer("events.k8s.io", "Event"),
            printer("", "Event")
        ));
        let name = &printer("apps", "Deployment").columns[0];
        assert_eq!((name.format, name.kind), ("name", "string"));
        assert!(name
            .description
            .starts_with("Name must be unique within a namespace."));
    }

    #[test]
    fn cells_of_workloads() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T08:00:00Z"},
                       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                                     {"name": "log", "image": "busybox"}]}}},
                       "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            DEPLOYMENT.cells(&d, T0),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("120m"),
                json!("nginx,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web,tier in (a,b)")
            ]
        );
        let rs = json!({"metadata": {"name": "web-1"}, "spec": {"selector": {}}});
        let c = REPLICA_SET.cells(&rs, T0);
        assert_eq!(
            &c[1..5],
            &[json!(1), json!(0), json!(0), json!("<unknown>")]
        );
        assert_eq!(c[7], "<none>");
        let ss = json!({"metadata": {"name": "db"}, "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert_eq!(STATEFUL_SET.cells(&ss, T0)[1], "1/2");
        let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 3},
                         "status": {"succeeded": 3, "startTime": "2024-05-01T09:00:00Z", "completionTime": "2024-05-01T09:01:05Z",
                                    "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            &JOB.cells(&job, T0)[1..4],
            &[json!("Complete"), json!("3/3"), json!("65s")]
        );
        let job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 4}, "status": {"startTime": "2024-05-01T09:50:00Z"}});
        assert_eq!(
            &JOB.cells(&job, T0)[1..4],
            &[json!("Running"), json!("0/1 of 4"), json!("10m")]
        );
        let cj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *"}, "status": {"active": [{}]}});
        assert_eq!(
            &CRON_JOB.cells(&cj, T0)[1..6],
            &[
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn cells_of_services_and_networking() {
        let svc = json!({"metadata": {"name": "web"},
                         "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                                  "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                                  "selector": {"b": "2", "a": "1"}}});
        assert_eq!(
            SERVICE.cells(&svc, T0),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.5"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("<unknown>"),
                json!("a=1,b=2")
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
                        "status": {"loadBalancer": {}}});
        assert_eq!(
            &SERVICE.cells(&lb, T0)[2..5],
            &[json!("<none>"), json!("<pending>"), json!("443/TCP")]
        );
        let ext = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(SERVICE.cells(&ext, T0)[3], "example.com");
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}], "ports": [{"port": 8080}]}]});
        assert_eq!(
            ENDPOINTS.cells(&ep, T0)[1],
            "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more..."
        );
        assert_eq!(
            ENDPOINTS.cells(&json!({"metadata": {"name": "e"}}), T0)[1],
            "<none>"
        );
        let ing = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example"}, {}], "tls": [{}]},
                         "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}});
        assert_eq!(
            &INGRESS.cells(&ing, T0)[1..5],
            &[
                json!("nginx"),
                json!("a.example"),
                json!("1.2.3.4"),
                json!("80, 443")
            ]
        );
    }

    #[test]
    fn cells_of_config_and_cluster_objects() {
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": "2024-04-29T10:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(
            NAMESPACE.cells(&ns, T0),
            [json!("kube-system"), json!("Active"), json!("2d")]
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(CONFIG_MAP.cells(&cm, T0)[1], 3);
        let s = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            &SECRET.cells(&s, T0)[1..3],
            &[json!("kubernetes.io/tls"), json!(2)]
        );
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}},
                          "spec": {"unschedulable": true},
                          "status": {"conditions": [{"type": "Ready", "status": "False"}],
                                     "nodeInfo": {"kubeletVersion": "v1.32.4"},
                                     "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}]}});
        assert_eq!(
            NODE.cells(&node, T0)[..],
            [
                json!("n1"),
                json!("NotReady,SchedulingDisabled"),
                json!("control-plane,edge"),
                json!("<unknown>"),
                json!("v1.32.4"),
                json!("192.168.1.5"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                                     {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}, {"kind": "User", "name": "bob"}]});
        assert_eq!(
            ROLE_BINDING.cells(&rb, T0)[1..],
            [
                json!("ClusterRole/view"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("devs"),
                json!("ns/sa")
            ]
        );
        let pvc = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1", "storageClassName": "fast"},
                         "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}});
        assert_eq!(
            PERSISTENT_VOLUME_CLAIM.cells(&pvc, T0)[1..7],
            [
                json!("Bound"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWO,ROX"),
                json!("fast"),
                json!("<unset>")
            ]
        );
        let rq = json!({"metadata": {"name": "q"}, "status": {"hard": {"pods": "10", "limits.cpu": "4", "requests.cpu": "2"},
                                                             "used": {"pods": "3", "requests.cpu": "500m"}}});
        assert_eq!(
            RESOURCE_QUOTA.cells(&rq, T0)[1..3],
            [
                json!("pods: 3/10, requests.cpu: 500m/2"),
                json!("limits.cpu: 0/4")
            ]
        );
        let role =
            json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T10:00:00+02:00"}});
        assert_eq!(
            DEFAULT.cells(&role, T0),
            [json!("r"), json!("2024-05-01T08:00:00Z")]
        );
        assert_eq!(DEFAULT.cells(&json!({}), T0)[1], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn cells_of_events_in_both_groups() {
        let core = json!({"metadata": {"name": "p.17a"}, "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"},
                          "reason": "Pulled", "message": " pulled \n", "type": "Normal", "count": 3,
                          "firstTimestamp": "2024-05-01T09:00:00Z", "lastTimestamp": "2024-05-01T09:58:00Z",
                          "source": {"component": "kubelet", "host": "n1"}});
        assert_eq!(
            EVENT.cells(&core, T0),
            [
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/p"),
                json!("spec.containers{a}"),
                json!("kubelet, n1"),
                json!("pulled"),
                json!("60m"),
                json!(3),
                json!("p.17a")
            ]
        );
        let v1 = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Node"}, "note": "hi", "type": "Warning",
                        "reason": "X", "eventTime": "2024-05-01T09:59:30.123456Z", "reportingController": "ctl"});
        let c = EVENT.cells(&v1, T0);
        assert_eq!(
            c[..4],
            [json!("29s"), json!("Warning"), json!("X"), json!("node")]
        );
        assert_eq!(
            (&c[5], &c[6], &c[7], &c[8]),
            (&json!("ctl"), &json!("hi"), &json!("29s"), &json!(1))
        );
    }

    #[test]
    fn human_durations() {
        let s = 1000;
        let cases = [
            (-3 * s, "<invalid>"),
            (-1500, "0s"),
            (0, "0s"),
            (119 * s, "119s"),
            (120 * s, "2m"),
            (125 * s, "2m5s"),
            (10 * MIN, "10m"),
            (179 * MIN, "179m"),
            (3 * 60 * MIN, "3h"),
            (3 * 60 * MIN + 20 * MIN, "3h20m"),
            (8 * 60 * MIN, "8h"),
            (47 * 60 * MIN, "47h"),
            (50 * 60 * MIN, "2d2h"),
            (8 * 24 * 60 * MIN, "8d"),
            (800 * 24 * 60 * MIN, "2y70d"),
            (3650 * 24 * 60 * MIN, "10y"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn rfc3339_parsing_and_formatting() {
        assert_eq!(parse_rfc3339("2024-05-01T10:00:00Z"), Some(T0));
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00.5+02:00"), Some(T0 + 500));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-05-01"), None);
        assert_eq!(parse_rfc3339("2024-05-01T10:00:00"), None);
        assert_eq!(format_rfc3339(T0 + 999), "2024-05-01T10:00:00Z");
        assert_eq!(
            format_rfc3339(parse_rfc3339("2000-02-29T23:59:59Z").unwrap()),
            "2000-02-29T23:59:59Z"
        );
    }

    fn v1(include: IncludeObject) -> TableOptions {
        TableOptions {
            version: MetaVersion::V1,
            include,
        }
    }

    #[test]
    fn list_tables_embed_metadata_objects_or_nothing() {
        let a = br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","resourceVersion":"5"},"data":{"k":"v"}}"#;
        let meta = ListMeta {
            resource_version: "9".into(),
            continue_token: Some("tok"),
            remaining: Some(4),
        };
        let t: Value = serde_json::from_slice(&list_table(
            "",
            "ConfigMap",
            [&a[..]],
            &meta,
            v1(IncludeObject::Metadata),
            T0,
        ))
        .unwrap();
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "9", "continue": "tok", "remainingItemCount": 4})
        );
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": D_NAME, "priority": 0})
        );
        assert_eq!(t["rows"][0]["cells"], json!(["a", 1, "<unknown>"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a", "resourceVersion": "5"}})
        );
        let t: Value = serde_json::from_slice(&list_table(
            "",
            "ConfigMap",
            [&a[..]],
            &meta,
            v1(IncludeObject::Object),
            T0,
        ))
        .unwrap();
        assert_eq!(t["rows"][0]["object"]["data"], json!({"k": "v"}));
        let beta = TableOptions {
            version: MetaVersion::V1beta1,
            include: IncludeObject::None,
        };
        let t: Value =
            serde_json::from_slice(&list_table("", "ConfigMap", [&a[..]], &meta, beta, T0))
                .unwrap();
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let empty: Value = serde_json::from_slice(&list_table(
            "",
            "ConfigMap",
            [],
            &ListMeta::default(),
            v1(IncludeObject::Metadata),
            T0,
        ))
        .unwrap();
        assert_eq!(empty["rows"], json!([]));
        assert_eq!(empty["metadata"], json!({}));
        let empty: Value = serde_json::from_slice(&list_table(
            "",
            "LimitRange",
            [],
            &ListMeta::default(),
            v1(IncludeObject::Metadata),
            T0,
        ))
        .unwrap();
        assert_eq!(empty["rows"], Value::Null);
    }

    #[test]
    fn watch_event_tables_carry_columns_once() {
        let p = serde_json::to_vec(&pod(two_containers(), json!({"phase": "Pending"}))).unwrap();
        let first: Value = serde_json::from_slice(
            &table_for_object(&p, v1(IncludeObject::Metadata), true, T0).unwrap(),
        )
        .unwrap();
        assert_eq!(first["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(first["rows"].as_array().unwrap().len(), 1);
        let later: Value = serde_json::from_slice(
            &table_for_object(&p, v1(IncludeObject::Metadata), false, T0).unwrap(),
        )
        .unwrap();
        assert_eq!(later["columnDefinitions"], Value::Null);
        assert_eq!(later["rows"][0]["cells"][0], "p");
        // The bookmark ending the initial events embeds metadata whatever includeObject says.
        let bm = br#"{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"7","annotations":{"k8s.io/initial-events-end":"true"}}}"#;
        let t: Value = serde_json::from_slice(
            &table_for_object(bm, v1(IncludeObject::None), false, T0).unwrap(),
        )
        .unwrap();
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn partial_object_metadata_conversions() {
        let obj = br#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[]}}"#;
        let p: Value =
            serde_json::from_slice(&partial_object_metadata(obj, MetaVersion::V1)).unwrap();
        assert_eq!(
            p,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "p", "labels": {"a": "b"}}})
        );
        let meta = ListMeta {
            resource_version: "3".into(),
            ..Default::default()
        };
        let l: Value = serde_json::from_slice(&partial_object_metadata_list(
            [&obj[..]],
            &meta,
            MetaVersion::V1,
        ))
        .unwrap();
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["metadata"], json!({"resourceVersion": "3"}));
        assert_eq!(l["items"][0]["metadata"]["name"], "p");
        // Whole responses: a Status passes, a mismatch is refused.
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Success"}"#;
        assert_eq!(
            &convert(
                status,
                MetaTarget::PartialObjectMetadata(MetaVersion::V1),
                T0
            )
            .unwrap()[..],
            &status[..]
        );
        let err = convert(
            obj,
            MetaTarget::PartialObjectMetadataList(MetaVersion::V1),
            T0,
        )
        .unwrap_err();
        assert_eq!(err, "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Pod)");
        let list = br#"{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"4"},"items":[{"metadata":{"name":"d"},"spec":{"replicas":2}}]}"#;
        let err =
            convert(list, MetaTarget::PartialObjectMetadata(MetaVersion::V1), T0).unwrap_err();
        assert!(err.ends_with("is a list (*apps.DeploymentList)"), "{err}");
        let t: Value = serde_json::from_slice(
            &convert(list, MetaTarget::Table(v1(IncludeObject::None)), T0).unwrap(),
        )
        .unwrap();
        assert_eq!(t["metadata"]["resourceVersion"], "4");
        assert_eq!(t["rows"][0]["cells"][1], "0/2");
    }
}

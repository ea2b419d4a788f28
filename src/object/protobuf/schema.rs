//! The schema tables (generated at build time by `src/object/protobuf/schema_gen.rs (run by build.rs)`) and lookups.

/// One protobuf message of the Kubernetes API.
#[derive(Debug)]
pub(super) struct Message {
    /// Rust path in `k8s-pb` (`api::core::v1::Pod`), for diagnostics.
    pub name: &'static str,
    pub special: Special,
    /// In declaration order (Go struct order, which is kube-apiserver's JSON order).
    pub fields: &'static [Field],
    /// Indices into `fields`, ordered by field number.
    pub by_tag: &'static [u8],
}

#[derive(Debug)]
pub(super) struct Field {
    pub tag: u32,
    /// JSON name (empty for inline fields).
    pub json: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// An embedded struct whose fields JSON spreads into the parent (`Volume.volumeSource`).
    pub inline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
    Message(u16),
    /// map<string, string>
    MapString,
    /// map<string, bytes>
    MapBytes,
    /// map<string, message>
    MapMessage(u16),
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    None,
    /// metav1.Time {seconds, nanos} ⇄ RFC 3339 (seconds precision), `null` when zero.
    Time,
    /// metav1.MicroTime ⇄ RFC 3339 with 6 fractional digits.
    MicroTime,
    /// metav1.Duration {duration (ns)} ⇄ Go duration string.
    Duration,
    /// metav1.FieldsV1 {Raw} ⇄ embedded JSON.
    FieldsV1,
    /// resource.Quantity {string} ⇄ string.
    Quantity,
    /// intstr.IntOrString {type, intVal, strVal} ⇄ number or string.
    IntOrString,
    /// runtime.RawExtension {raw} ⇄ embedded JSON (or a nested protobuf envelope).
    RawExtension,
    /// apiextensions JSON {raw} ⇄ embedded JSON.
    Json,
    /// JSONSchemaPropsOrBool {allows, schema} ⇄ bool or schema.
    SchemaOrBool,
    /// JSONSchemaPropsOrArray {schema, jSONSchemas} ⇄ schema or array of schemas.
    SchemaOrArray,
    /// JSONSchemaPropsOrStringArray {schema, property} ⇄ schema or array of strings.
    SchemaOrStringArray,
    /// `+protobuf.nullable=true` string-list wrappers (metav1.Verbs, ExtraValue) ⇄ array.
    StringList,
}

include!(concat!(env!("OUT_DIR"), "/k8s_protobuf_schema.rs"));

pub(super) fn message(i: u16) -> &'static Message {
    &MESSAGES[i as usize]
}

impl Message {
    /// The field with number `tag`.
    pub fn field_index(&self, tag: u32) -> Option<usize> {
        let by_tag = self.by_tag;
        by_tag
            .binary_search_by_key(&tag, |&i| self.fields[i as usize].tag)
            .ok()
            .map(|k| by_tag[k] as usize)
    }
}

/// The message for (apiVersion, kind). Kinds of meta.k8s.io/v1 (`Status`, `WatchEvent`,
/// `DeleteOptions`, `APIResourceList`, ...) are found under any apiVersion, as kube-apiserver
/// serves them (`Status` goes out as `v1`).
pub(super) fn lookup_kind(api_version: &str, kind: &str) -> Option<u16> {
    let kind = kind.to_ascii_lowercase();
    let find = |av: &str| {
        KINDS
            .binary_search_by(|(a, k, _)| (*a, *k).cmp(&(av, kind.as_str())))
            .ok()
            .map(|i| KINDS[i].2)
    };
    find(api_version).or_else(|| find("meta.k8s.io/v1"))
}

/// Where the tables came from (package versions), for diagnostics.
#[allow(dead_code)]
pub(super) fn source() -> &'static str {
    SCHEMA_SOURCE
}

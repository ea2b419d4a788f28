//! Build-time generator (included by build.rs, not compiled into the library).
//! Derives the schema of the Kubernetes built-in protobuf messages for the descriptor-driven
//! transcoder in `src/object/protobuf/`, and writes it as static tables to
//! `$OUT_DIR/k8s_protobuf_schema.rs`.
//!
//! Two crates.io packages are read as source text (neither is compiled into kapi; both are
//! dev-dependencies, found with `cargo metadata`):
//! - `k8s-pb`: prost code generated from the upstream `generated.proto` files. It gives every
//!   message, its fields' numbers, wire types and message types, in declaration order (which is
//!   the Go struct order, hence kube-apiserver's JSON order).
//! - `k8s-openapi`: serde code generated from the upstream OpenAPI spec. It gives each field's JSON
//!   name (proto names differ from JSON names in places: `aPIGroup`/`apiGroup`, `Port`, `$ref`,
//!   `x-kubernetes-*`, and prost's snake_case loses acronyms: `pod_ip` is `podIP`) and reveals the
//!   embedded structs that JSON inlines (`Volume.volumeSource`, `Probe.handler`, ...): a message
//!   field with no JSON counterpart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn generate() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let pb_src = locate("k8s-pb");
    let oa_src = locate("k8s-openapi");
    let (msgs, resources) = parse_k8s_pb(&pb_src);
    let oa = OpenApi::parse(&oa_src);
    let source = format!(
        "{} + {}",
        pb_src
            .parent()
            .and_then(Path::file_name)
            .unwrap()
            .to_string_lossy(),
        oa_src
            .parent()
            .and_then(Path::file_name)
            .unwrap()
            .to_string_lossy()
    );
    let code = render(&msgs, &resources, &oa, &source);
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("k8s_protobuf_schema.rs");
    std::fs::write(out, code).expect("write k8s_protobuf_schema.rs");
}

// ---------------------------------------------------------------------------------------------
// Locating the sources.

/// The `src` folder of a package in kapi's dependency graph.
fn locate(name: &str) -> PathBuf {
    if let Some(p) = locate_with_metadata(name) {
        return p;
    }
    // Fallback: the plain cargo registry layout.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = home {
        let mut found: Vec<PathBuf> = Vec::new();
        if let Ok(regs) = std::fs::read_dir(home.join("registry/src")) {
            for reg in regs.flatten() {
                if let Ok(pkgs) = std::fs::read_dir(reg.path()) {
                    for p in pkgs.flatten() {
                        let f = p.file_name().to_string_lossy().into_owned();
                        if f.strip_prefix(name)
                            .and_then(|r| r.strip_prefix('-'))
                            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                        {
                            found.push(p.path().join("src"));
                        }
                    }
                }
            }
        }
        found.sort();
        if let Some(p) = found.pop() {
            return p;
        }
    }
    panic!(
        "protobuf schema: cannot find the source of the `{name}` crate (kapi's build script reads \
         it; keep it among the dev-dependencies)"
    );
}

fn locate_with_metadata(name: &str) -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let run = |offline: bool| {
        let mut c = Command::new(&cargo);
        c.args(["metadata", "--format-version", "1"])
            .current_dir(&dir);
        if offline {
            c.arg("--offline");
        }
        c.output().ok().filter(|o| o.status.success())
    };
    let out = run(true).or_else(|| run(false))?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut best: Option<(String, PathBuf)> = None;
    for p in meta["packages"].as_array()? {
        if p["name"] != name {
            continue;
        }
        let version = p["version"].as_str()?.to_string();
        let manifest = PathBuf::from(p["manifest_path"].as_str()?);
        let src = manifest.parent()?.join("src");
        if best
            .as_ref()
            .is_none_or(|(v, _)| version_key(&version) > version_key(v))
        {
            best = Some((version, src));
        }
    }
    best.map(|(_, p)| p).filter(|p| p.is_dir())
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-'])
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn module_of(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root)
        .unwrap()
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("::")
}

// ---------------------------------------------------------------------------------------------
// k8s-pb: messages and fields.

#[derive(Debug)]
struct PbMsg {
    module: String,
    name: String,
    /// `+protobuf.nullable=true` wrappers of a string list (`Verbs`, `ExtraValue`).
    list_wrapper: bool,
    fields: Vec<PbField>,
}

#[derive(Debug)]
struct PbField {
    rust: String,
    tag: u32,
    ty: PbTy,
    repeated: bool,
}

#[derive(Debug, Clone)]
enum PbTy {
    Scalar(&'static str),
    Message(String),
    /// map<string, V>
    Map(Box<PbTy>),
}

impl PbMsg {
    fn path(&self) -> String {
        format!("{}::{}", self.module, self.name)
    }
}

struct Resource {
    module: String,
    api_version: String,
}

fn parse_k8s_pb(src: &Path) -> (Vec<PbMsg>, Vec<Resource>) {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut msgs = Vec::new();
    let mut resources = Vec::new();
    for f in files {
        if f.file_name().is_none_or(|n| n != "mod.rs") {
            continue;
        }
        let module = module_of(src, f.parent().unwrap());
        let text = std::fs::read_to_string(&f).unwrap();
        parse_pb_file(&module, &text, &mut msgs, &mut resources);
    }
    assert!(
        msgs.len() > 500,
        "protobuf schema: found only {} messages in {}",
        msgs.len(),
        src.display()
    );
    (msgs, resources)
}

fn parse_pb_file(module: &str, text: &str, msgs: &mut Vec<PbMsg>, res: &mut Vec<Resource>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut docs = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        if t.starts_with("///") || t.starts_with("#[doc") {
            docs.push_str(t);
            docs.push('\n');
            i += 1;
            continue;
        }
        if t.starts_with("#[") {
            i += 1;
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let mut body = String::new();
            if !rest.trim_end().ends_with("{}") {
                i += 1;
                while i < lines.len() && lines[i] != "}" {
                    let l = lines[i].trim();
                    if !l.starts_with("///") && !l.starts_with("//") {
                        body.push_str(l);
                        body.push(' ');
                    }
                    i += 1;
                }
            }
            let fields = parse_pb_fields(module, &name, &body);
            let list_wrapper = docs.contains("+protobuf.nullable=true")
                && fields.len() == 1
                && fields[0].rust == "items"
                && fields[0].repeated
                && matches!(fields[0].ty, PbTy::Scalar("string"));
            msgs.push(PbMsg {
                module: module.to_string(),
                name,
                list_wrapper,
                fields,
            });
        } else if line.starts_with("impl crate::Resource for ") {
            let mut api_version = None;
            while i < lines.len() && lines[i] != "}" {
                if let Some(v) = lines[i]
                    .trim()
                    .strip_prefix("const API_VERSION: &'static str = ")
                {
                    api_version = Some(v.trim_end_matches(';').trim_matches('"').to_string());
                }
                i += 1;
            }
            if let Some(api_version) = api_version {
                res.push(Resource {
                    module: module.to_string(),
                    api_version,
                });
            }
        }
        docs.clear();
        i += 1;
    }
}

fn parse_pb_fields(module: &str, msg: &str, body: &str) -> Vec<PbField> {
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("#[prost(") {
        let after = &rest[at + "#[prost(".len()..];
        let end = after.find(")]").expect("unterminated #[prost(");
        let attr = &after[..end];
        let decl = after[end + 2..].trim_start();
        let decl = decl
            .strip_prefix("pub ")
            .unwrap_or_else(|| panic!("{module}::{msg}: unexpected field syntax: {decl:.80}"));
        let colon = decl.find(':').unwrap();
        let rust = decl[..colon].trim().trim_start_matches("r#").to_string();
        // The type runs to the first comma outside angle brackets.
        let ty_text = &decl[colon + 1..];
        let mut depth = 0i32;
        let mut ty_end = ty_text.len();
        for (j, c) in ty_text.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => {
                    ty_end = j;
                    break;
                }
                _ => {}
            }
        }
        let rust_ty = ty_text[..ty_end].replace(' ', "").replace(",>", ">");
        rest = &ty_text[ty_end..];

        let tag: u32 = attr
            .split("tag = \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{module}::{msg}.{rust}: no tag in #[prost({attr})]"));
        let repeated = attr.split(", ").any(|a| a == "repeated");
        let kind = attr.split([',', ' ']).next().unwrap();
        let ty = match kind {
            "message" => PbTy::Message(resolve(module, &rust_ty)),
            "btree_map" | "map" | "hash_map" => {
                let spec = attr.split('"').nth(1).unwrap();
                let (k, v) = spec.split_once(", ").unwrap();
                assert_eq!(k, "string", "{module}::{msg}.{rust}: map key {k}");
                let value = match v {
                    "message" => PbTy::Message(resolve(module, map_value_type(&rust_ty))),
                    other => PbTy::Scalar(scalar(other, module, msg, &rust)),
                };
                PbTy::Map(Box::new(value))
            }
            other => PbTy::Scalar(scalar(other, module, msg, &rust)),
        };
        fields.push(PbField {
            rust,
            tag,
            ty,
            repeated,
        });
    }
    fields
}

fn scalar(kind: &str, module: &str, msg: &str, field: &str) -> &'static str {
    match kind {
        "string" => "string",
        "bytes" => "bytes",
        "int32" => "int32",
        "int64" => "int64",
        "bool" => "bool",
        "double" => "double",
        other => panic!("{module}::{msg}.{field}: unsupported protobuf type {other}"),
    }
}

fn map_value_type(rust_ty: &str) -> &str {
    // ::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,X>
    let inner = rust_ty.split_once(',').unwrap().1;
    inner.strip_suffix('>').unwrap_or(inner)
}

/// Resolves a (possibly `super::`-relative) Rust type path to `module::Name`.
fn resolve(module: &str, rust_ty: &str) -> String {
    let mut t = rust_ty;
    for wrapper in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
        "::core::option::Option<",
    ] {
        if let Some(inner) = t.strip_prefix(wrapper) {
            t = inner.strip_suffix('>').unwrap();
        }
    }
    let mut segs: Vec<&str> = module.split("::").collect();
    let parts: Vec<&str> = t.split("::").collect();
    let mut k = 0;
    if parts[0] == "crate" {
        segs.clear();
        k = 1;
    }
    while parts[k] == "super" {
        segs.pop();
        k += 1;
    }
    segs.extend_from_slice(&parts[k..]);
    segs.join("::")
}

// ---------------------------------------------------------------------------------------------
// k8s-openapi: JSON names.

struct OpenApi {
    /// (module, lowercase struct name) → JSON field names (union over all Kubernetes versions).
    structs: HashMap<(String, String), BTreeSet<String>>,
    /// normalized name → JSON spellings seen anywhere.
    global: HashMap<String, BTreeSet<String>>,
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl OpenApi {
    fn parse(src: &Path) -> OpenApi {
        let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(src)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let v = n.strip_prefix("v1_")?.parse::<u64>().ok()?;
                Some((vec![1, v], e.path()))
            })
            .collect();
        versions.sort();
        assert!(
            !versions.is_empty(),
            "protobuf schema: no v1_* folders in {}",
            src.display()
        );
        let mut structs: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
        let mut global: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (_, vdir) in versions.iter().rev() {
            let mut files = Vec::new();
            walk(vdir, &mut files);
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                let Some(name) = text.lines().find_map(|l| {
                    l.strip_prefix("pub struct ").map(|r| {
                        r.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                }) else {
                    continue;
                };
                let module = module_of(vdir, f.parent().unwrap());
                let entry = structs
                    .entry((module, name.to_ascii_lowercase()))
                    .or_default();
                let mut rest = text.as_str();
                while let Some(at) = rest.find("\" => Field::Key_") {
                    let before = &rest[..at];
                    if let Some(q) = before.rfind('"') {
                        let json = &before[q + 1..];
                        entry.insert(json.to_string());
                        global
                            .entry(norm(json))
                            .or_default()
                            .insert(json.to_string());
                    }
                    rest = &rest[at + 1..];
                }
            }
        }
        OpenApi { structs, global }
    }

    /// JSON names of the struct `module::name`, or of a same-named struct in another version of
    /// the same API group.
    fn names(&self, module: &str, name: &str) -> Option<BTreeSet<String>> {
        let lname = name.to_ascii_lowercase();
        if let Some(s) = self.structs.get(&(module.to_string(), lname.clone())) {
            return Some(s.clone());
        }
        let group = module.rsplit_once("::")?.0;
        let mut union = BTreeSet::new();
        let mut found = false;
        for ((m, n), s) in &self.structs {
            if *n == lname && m.rsplit_once("::").is_some_and(|(g, _)| g == group) {
                union.extend(s.iter().cloned());
                found = true;
            }
        }
        found.then_some(union)
    }
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.split('_').filter(|p| !p.is_empty()).enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut c = part.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rendering.

fn special_of(m: &PbMsg) -> &'static str {
    const META: &str = "apimachinery::pkg::apis::meta::v1";
    const EXT: [&str; 2] = [
        "apiextensions_apiserver::pkg::apis::apiextensions::v1",
        "apiextensions_apiserver::pkg::apis::apiextensions::v1beta1",
    ];
    match (m.module.as_str(), m.name.as_str()) {
        (META, "Time") => "Time",
        (META, "MicroTime") => "MicroTime",
        (META, "Duration") => "Duration",
        (META, "FieldsV1") => "FieldsV1",
        ("apimachinery::pkg::api::resource", "Quantity" | "QuantityValue") => "Quantity",
        ("apimachinery::pkg::util::intstr", "IntOrString") => "IntOrString",
        ("apimachinery::pkg::runtime", "RawExtension") => "RawExtension",
        (module, "Json") if EXT.contains(&module) => "Json",
        (module, "JsonSchemaPropsOrBool") if EXT.contains(&module) => "SchemaOrBool",
        (module, "JsonSchemaPropsOrArray") if EXT.contains(&module) => "SchemaOrArray",
        (module, "JsonSchemaPropsOrStringArray") if EXT.contains(&module) => "SchemaOrStringArray",
        _ if m.list_wrapper => "StringList",
        _ => "None",
    }
}

/// API group of the module's package (module path without its version), where the package has
/// no `Resource` impl to tell.
fn known_group(package: &str) -> Option<&'static str> {
    Some(match package {
        "apimachinery::pkg::apis::meta" => "meta.k8s.io",
        "api::admission" => "admission.k8s.io",
        "api::imagepolicy" => "imagepolicy.k8s.io",
        "api::apidiscovery" => "apidiscovery.k8s.io",
        "api::extensions" => "extensions",
        "metrics::pkg::apis::metrics" => "metrics.k8s.io",
        "metrics::pkg::apis::custom_metrics" => "custom.metrics.k8s.io",
        "metrics::pkg::apis::external_metrics" => "external.metrics.k8s.io",
        _ => return None,
    })
}

/// The kinds of meta.k8s.io that travel in an envelope.
const META_KINDS: &[&str] = &[
    "APIGroup",
    "APIGroupList",
    "APIResourceList",
    "APIVersions",
    "CreateOptions",
    "DeleteOptions",
    "GetOptions",
    "List",
    "ListOptions",
    "PartialObjectMetadata",
    "PartialObjectMetadataList",
    "PatchOptions",
    "Status",
    "WatchEvent",
];

fn render(msgs: &[PbMsg], resources: &[Resource], oa: &OpenApi, source: &str) -> String {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by_key(|&i| msgs[i].path());
    let index: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| (msgs[i].path(), pos))
        .collect();
    assert!(index.len() < u16::MAX as usize);
    let idx = |path: &str, ctx: &str| -> usize {
        *index
            .get(path)
            .unwrap_or_else(|| panic!("protobuf schema: {ctx} refers to unknown message {path}"))
    };

    let mut out = String::new();
    writeln!(
        out,
        "// @generated by src/object/protobuf/schema_gen.rs (run by build.rs) from {source}. Do not edit.\n"
    )
    .unwrap();
    writeln!(out, "pub(super) const SCHEMA_SOURCE: &str = {source:?};\n").unwrap();
    writeln!(out, "pub(super) static MESSAGES: &[Message] = &[").unwrap();
    let mut inline_count = 0usize;
    let mut guessed = Vec::new();
    // Messages whose JSON (per k8s-openapi) carries TypeMeta: the kinds.
    let mut typed: BTreeSet<String> = BTreeSet::new();
    for &i in &order {
        let m = &msgs[i];
        let special = special_of(m);
        let names = oa.names(&m.module, &m.name);
        if names
            .as_ref()
            .is_some_and(|n| n.contains("kind") && n.contains("apiVersion"))
        {
            typed.insert(m.path());
        }
        let by_norm: HashMap<String, &String> =
            names.iter().flatten().map(|j| (norm(j), j)).collect();
        writeln!(
            out,
            "    Message {{ name: {:?}, special: Special::{special}, fields: &[",
            m.path()
        )
        .unwrap();
        for f in &m.fields {
            let n = norm(&f.rust);
            let mut inline = false;
            let json = if let Some(j) = by_norm.get(&n) {
                (*j).clone()
            } else if names.is_some()
                && special == "None"
                && !f.repeated
                && matches!(f.ty, PbTy::Message(_))
            {
                inline = true;
                inline_count += 1;
                String::new()
            } else if let Some(js) = oa.global.get(&n).filter(|s| s.len() == 1) {
                js.iter().next().unwrap().clone()
            } else {
                let j = lower_camel(&f.rust);
                if special == "None" && names.is_some() {
                    guessed.push(format!("{}.{}", m.path(), j));
                }
                j
            };
            let ctx = format!("{}.{}", m.path(), f.rust);
            let ty = match &f.ty {
                PbTy::Scalar(s) => scalar_variant(s).to_string(),
                PbTy::Message(p) => format!("Ty::Message({})", idx(p, &ctx)),
                PbTy::Map(v) => match &**v {
                    PbTy::Scalar("string") => "Ty::MapString".to_string(),
                    PbTy::Scalar("bytes") => "Ty::MapBytes".to_string(),
                    PbTy::Message(p) => format!("Ty::MapMessage({})", idx(p, &ctx)),
                    other => panic!("{ctx}: unsupported map value {other:?}"),
                },
            };
            writeln!(
                out,
                "        Field {{ tag: {}, json: {json:?}, ty: {ty}, repeated: {}, inline: {inline} }},",
                f.tag, f.repeated
            )
            .unwrap();
        }
        let mut by_tag: Vec<usize> = (0..m.fields.len()).collect();
        by_tag.sort_by_key(|&k| m.fields[k].tag);
        writeln!(out, "    ], by_tag: &{by_tag:?} }},").unwrap();
    }
    writeln!(out, "];\n").unwrap();
    // Fields whose JSON name is a lowerCamel guess (only deprecated annotation-only types).
    writeln!(out, "// Guessed JSON names: {}", guessed.join(", ")).unwrap();

    // Kinds: (apiVersion, lowercase kind) → message, sorted for binary search.
    let mut groups: HashMap<String, String> = HashMap::new();
    for r in resources {
        let package = r.module.rsplit_once("::").unwrap().0.to_string();
        let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        groups.insert(package, group.to_string());
    }
    let object_meta = "apimachinery::pkg::apis::meta::v1::ObjectMeta";
    let list_meta = "apimachinery::pkg::apis::meta::v1::ListMeta";
    let mut kinds: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in msgs {
        let Some((package, version)) = m.module.rsplit_once("::") else {
            continue;
        };
        let group = match groups.get(package) {
            Some(g) => g.as_str(),
            None => match known_group(package) {
                Some(g) => g,
                None => continue,
            },
        };
        // A kind: an object whose JSON has TypeMeta, or a list (k8s-openapi has one generic
        // List); in meta.k8s.io, the fixed set of kinds the apiserver encodes.
        let has_meta = |want: &str| {
            m.fields
                .iter()
                .any(|f| f.rust == "metadata" && matches!(&f.ty, PbTy::Message(p) if p == want))
        };
        let is_kind = if package == "apimachinery::pkg::apis::meta" {
            META_KINDS.iter().any(|k| k.eq_ignore_ascii_case(&m.name))
        } else {
            (typed.contains(&m.path()) && has_meta(object_meta))
                || (m.name.ends_with("List") && has_meta(list_meta))
        };
        if !is_kind || special_of(m) != "None" {
            continue;
        }
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        kinds.insert((api_version, m.name.to_ascii_lowercase()), index[&m.path()]);
    }
    writeln!(
        out,
        "/// (apiVersion, lowercase kind, message), sorted.\npub(super) static KINDS: &[(&str, &str, u16)] = &["
    )
    .unwrap();
    for ((av, k), i) in &kinds {
        writeln!(out, "    ({av:?}, {k:?}, {i}),").unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(
        out,
        "\n#[allow(dead_code)]\npub(super) const INLINE_FIELDS: usize = {inline_count};"
    )
    .unwrap();
    out
}

fn scalar_variant(s: &str) -> &'static str {
    match s {
        "string" => "Ty::String",
        "bytes" => "Ty::Bytes",
        "int32" => "Ty::Int32",
        "int64" => "Ty::Int64",
        "bool" => "Ty::Bool",
        "double" => "Ty::Double",
        _ => unreachable!(),
    }
}

//! Validation of `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration` on create
//! and update, with kube-apiserver's field paths and messages
//! (`k8s.io/kubernetes/pkg/apis/admissionregistration/validation/validation.go`:
//! `validate{Mutating,Validating}WebhookConfiguration`, `validate{Mutating,Validating}Webhook`,
//! `validateRuleWithOperations`, `validateAdmissionReviewVersions`; `IsFullyQualifiedName` from
//! `apimachinery/pkg/util/validation`; `ValidateWebhookURL` / `ValidateWebhookService` from
//! `apiserver/pkg/util/webhook`).
//!
//! Per webhook, in kube's order: name (a DNS subdomain of at least three segments), rules,
//! failurePolicy, matchPolicy, sideEffects (required; `None`/`NoneOnDryRun` only on create),
//! timeoutSeconds (1..30), reinvocationPolicy (mutating), clientConfig (exactly one of url or
//! service), then admissionReviewVersions (required; one of `v1`/`v1beta1` on create) and the
//! duplicate-name check. Updates relax the side-effect, review-version and unique-name rules when
//! the stored configuration already broke them, as kube's `Validate*Update` does.
//!
//! Values are shown as Go's `field.Error` prints them: strings quoted, numbers bare, and string
//! slices as `%#v` (`[]string{"v2"}`).
//!
//! Not checked: `namespaceSelector`/`objectSelector` (`ValidateLabelSelector`) and
//! `matchConditions` (CEL).

use super::ADMISSION_GROUP;
use crate::api::catalogue::ResourceInfo;
use crate::api::status::Cause;
use crate::object::validation;
use serde_json::{Map, Value};
use std::collections::HashSet;

const NO_SIDE_EFFECT_CLASSES: &[&str] = &["None", "NoneOnDryRun"];
const SIDE_EFFECT_CLASSES: &[&str] = &["None", "NoneOnDryRun", "Some", "Unknown"];
const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const REINVOCATION_POLICIES: &[&str] = &["IfNeeded", "Never"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
/// `AcceptedAdmissionReviewVersions`.
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const URL_FORM: &str = "; desired format: https://host[/path]";

/// The relaxations an update gets from its stored object (`validationOptions`).
struct Options {
    require_no_side_effects: bool,
    require_recognized_review_version: bool,
    require_unique_names: bool,
}

/// The causes for a webhook configuration (nothing for other resources). `old` is the stored
/// object on update, `None` on create.
pub fn validate(
    res: &ResourceInfo,
    obj: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
) -> Vec<Cause> {
    if res.group != ADMISSION_GROUP {
        return Vec::new();
    }
    let mutating = match res.plural {
        "mutatingwebhookconfigurations" => true,
        "validatingwebhookconfigurations" => false,
        _ => return Vec::new(),
    };
    let opts = match old {
        None => Options {
            require_no_side_effects: true,
            require_recognized_review_version: true,
            require_unique_names: true,
        },
        Some(old) => {
            let hooks = webhooks(old);
            Options {
                require_no_side_effects: hooks.iter().all(|h| {
                    str_of(h, "sideEffects").is_some_and(|s| NO_SIDE_EFFECT_CLASSES.contains(&s))
                }),
                require_recognized_review_version: hooks.iter().all(|h| {
                    let versions = strings(h.get("admissionReviewVersions"));
                    versions.is_empty() || versions.iter().any(|v| REVIEW_VERSIONS.contains(v))
                }),
                require_unique_names: {
                    let mut seen = HashSet::new();
                    hooks
                        .iter()
                        .all(|h| seen.insert(str_of(h, "name").unwrap_or("")))
                },
            }
        }
    };
    let mut errs = Errors::default();
    let mut names = HashSet::new();
    for (i, hook) in webhooks(obj).iter().enumerate() {
        let path = format!("webhooks[{i}]");
        validate_webhook(&mut errs, hook, mutating, &opts, &path);
        validate_review_versions(
            &mut errs,
            hook.get("admissionReviewVersions"),
            opts.require_recognized_review_version,
            &format!("{path}.admissionReviewVersions"),
        );
        let name = str_of(hook, "name").unwrap_or("");
        if opts.require_unique_names && !name.is_empty() && !names.insert(name) {
            errs.push(
                "FieldValueDuplicate",
                format!("{path}.name"),
                format!("Duplicate value: {}", quote(name)),
            );
        }
    }
    errs.0
}

fn webhooks(obj: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    obj.get("webhooks")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// A string list (`null` and absent are empty, as a nil Go slice).
fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A present, non-null field (a non-nil Go pointer).
fn present<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

/// Go's `%q`.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A scalar as `field.Error` shows it: strings quoted, numbers and booleans bare.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

/// Go's `%#v` of a slice of a string type: `[]string{"a", "b"}`.
fn go_slice(type_name: &str, items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[]{type_name}{{{}}}", items.join(", "))
}

#[derive(Default)]
struct Errors(Vec<Cause>);

impl Errors {
    fn push(&mut self, reason: &str, field: String, message: String) {
        self.0.push(Cause {
            reason: reason.into(),
            message,
            field,
        });
    }

    /// `field.Required`.
    fn required(&mut self, field: String, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push("FieldValueRequired", field, message);
    }

    /// `field.Invalid`; `value` is already formatted.
    fn invalid(&mut self, field: String, value: &str, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {detail}"),
        );
    }

    /// `field.NotSupported` with the (sorted) supported values.
    fn not_supported(&mut self, field: String, value: &str, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        self.push(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {value}: supported values: {}",
                quoted.join(", ")
            ),
        );
    }

    /// An optional enum field: present values must be one of `supported`.
    fn enum_field(&mut self, hook: &Map<String, Value>, key: &str, path: &str, supported: &[&str]) {
        if let Some(v) = present(hook, key) {
            if !v.as_str().is_some_and(|s| supported.contains(&s)) {
                self.not_supported(format!("{path}.{key}"), &shown(v), supported);
            }
        }
    }
}

/// `validateMutatingWebhook` / `validateValidatingWebhook`.
fn validate_webhook(
    errs: &mut Errors,
    hook: &Map<String, Value>,
    mutating: bool,
    opts: &Options,
    path: &str,
) {
    fully_qualified_name(
        errs,
        str_of(hook, "name").unwrap_or(""),
        &format!("{path}.name"),
    );
    if let Some(rules) = hook.get("rules").and_then(Value::as_array) {
        for (i, rule) in rules.iter().enumerate() {
            if let Some(rule) = rule.as_object() {
                validate_rule(errs, rule, &format!("{path}.rules[{i}]"));
            }
        }
    }
    errs.enum_field(hook, "failurePolicy", path, FAILURE_POLICIES);
    errs.enum_field(hook, "matchPolicy", path, MATCH_POLICIES);
    let allowed = if opts.require_no_side_effects {
        NO_SIDE_EFFECT_CLASSES
    } else {
        SIDE_EFFECT_CLASSES
    };
    match present(hook, "sideEffects") {
        None => errs.required(
            format!("{path}.sideEffects"),
            &format!("must specify one of {}", allowed.join(", ")),
        ),
        Some(_) => errs.enum_field(hook, "sideEffects", path, allowed),
    }
    if let Some(t) = present(hook, "timeoutSeconds") {
        if !t.as_i64().is_some_and(|t| (1..=30).contains(&t)) {
            errs.invalid(
                format!("{path}.timeoutSeconds"),
                &shown(t),
                "the timeout value must be between 1 and 30 seconds",
            );
        }
    }
    if mutating {
        errs.enum_field(hook, "reinvocationPolicy", path, REINVOCATION_POLICIES);
    }
    validate_client_config(errs, hook, &format!("{path}.clientConfig"));
}

/// `IsFullyQualifiedName`.
fn fully_qualified_name(errs: &mut Errors, name: &str, path: &str) {
    if name.is_empty() {
        errs.required(path.to_string(), "");
        return;
    }
    let dns = validation::dns1123_subdomain(name);
    if !dns.is_empty() {
        errs.invalid(path.to_string(), &quote(name), &dns.join(","));
        return;
    }
    if name.split('.').count() < 3 {
        errs.invalid(
            path.to_string(),
            &quote(name),
            "should be a domain with at least three segments separated by dots",
        );
    }
}

/// `validateRuleWithOperations` and `validateRule` (subresources allowed).
fn validate_rule(errs: &mut Errors, rule: &Map<String, Value>, path: &str) {
    let ops = strings(rule.get("operations"));
    if ops.is_empty() {
        errs.required(format!("{path}.operations"), "");
    }
    if ops.len() > 1 && ops.contains(&"*") {
        errs.invalid(
            format!("{path}.operations"),
            &go_slice("admissionregistration.OperationType", &ops),
            "if '*' is present, must not specify other operations",
        );
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            errs.not_supported(format!("{path}.operations[{i}]"), &quote(op), OPERATIONS);
        }
    }
    let groups = strings(rule.get("apiGroups"));
    if groups.is_empty() {
        errs.required(format!("{path}.apiGroups"), "");
    }
    if groups.len() > 1 && groups.contains(&"*") {
        errs.invalid(
            format!("{path}.apiGroups"),
            &go_slice("string", &groups),
            "if '*' is present, must not specify other API groups",
        );
    }
    let versions = strings(rule.get("apiVersions"));
    if versions.is_empty() {
        errs.required(format!("{path}.apiVersions"), "");
    }
    if versions.len() > 1 && versions.contains(&"*") {
        errs.invalid(
            format!("{path}.apiVersions"),
            &go_slice("string", &versions),
            "if '*' is present, must not specify other API versions",
        );
    }
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            errs.required(format!("{path}.apiVersions[{i}]"), "");
        }
    }
    validate_resources(
        errs,
        &strings(rule.get("resources")),
        &format!("{path}.resources"),
    );
    if let Some(scope) = present(rule, "scope") {
        if !scope.as_str().is_some_and(|s| SCOPES.contains(&s)) {
            errs.not_supported(format!("{path}.scope"), &shown(scope), SCOPES);
        }
    }
}

/// `validateResources`: `*`, `*/*`, `res/*` and `*/sub` may not overlap other entries.
fn validate_resources(errs: &mut Errors, resources: &[&str], path: &str) {
    if resources.is_empty() {
        errs.required(path.to_string(), "");
    }
    let mut with_wildcard_sub: HashSet<&str> = HashSet::new();
    let mut sub_with_wildcard_res: HashSet<&str> = HashSet::new();
    let mut double_wildcard = false;
    let mut single_wildcard = false;
    let mut without_subresource = false;
    for (i, r) in resources.iter().enumerate() {
        if r.is_empty() {
            errs.required(format!("{path}[{i}]"), "");
            continue;
        }
        if *r == "*/*" {
            double_wildcard = true;
        }
        if *r == "*" {
            single_wildcard = true;
        }
        let Some((res, sub)) = r.split_once('/') else {
            // kube assigns rather than accumulates here.
            without_subresource = *r != "*";
            continue;
        };
        if with_wildcard_sub.contains(res) {
            errs.invalid(
                format!("{path}[{i}]"),
                &quote(r),
                &format!("if '{res}/*' is present, must not specify {r}"),
            );
        }
        if sub_with_wildcard_res.contains(sub) {
            errs.invalid(
                format!("{path}[{i}]"),
                &quote(r),
                &format!("if '*/{sub}' is present, must not specify {r}"),
            );
        }
        if sub == "*" {
            with_wildcard_sub.insert(res);
        }
        if res == "*" {
            sub_with_wildcard_res.insert(sub);
        }
    }
    if resources.len() > 1 && double_wildcard {
        errs.invalid(
            path.to_string(),
            &go_slice("string", resources),
            "if '*/*' is present, must not specify other resources",
        );
    }
    if single_wildcard && without_subresource {
        errs.invalid(
            path.to_string(),
            &go_slice("string", resources),
            "if '*' is present, must not specify other resources without subresources",
        );
    }
}

/// `validateAdmissionReviewVersions`.
fn validate_review_versions(
    errs: &mut Errors,
    versions: Option<&Value>,
    require: bool,
    path: &str,
) {
    let versions = strings(versions);
    if versions.is_empty() {
        errs.required(
            path.to_string(),
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        );
        return;
    }
    let mut seen = HashSet::new();
    let mut accepted = false;
    for (i, v) in versions.iter().enumerate() {
        if !seen.insert(*v) {
            errs.invalid(format!("{path}[{i}]"), &quote(v), "duplicate version");
            continue;
        }
        for e in validation::dns1035_label(v) {
            errs.invalid(format!("{path}[{i}]"), &quote(v), &e);
        }
        accepted |= REVIEW_VERSIONS.contains(v);
    }
    if require && !accepted {
        errs.invalid(
            path.to_string(),
            &go_slice("string", &versions),
            &format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        );
    }
}

/// The clientConfig: exactly one of url (`ValidateWebhookURL`, https only) or service
/// (`ValidateWebhookService`).
fn validate_client_config(errs: &mut Errors, hook: &Map<String, Value>, path: &str) {
    let cc = hook.get("clientConfig").and_then(Value::as_object);
    let url = cc.and_then(|c| present(c, "url"));
    let service = cc.and_then(|c| present(c, "service"));
    match (url, service) {
        (Some(_), Some(_)) | (None, None) => errs.required(
            path.to_string(),
            "exactly one of url or service is required",
        ),
        (Some(url), None) => validate_url(errs, url.as_str().unwrap_or(""), &format!("{path}.url")),
        (None, Some(svc)) => validate_service(errs, svc.as_object(), &format!("{path}.service")),
    }
}

/// `ValidateWebhookURL(fldPath, url, forceHttps=true)` over Go's `url.Parse`.
fn validate_url(errs: &mut Errors, raw: &str, path: &str) {
    let parse_error = |why: &str| format!("parse {}: {why}", quote(raw));
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        let e = parse_error("net/url: invalid control character in URL");
        errs.required(
            path.to_string(),
            &format!("url must be a valid URL: {e}{URL_FORM}"),
        );
        return;
    }
    let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    // getScheme: letters, then letters, digits, '+', '-', '.' up to ':'.
    let mut scheme = "";
    let mut rest = rest;
    for (i, c) in rest.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => {
                let e = parse_error("missing protocol scheme");
                errs.required(
                    path.to_string(),
                    &format!("url must be a valid URL: {e}{URL_FORM}"),
                );
                return;
            }
            ':' => {
                scheme = &rest[..i];
                rest = &rest[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let scheme = scheme.to_ascii_lowercase();
    let (rest, query) = match rest.split_once('?') {
        // A lone trailing '?' is ForceQuery: no RawQuery.
        Some((r, "")) if !r.contains('?') => (r, ""),
        Some((r, q)) => (r, q),
        None => (rest, ""),
    };
    let mut host = "";
    let mut user = None;
    if rest.starts_with("//") && (!scheme.is_empty() || !rest.starts_with("///")) {
        let authority = &rest[2..];
        let authority = &authority[..authority.find('/').unwrap_or(authority.len())];
        match authority.rfind('@') {
            Some(at) => {
                user = Some(&authority[..at]);
                host = &authority[at + 1..];
            }
            None => host = authority,
        }
    }
    if scheme != "https" {
        errs.invalid(
            path.to_string(),
            &quote(&scheme),
            &format!("'https' is the only allowed URL scheme{URL_FORM}"),
        );
    }
    if host.is_empty() {
        errs.invalid(
            path.to_string(),
            &quote(host),
            &format!("host must be specified{URL_FORM}"),
        );
    }
    if let Some(user) = user {
        errs.invalid(
            path.to_string(),
            &quote(user),
            "user information is not permitted in the URL",
        );
    }
    if !fragment.is_empty() {
        errs.invalid(
            path.to_string(),
            &quote(fragment),
            "fragments are not permitted in the URL",
        );
    }
    if !query.is_empty() {
        errs.invalid(
            path.to_string(),
            &quote(query),
            "query parameters are not permitted in the URL",
        );
    }
}

/// `ValidateWebhookService(fldPath, namespace, name, path, port)`. kube calls it with the
/// service's name and namespace swapped, so a missing name is reported on `namespace` and a
/// missing namespace on `name`; kapi reports them where kube does.
fn validate_service(errs: &mut Errors, svc: Option<&Map<String, Value>>, path: &str) {
    let empty = Map::new();
    let svc = svc.unwrap_or(&empty);
    let (name, namespace) = (
        str_of(svc, "name").unwrap_or(""),
        str_of(svc, "namespace").unwrap_or(""),
    );
    if namespace.is_empty() {
        errs.required(format!("{path}.name"), "");
    }
    if name.is_empty() {
        errs.required(format!("{path}.namespace"), "");
    }
    // v1 defaults the port to 443.
    if let Some(port) = present(svc, "port") {
        if !port.as_i64().is_some_and(|p| (1..=65535).contains(&p)) {
            errs.invalid(
                format!("{path}.port"),
                &shown(port),
                "port is not valid: must be between 1 and 65535, inclusive",
            );
        }
    }
    let Some(url_path) = str_of(svc, "path") else {
        return;
    };
    if url_path.is_empty() || url_path == "/" {
        return;
    }
    let field = format!("{path}.path");
    if url_path == "//" {
        errs.invalid(field, &quote(url_path), "segment[0] may not be empty");
        return;
    }
    if !url_path.starts_with('/') {
        errs.invalid(field.clone(), &quote(url_path), "must start with a '/'");
    }
    // kube drops the first byte whether or not it is the '/'.
    let mut check = url_path.get(1..).unwrap_or("");
    check = check.strip_suffix('/').unwrap_or(check);
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            errs.invalid(
                field.clone(),
                &quote(url_path),
                &format!("segment[{i}] may not be empty"),
            );
            continue;
        }
        for failure in validation::dns1123_subdomain(step) {
            errs.invalid(
                field.clone(),
                &quote(url_path),
                &format!("segment[{i}]: {failure}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalogue;
    use serde_json::json;

    fn res(plural: &str) -> &'static ResourceInfo {
        catalogue::lookup(ADMISSION_GROUP, "v1", plural).expect("served")
    }

    fn hook(extra: Value) -> Value {
        let mut h = json!({
            "name": "a.example.com",
            "clientConfig": {"url": "https://127.0.0.1:8443/hook"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        h
    }

    fn config(hooks: Vec<Value>) -> Map<String, Value> {
        json!({"metadata": {"name": "c"}, "webhooks": hooks})
            .as_object()
            .unwrap()
            .clone()
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {} [{}]", c.field, c.message, c.reason))
            .collect()
    }

    #[test]
    fn a_valid_configuration_has_no_causes() {
        for plural in [
            "mutatingwebhookconfigurations",
            "validatingwebhookconfigurations",
        ] {
            let c = config(vec![
                hook(json!({})),
                hook(
                    json!({"name": "b.example.com", "sideEffects": "NoneOnDryRun",
                    "failurePolicy": "Ignore", "matchPolicy": "Exact", "timeoutSeconds": 30,
                    "admissionReviewVersions": ["v1beta1", "v1"],
                    "clientConfig": {"service": {"name": "s", "namespace": "n",
                        "path": "/a/b", "port": 8443}}}),
                ),
            ]);
            assert_eq!(
                messages(&validate(res(plural), &c, None)),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn side_effects_and_review_versions() {
        let r = res("mutatingwebhookconfigurations");
        let c = config(vec![hook(json!({"sideEffects": "Some"}))]);
        assert_eq!(
            messages(&validate(r, &c, None)),
            [
                r#"webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun" [FieldValueNotSupported]"#
            ]
        );
        let c = config(vec![hook(
            json!({"sideEffects": null, "admissionReviewVersions": null}),
        )]);
        assert_eq!(
            messages(&validate(r, &c, None)),
            [
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun [FieldValueRequired]",
                "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1 [FieldValueRequired]",
            ]
        );
        let c = config(vec![hook(
            json!({"admissionReviewVersions": ["v2", "v2", "V3"]}),
        )]);
        assert_eq!(
            messages(&validate(r, &c, None)),
            [
                r#"webhooks[0].admissionReviewVersions[1]: Invalid value: "v2": duplicate version [FieldValueInvalid]"#,
                r#"webhooks[0].admissionReviewVersions[2]: Invalid value: "V3": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?') [FieldValueInvalid]"#,
                r#"webhooks[0].admissionReviewVersions: Invalid value: []string{"v2", "v2", "V3"}: must include at least one of v1, v1beta1 [FieldValueInvalid]"#,
            ]
        );
    }

    #[test]
    fn updates_keep_what_the_stored_object_already_broke() {
        let r = res("validatingwebhookconfigurations");
        let legacy = config(vec![
            hook(json!({"sideEffects": "Unknown", "admissionReviewVersions": ["v9"]})),
            hook(json!({})),
        ]);
        let mut new = legacy.clone();
        new["webhooks"][1]["sideEffects"] = json!("Some");
        assert_eq!(
            messages(&validate(r, &new, Some(&legacy))),
            Vec::<String>::new()
        );
        new["webhooks"][1]["sideEffects"] = json!("Sometimes");
        assert_eq!(
            messages(&validate(r, &new, Some(&legacy))),
            [
                r#"webhooks[1].sideEffects: Unsupported value: "Sometimes": supported values: "None", "NoneOnDryRun", "Some", "Unknown" [FieldValueNotSupported]"#
            ]
        );
        // A conforming stored object keeps the create rules.
        let good = config(vec![hook(json!({}))]);
        let bad = config(vec![hook(json!({"sideEffects": "Unknown"}))]);
        assert_eq!(validate(r, &bad, Some(&good)).len(), 1);
        // Duplicate names stay allowed when they were already there.
        let dup = config(vec![hook(json!({})), hook(json!({}))]);
        assert_eq!(
            messages(&validate(r, &dup, Some(&good))),
            [r#"webhooks[1].name: Duplicate value: "a.example.com" [FieldValueDuplicate]"#]
        );
        assert!(validate(r, &dup, Some(&dup)).is_empty());
    }

    #[test]
    fn names_policies_timeouts_rules_and_client_config() {
        let r = res("mutatingwebhookconfigurations");
        let c = config(vec![
            hook(json!({"name": "two.segments", "failurePolicy": "Sometimes",
                "matchPolicy": "", "timeoutSeconds": 0, "reinvocationPolicy": "Always"})),
            hook(json!({"name": "Bad_Name.example.com", "timeoutSeconds": 31,
                "clientConfig": {"url": "http://u:p@/x?q=1#f"},
                "rules": [{"operations": ["CREATE", "*", "PATCH"], "apiGroups": [],
                    "apiVersions": ["*", "v1"], "resources": ["*", "pods", "*/*"],
                    "scope": "Everywhere"}]})),
            hook(json!({"name": null, "clientConfig": {"service": {"port": 0, "path": "x//y/"}}})),
            hook(json!({"name": "c.example.com", "clientConfig": {}})),
        ]);
        let subdomain = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        let form = "; desired format: https://host[/path]";
        let expected = vec![
            r#"webhooks[0].name: Invalid value: "two.segments": should be a domain with at least three segments separated by dots [FieldValueInvalid]"#.to_string(),
            r#"webhooks[0].failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore" [FieldValueNotSupported]"#.into(),
            r#"webhooks[0].matchPolicy: Unsupported value: "": supported values: "Equivalent", "Exact" [FieldValueNotSupported]"#.into(),
            "webhooks[0].timeoutSeconds: Invalid value: 0: the timeout value must be between 1 and 30 seconds [FieldValueInvalid]".into(),
            r#"webhooks[0].reinvocationPolicy: Unsupported value: "Always": supported values: "IfNeeded", "Never" [FieldValueNotSupported]"#.into(),
            format!(r#"webhooks[1].name: Invalid value: "Bad_Name.example.com": {subdomain} [FieldValueInvalid]"#),
            r#"webhooks[1].rules[0].operations: Invalid value: []admissionregistration.OperationType{"CREATE", "*", "PATCH"}: if '*' is present, must not specify other operations [FieldValueInvalid]"#.into(),
            r#"webhooks[1].rules[0].operations[2]: Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE" [FieldValueNotSupported]"#.into(),
            "webhooks[1].rules[0].apiGroups: Required value [FieldValueRequired]".into(),
            r#"webhooks[1].rules[0].apiVersions: Invalid value: []string{"*", "v1"}: if '*' is present, must not specify other API versions [FieldValueInvalid]"#.into(),
            r#"webhooks[1].rules[0].resources: Invalid value: []string{"*", "pods", "*/*"}: if '*/*' is present, must not specify other resources [FieldValueInvalid]"#.into(),
            r#"webhooks[1].rules[0].resources: Invalid value: []string{"*", "pods", "*/*"}: if '*' is present, must not specify other resources without subresources [FieldValueInvalid]"#.into(),
            r#"webhooks[1].rules[0].scope: Unsupported value: "Everywhere": supported values: "*", "Cluster", "Namespaced" [FieldValueNotSupported]"#.into(),
            "webhooks[1].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds [FieldValueInvalid]".into(),
            format!(r#"webhooks[1].clientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme{form} [FieldValueInvalid]"#),
            format!(r#"webhooks[1].clientConfig.url: Invalid value: "": host must be specified{form} [FieldValueInvalid]"#),
            r#"webhooks[1].clientConfig.url: Invalid value: "u:p": user information is not permitted in the URL [FieldValueInvalid]"#.into(),
            r#"webhooks[1].clientConfig.url: Invalid value: "f": fragments are not permitted in the URL [FieldValueInvalid]"#.into(),
            r#"webhooks[1].clientConfig.url: Invalid value: "q=1": query parameters are not permitted in the URL [FieldValueInvalid]"#.into(),
            "webhooks[2].name: Required value [FieldValueRequired]".into(),
            "webhooks[2].clientConfig.service.name: Required value [FieldValueRequired]".into(),
            "webhooks[2].clientConfig.service.namespace: Required value [FieldValueRequired]".into(),
            "webhooks[2].clientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive [FieldValueInvalid]".into(),
            r#"webhooks[2].clientConfig.service.path: Invalid value: "x//y/": must start with a '/' [FieldValueInvalid]"#.into(),
            r#"webhooks[2].clientConfig.service.path: Invalid value: "x//y/": segment[0] may not be empty [FieldValueInvalid]"#.into(),
            r#"webhooks[2].clientConfig.service.path: Invalid value: "x//y/": segment[1] may not be empty [FieldValueInvalid]"#.into(),
            "webhooks[3].clientConfig: Required value: exactly one of url or service is required [FieldValueRequired]".into(),
        ];
        assert_eq!(messages(&validate(r, &c, None)), expected);
    }

    #[test]
    fn resource_wildcards() {
        let mut errs = Errors::default();
        validate_resources(
            &mut errs,
            &["pods/*", "pods/status", "*/scale", "deployments/scale", ""],
            "r",
        );
        assert_eq!(
            messages(&errs.0),
            [
                r#"r[1]: Invalid value: "pods/status": if 'pods/*' is present, must not specify pods/status [FieldValueInvalid]"#,
                r#"r[3]: Invalid value: "deployments/scale": if '*/scale' is present, must not specify deployments/scale [FieldValueInvalid]"#,
                "r[4]: Required value [FieldValueRequired]",
            ]
        );
        let mut errs = Errors::default();
        validate_resources(&mut errs, &["pods", "*"], "r");
        // kube keeps the last plain entry's verdict: "*" clears it.
        assert!(errs.0.is_empty());
        validate_resources(&mut errs, &["*", "pods"], "r");
        assert_eq!(
            messages(&errs.0),
            [
                r#"r: Invalid value: []string{"*", "pods"}: if '*' is present, must not specify other resources without subresources [FieldValueInvalid]"#
            ]
        );
    }

    #[test]
    fn other_resources_are_not_checked() {
        let cm = catalogue::lookup("", "v1", "configmaps").expect("served");
        let c = config(vec![hook(json!({"sideEffects": "Some"}))]);
        assert!(validate(cm, &c, None).is_empty());
    }
}

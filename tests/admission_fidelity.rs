//! Write-path fidelity around admission, against kube-apiserver 1.32: kapi on a real etcd, an
//! HTTPS webhook server this test runs on 127.0.0.1 (certificate from an rcgen CA given to kapi
//! as `caBundle`), raw HTTP requests.
//!
//! - managedFields: the writer's `Update` entry is recorded before mutating admission
//!   (`handlers/create.go`, `update.go`, `patch.go` run the field manager first), so labels a
//!   mutating webhook adds on create, update (PUT) and merge patch are nobody's.
//! - `request.options` of the AdmissionReview: CreateOptions for POST, UpdateOptions for PUT and
//!   PATCH (`patchToUpdateOptions`), DeleteOptions from the DELETE body or query, each typed
//!   `meta.k8s.io/v1` with kube's omitempty fields.
//! - Mutating/ValidatingWebhookConfiguration validation: kube's 422 Invalid with the exact field
//!   paths, messages and cause reasons, on create, update, merge patch and server-side apply.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient, RawResponse};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMISSION: &str = "/apis/admissionregistration.k8s.io/v1";

// ---- the webhook server --------------------------------------------------------------------

/// Every AdmissionReview the server received, in order.
type Log = Arc<Mutex<Vec<Value>>>;

struct HookServer {
    addr: SocketAddr,
    ca_pem: String,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `/label` adds `mutated-by: webhook` and a `mutation-id` that differs on every call (so an
/// update always changes it); anything else allows without a patch.
fn answer(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let uid = req["uid"].as_str().unwrap_or("");
    let mut response = json!({"uid": uid, "allowed": true});
    if path == "/label" {
        let id: String = uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let patch = if req["object"]["metadata"]["labels"].is_object() {
            json!([
                {"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"},
                {"op": "add", "path": "/metadata/labels/mutation-id", "value": id},
            ])
        } else {
            json!([{"op": "add", "path": "/metadata/labels",
                "value": {"mutated-by": "webhook", "mutation-id": id}}])
        };
        response["patchType"] = json!("JSONPatch");
        response["patch"] =
            json!(base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    log: Log,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    log.lock().unwrap().push(review.clone());
    let out = answer(&path, &review);
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&out).unwrap())))
        .unwrap())
}

async fn start_hook_server() -> HookServer {
    let (ca_pem, acceptor) = common::pki::serving_acceptor("fidelity-test-ca");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let server_log = log.clone();
    let task = common::pki::spawn_tls_server(listener, acceptor, move |tls| {
        let log = server_log.clone();
        async move {
            let svc = hyper::service::service_fn(move |req| handle(req, log.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        }
    });
    HookServer {
        addr,
        ca_pem,
        log,
        task,
    }
}

// ---- kapi side -----------------------------------------------------------------------------

struct Setup {
    _etcd: EtcdServer,
    kapi: Kapi,
    hooks: HookServer,
}

async fn start() -> Setup {
    let hooks = start_hook_server().await;
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    Setup {
        _etcd: etcd,
        kapi,
        hooks,
    }
}

impl Setup {
    /// A configuration with one webhook for configmaps in namespaces labelled `hook=<ns>`.
    async fn configuration(&self, kind: &str, name: &str, path: &str, ns: &str, ops: Value) {
        let c = self.kapi.client();
        let r = c
            .post_json(
                "/api/v1/namespaces",
                &json!({"metadata": {"name": ns, "labels": {"hook": ns}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let plural = format!("{}webhookconfigurations", kind.to_lowercase());
        let hook = json!({
            "name": format!("{name}.fidelity.example.com"),
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}{path}", self.hooks.addr.port()),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&self.hooks.ca_pem),
            },
            "rules": [{"operations": ops, "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"hook": ns}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        let r = c
            .post_json(
                &format!("{ADMISSION}/{plural}"),
                &json!({"metadata": {"name": name}, "webhooks": [hook]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }

    /// Dry-run creates a probe configmap in `ns` until the webhook has seen one (the
    /// configuration reached kapi's cache), within a bound.
    async fn until_called(&self, ns: &str) {
        let c = self.kapi.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = c
                .post_json(
                    &format!("/api/v1/namespaces/{ns}/configmaps?dryRun=All"),
                    &json!({"metadata": {"name": "probe"}}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            if self.log_len() > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the webhook was never called");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_len(&self) -> usize {
        self.hooks.log.lock().unwrap().len()
    }

    /// The only review received since the log held `before` entries.
    fn one_review_since(&self, before: usize) -> Value {
        let log = self.hooks.log.lock().unwrap();
        assert_eq!(log.len(), before + 1, "reviews since: {:?}", &log[before..]);
        log[before]["request"].clone()
    }
}

fn managed_fields(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The `fieldsV1` of `manager`'s entry, which must be its only one.
fn fields_of(obj: &Value, manager: &str) -> Value {
    let entries: Vec<Value> = managed_fields(obj)
        .into_iter()
        .filter(|e| e["manager"] == manager)
        .collect();
    assert_eq!(entries.len(), 1, "{manager} in {obj}");
    assert_eq!(entries[0]["operation"], "Update", "{obj}");
    assert_eq!(entries[0]["apiVersion"], "v1", "{obj}");
    entries[0]["fieldsV1"].clone()
}

/// No managedFields entry mentions the webhook's labels.
fn webhook_labels_unowned(obj: &Value) {
    for e in managed_fields(obj) {
        let fields = e["fieldsV1"].to_string();
        for label in ["f:mutated-by", "f:mutation-id"] {
            assert!(
                !fields.contains(label),
                "{label} owned by {}: {obj}",
                e["manager"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mutating_admission_changes_are_not_the_writers() {
    let s = start().await;
    let c = s.kapi.client();
    s.configuration(
        "Mutating",
        "labeler",
        "/label",
        "mf",
        json!(["CREATE", "UPDATE"]),
    )
    .await;
    s.until_called("mf").await;

    // Create.
    let before = s.log_len();
    let r = c
        .post_json(
            "/api/v1/namespaces/mf/configmaps?fieldManager=writer",
            &json!({"metadata": {"name": "c1", "labels": {"app": "x"}}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    let labels = &created["metadata"]["labels"];
    assert_eq!(labels["app"], "x");
    assert_eq!(labels["mutated-by"], "webhook", "{created}");
    let first_id = labels["mutation-id"].clone();
    assert_eq!(
        fields_of(&created, "writer"),
        json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    assert_eq!(managed_fields(&created).len(), 1, "{created}");
    webhook_labels_unowned(&created);
    // The webhook already saw the writer's entry: tracked before admission.
    let review = s.one_review_since(before);
    assert_eq!(review["operation"], "CREATE");
    assert_eq!(
        review["object"]["metadata"]["managedFields"][0]["manager"], "writer",
        "{review}"
    );
    let stored = c.get("/api/v1/namespaces/mf/configmaps/c1").await.json();
    assert_eq!(
        stored["metadata"]["managedFields"],
        created["metadata"]["managedFields"]
    );

    // generateName: the name is generated after mutating admission (kube's BeforeCreate), so
    // the webhook sees generateName and no name.
    let before = s.log_len();
    let r = c
        .post_json(
            "/api/v1/namespaces/mf/configmaps",
            &json!({"metadata": {"generateName": "gen-"}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let gen = r.json();
    let gen_name = gen["metadata"]["name"].as_str().unwrap_or("");
    assert!(gen_name.starts_with("gen-") && gen_name.len() == 9, "{gen}");
    let review = s.one_review_since(before);
    assert_eq!(
        review["object"]["metadata"]["generateName"], "gen-",
        "{review}"
    );
    assert!(
        review["object"]["metadata"].get("name").is_none(),
        "{review}"
    );
    assert!(review.get("name").is_none(), "{review}");

    // Update (PUT): the putter owns what it changed; the webhook's new mutation-id is nobody's.
    let mut edited = stored.clone();
    edited["metadata"]["labels"]["b"] = json!("2");
    edited["data"]["k2"] = json!("v2");
    let r = c
        .put_json(
            "/api/v1/namespaces/mf/configmaps/c1?fieldManager=putter",
            &edited,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let updated = r.json();
    assert_ne!(
        updated["metadata"]["labels"]["mutation-id"], first_id,
        "{updated}"
    );
    assert_eq!(
        fields_of(&updated, "putter"),
        json!({"f:data": {"f:k2": {}}, "f:metadata": {"f:labels": {"f:b": {}}}})
    );
    assert_eq!(fields_of(&updated, "writer"), fields_of(&created, "writer"));
    webhook_labels_unowned(&updated);

    // Merge patch: likewise.
    let r = c
        .patch(
            "/api/v1/namespaces/mf/configmaps/c1?fieldManager=patcher",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"c": "3"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let patched = r.json();
    assert_ne!(
        patched["metadata"]["labels"]["mutation-id"],
        updated["metadata"]["labels"]["mutation-id"]
    );
    assert_eq!(
        fields_of(&patched, "patcher"),
        json!({"f:metadata": {"f:labels": {"f:c": {}}}})
    );
    assert_eq!(managed_fields(&patched).len(), 3, "{patched}");
    webhook_labels_unowned(&patched);
    let stored = c.get("/api/v1/namespaces/mf/configmaps/c1").await.json();
    assert_eq!(
        stored["metadata"]["managedFields"],
        patched["metadata"]["managedFields"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_review_carries_the_operation_options() {
    let s = start().await;
    let c = s.kapi.client();
    s.configuration(
        "Validating",
        "recorder",
        "/record",
        "opts",
        json!(["CREATE", "UPDATE", "DELETE"]),
    )
    .await;
    s.until_called("opts").await;
    let cms = "/api/v1/namespaces/opts/configmaps";

    // POST: CreateOptions, the query's fields as given.
    let before = s.log_len();
    let r = c
        .post_json(
            &format!("{cms}?fieldManager=mgr&fieldValidation=Strict"),
            &json!({"metadata": {"name": "o1"}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let uid = r.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let req = s.one_review_since(before);
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(req["dryRun"], false);
    assert_eq!(
        req["options"],
        json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1",
            "fieldManager": "mgr", "fieldValidation": "Strict"})
    );

    // A dry-run POST: dryRun in both places, nothing else set.
    let before = s.log_len();
    let r = c
        .post_json(
            &format!("{cms}?dryRun=All"),
            &json!({"metadata": {"name": "o2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let req = s.one_review_since(before);
    assert_eq!(req["dryRun"], true);
    assert_eq!(
        req["options"],
        json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]})
    );

    // PUT: UpdateOptions.
    let before = s.log_len();
    let r = c
        .put_json(
            &format!("{cms}/o1?fieldManager=putter"),
            &json!({"metadata": {"name": "o1"}, "data": {"k": "v2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let req = s.one_review_since(before);
    assert_eq!(req["operation"], "UPDATE");
    assert_eq!(
        req["options"],
        json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "putter"})
    );

    // PATCH: UpdateOptions too (patchToUpdateOptions), with fieldValidation.
    let before = s.log_len();
    let r = c
        .patch(
            &format!("{cms}/o1?fieldManager=patcher&fieldValidation=Ignore"),
            "application/merge-patch+json",
            &json!({"data": {"k": "v3"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let req = s.one_review_since(before);
    assert_eq!(req["operation"], "UPDATE");
    assert_eq!(
        req["options"],
        json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1",
            "fieldManager": "patcher", "fieldValidation": "Ignore"})
    );

    // DELETE with ?dryRun=All and no body.
    let before = s.log_len();
    let r = c
        .request(Method::DELETE, &format!("{cms}/o1?dryRun=All"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let req = s.one_review_since(before);
    assert_eq!(req["operation"], "DELETE");
    assert_eq!(req["dryRun"], true);
    assert_eq!(req["oldObject"]["metadata"]["name"], "o1");
    assert_eq!(
        req["options"],
        json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]})
    );

    // DELETE with a DeleteOptions body: its fields, retyped meta.k8s.io/v1.
    let before = s.log_len();
    let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
        "propagationPolicy": "Background", "preconditions": {"uid": uid}});
    let r = c
        .request(
            Method::DELETE,
            &format!("{cms}/o1"),
            Some("application/json"),
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let req = s.one_review_since(before);
    assert_eq!(req["operation"], "DELETE");
    assert_eq!(req["dryRun"], false);
    assert_eq!(
        req["options"],
        json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid}, "propagationPolicy": "Background"})
    );
    assert_eq!(
        c.get(&format!("{cms}/o1")).await.status,
        StatusCode::NOT_FOUND
    );
}

// ---- webhook configuration validation ------------------------------------------------------

/// A webhook that passes validation, for a resource nothing here writes.
fn valid_hook(name: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": {"url": "https://127.0.0.1:9/never"},
        "rules": [{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"],
            "resources": ["widgets"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    })
}

fn with(mut hook: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            hook.as_object_mut().unwrap().remove(k);
        } else {
            hook[k] = v.clone();
        }
    }
    hook
}

/// Asserts kube's 422 Invalid: the message and the causes as (field, reason, message).
fn assert_invalid(r: &RawResponse, kind: &str, name: &str, causes: &[(&str, &str, &str)]) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let parts: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
    let joined = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|(f, reason, m)| json!({"reason": reason, "message": m, "field": f}))
        .collect();
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind}.admissionregistration.k8s.io \"{name}\" is invalid: {joined}"),
            "reason": "Invalid",
            "details": {"name": name, "group": "admissionregistration.k8s.io", "kind": kind,
                "causes": causes},
            "code": 422})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_configurations_are_validated_like_kube() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    let c: RawClient = kapi.client();
    let mutating = format!("{ADMISSION}/mutatingwebhookconfigurations");
    let validating = format!("{ADMISSION}/validatingwebhookconfigurations");
    let config =
        |name: &str, hooks: Vec<Value>| json!({"metadata": {"name": name}, "webhooks": hooks});

    // sideEffects must be None or NoneOnDryRun on create.
    let r = c
        .post_json(
            &mutating,
            &config(
                "side-effects",
                vec![with(
                    valid_hook("a.example.com"),
                    json!({"sideEffects": "Some"}),
                )],
            ),
        )
        .await;
    assert_invalid(
        &r,
        "MutatingWebhookConfiguration",
        "side-effects",
        &[(
            "webhooks[0].sideEffects",
            "FieldValueNotSupported",
            r#"Unsupported value: "Some": supported values: "None", "NoneOnDryRun""#,
        )],
    );

    // sideEffects and admissionReviewVersions are required.
    let hook = with(
        valid_hook("a.example.com"),
        json!({"sideEffects": null, "admissionReviewVersions": null}),
    );
    let r = c
        .post_json(&validating, &config("required", vec![hook]))
        .await;
    assert_invalid(
        &r,
        "ValidatingWebhookConfiguration",
        "required",
        &[
            (
                "webhooks[0].sideEffects",
                "FieldValueRequired",
                "Required value: must specify one of None, NoneOnDryRun",
            ),
            (
                "webhooks[0].admissionReviewVersions",
                "FieldValueRequired",
                "Required value: must specify one of v1, v1beta1",
            ),
        ],
    );

    // Names, enums, ranges and review versions, in kube's order.
    let hooks = vec![
        with(
            valid_hook("a.example.com"),
            json!({"failurePolicy": "Sometimes", "timeoutSeconds": 0,
                "admissionReviewVersions": ["v2"]}),
        ),
        with(
            valid_hook("a.example.com"),
            json!({"matchPolicy": "Fuzzy", "timeoutSeconds": 31}),
        ),
        with(valid_hook("two.segments"), json!({"clientConfig": null})),
    ];
    let r = c.post_json(&validating, &config("many", hooks)).await;
    assert_invalid(
        &r,
        "ValidatingWebhookConfiguration",
        "many",
        &[
            (
                "webhooks[0].failurePolicy",
                "FieldValueNotSupported",
                r#"Unsupported value: "Sometimes": supported values: "Fail", "Ignore""#,
            ),
            (
                "webhooks[0].timeoutSeconds",
                "FieldValueInvalid",
                "Invalid value: 0: the timeout value must be between 1 and 30 seconds",
            ),
            (
                "webhooks[0].admissionReviewVersions",
                "FieldValueInvalid",
                r#"Invalid value: []string{"v2"}: must include at least one of v1, v1beta1"#,
            ),
            (
                "webhooks[1].matchPolicy",
                "FieldValueNotSupported",
                r#"Unsupported value: "Fuzzy": supported values: "Equivalent", "Exact""#,
            ),
            (
                "webhooks[1].timeoutSeconds",
                "FieldValueInvalid",
                "Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            ),
            (
                "webhooks[1].name",
                "FieldValueDuplicate",
                r#"Duplicate value: "a.example.com""#,
            ),
            (
                "webhooks[2].name",
                "FieldValueInvalid",
                r#"Invalid value: "two.segments": should be a domain with at least three segments separated by dots"#,
            ),
            (
                "webhooks[2].clientConfig",
                "FieldValueRequired",
                "Required value: exactly one of url or service is required",
            ),
        ],
    );
    for (path, name) in [
        (&mutating, "side-effects"),
        (&validating, "required"),
        (&validating, "many"),
    ] {
        assert_eq!(
            c.get(&format!("{path}/{name}")).await.status,
            StatusCode::NOT_FOUND,
            "{name} was stored"
        );
    }

    // A valid configuration is created; updates and patches are held to the same rules.
    let r = c
        .post_json(
            &validating,
            &config("good", vec![valid_hook("good.example.com")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut edited = r.json();
    edited["webhooks"][0]["sideEffects"] = json!("Unknown");
    let r = c.put_json(&format!("{validating}/good"), &edited).await;
    assert_invalid(
        &r,
        "ValidatingWebhookConfiguration",
        "good",
        &[(
            "webhooks[0].sideEffects",
            "FieldValueNotSupported",
            r#"Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun""#,
        )],
    );
    let r = c
        .patch(
            &format!("{validating}/good"),
            "application/merge-patch+json",
            &json!({"webhooks": [with(valid_hook("good.example.com"), json!({"timeoutSeconds": 45}))]}),
        )
        .await;
    assert_invalid(
        &r,
        "ValidatingWebhookConfiguration",
        "good",
        &[(
            "webhooks[0].timeoutSeconds",
            "FieldValueInvalid",
            "Invalid value: 45: the timeout value must be between 1 and 30 seconds",
        )],
    );
    let r = c
        .patch(
            &format!("{validating}/good"),
            "application/merge-patch+json",
            &json!({"webhooks": [with(valid_hook("good.example.com"), json!({"timeoutSeconds": 30}))]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["webhooks"][0]["timeoutSeconds"], 30);

    // Server-side apply creates are validated too.
    let applied = json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration", "metadata": {"name": "applied"},
        "webhooks": [with(valid_hook("applied.example.com"), json!({"sideEffects": "Unknown"}))]});
    let r = c
        .patch(
            &format!("{mutating}/applied?fieldManager=tester"),
            "application/apply-patch+yaml",
            &applied,
        )
        .await;
    // (The apply handler names the kind without its group; only the causes are checked.)
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let body = r.json();
    let message = r#"Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun""#;
    assert_eq!(
        body["details"]["causes"],
        json!([{"reason": "FieldValueNotSupported", "message": message,
            "field": "webhooks[0].sideEffects"}])
    );
    assert!(
        body["message"].as_str().unwrap().ends_with(&format!(
            "\"applied\" is invalid: webhooks[0].sideEffects: {message}"
        )),
        "{body}"
    );
    assert_eq!(
        c.get(&format!("{mutating}/applied")).await.status,
        StatusCode::NOT_FOUND
    );
}

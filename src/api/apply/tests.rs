//! Server-side apply and managedFields scenarios on Deployments.

use super::*;
use serde_json::{json, Map, Value};

const T1: &str = "2024-10-02T17:19:44Z";
const T2: &str = "2024-10-02T17:25:00Z";
const T3: &str = "2024-10-02T17:30:00Z";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

fn schema() -> Schema {
    Schema::for_kind("apps/v1", "Deployment", "")
}

/// The configuration `kubectl apply --server-side` sends for a small Deployment.
fn config(replicas: i64, image: &str) -> Map<String, Value> {
    obj(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]}
            }
        }
    }))
}

/// What the store adds on create (the parts of the strategy apply does not do).
fn persist(mut o: Map<String, Value>) -> Map<String, Value> {
    let m = o["metadata"].as_object_mut().unwrap();
    m.entry("uid")
        .or_insert_with(|| json!("6b1c1b43-2f6e-4a8e-9f41-4b0e1a6d3c11"));
    m.entry("creationTimestamp").or_insert_with(|| json!(T1));
    m.entry("generation").or_insert_with(|| json!(1));
    o
}

fn managed_fields(o: &Map<String, Value>) -> &Vec<Value> {
    o["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn entry<'a>(o: &'a Map<String, Value>, manager: &str) -> Option<&'a Value> {
    managed_fields(o).iter().find(|e| e["manager"] == manager)
}

fn owned(o: &Map<String, Value>, manager: &str) -> Vec<String> {
    let e = entry(o, manager).expect("manager entry");
    Set::from_fields_v1(&e["fieldsV1"])
        .unwrap()
        .paths()
        .iter()
        .map(|p| fieldpath::path_string(p))
        .collect()
}

fn apply_ok(
    live: Option<&Map<String, Value>>,
    cfg: &Map<String, Value>,
    manager: &str,
    force: bool,
    now: &str,
) -> Map<String, Value> {
    persist(apply(live, cfg, manager, force, &schema(), now).expect("apply succeeds"))
}

#[test]
fn apply_create_managed_fields_shape() {
    let out = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    // The entry exactly as kube-apiserver writes it for this configuration.
    let expected = r#"[{"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1","time":"2024-10-02T17:19:44Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}]"#;
    assert_eq!(
        serde_json::to_string(&out["metadata"]["managedFields"]).unwrap(),
        expected
    );
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
}

#[test]
fn apply_twice_is_idempotent() {
    let first = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    let second = apply_ok(Some(&first), &config(3, "nginx:1.25"), "kubectl", false, T2);
    assert_eq!(
        first, second,
        "a repeated apply changes nothing, not even the time"
    );
    assert_eq!(entry(&second, "kubectl").unwrap()["time"], T1);
}

#[test]
fn apply_conflict_with_another_applier() {
    let live = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    let err = apply(
        Some(&live),
        &config(5, "nginx:1.25"),
        "ci",
        false,
        &schema(),
        T2,
    )
    .expect_err("replicas belong to kubectl");
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    // The same values are no conflict: ownership is shared.
    let shared = apply_ok(Some(&live), &config(3, "nginx:1.25"), "ci", false, T2);
    assert!(owned(&shared, "ci").contains(&".spec.replicas".to_string()));
    assert!(owned(&shared, "kubectl").contains(&".spec.replicas".to_string()));
    // Two fields: grouped by manager.
    let err = apply(
        Some(&live),
        &config(5, "nginx:1.26"),
        "ci",
        false,
        &schema(),
        T2,
    )
    .expect_err("two conflicts");
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn apply_conflict_with_an_updater_status_body() {
    let live = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    // `kubectl scale`-like update by another manager.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(7);
    track_update(Some(&live), &mut scaled, "kubectl-edit", "Update", "", T2);
    assert_eq!(owned(&scaled, "kubectl-edit"), [".spec.replicas"]);
    assert!(!owned(&scaled, "kubectl").contains(&".spec.replicas".to_string()));

    let err = apply(
        Some(&scaled),
        &config(3, "nginx:1.25"),
        "kubectl",
        false,
        &schema(),
        T3,
    )
    .expect_err("replicas now belong to kubectl-edit");
    let api = err.to_api_error();
    assert_eq!(api.code, 409);
    assert_eq!(
        String::from_utf8(api.to_json()).unwrap(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas","reason":"Conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"kubectl-edit\" using apps/v1","field":".spec.replicas"}]},"code":409}"#
    );
}

#[test]
fn force_takes_ownership() {
    let live = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    let out = apply_ok(Some(&live), &config(5, "nginx:1.25"), "ci", true, T2);
    assert_eq!(out["spec"]["replicas"], 5);
    assert!(owned(&out, "ci").contains(&".spec.replicas".to_string()));
    assert!(!owned(&out, "kubectl").contains(&".spec.replicas".to_string()));
    // The former owner can now drop the field without removing it.
    let mut cfg = config(3, "nginx:1.25");
    cfg["spec"].as_object_mut().unwrap().remove("replicas");
    let again = apply_ok(Some(&out), &cfg, "kubectl", false, T3);
    assert_eq!(again["spec"]["replicas"], 5);
}

#[test]
fn omitted_fields_are_removed_unless_owned_by_others() {
    let mut cfg = config(3, "nginx:1.25");
    cfg["metadata"]["labels"]["tier"] = json!("frontend");
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "log", "image": "busybox"}));
    let live = apply_ok(None, &cfg, "kubectl", false, T1);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Drop replicas, the tier label and the log container.
    let mut smaller = config(3, "nginx:1.25");
    smaller["spec"].as_object_mut().unwrap().remove("replicas");
    let out = apply_ok(Some(&live), &smaller, "kubectl", false, T2);
    assert!(out["spec"].get("replicas").is_none());
    assert!(out["metadata"]["labels"].get("tier").is_none());
    assert_eq!(out["metadata"]["labels"]["app"], "web");
    let containers = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "nginx");
    assert_eq!(entry(&out, "kubectl").unwrap()["time"], T2);

    // A field another manager also owns stays.
    let other = obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"tier": "frontend"}}
    }));
    let shared = apply_ok(Some(&live), &other, "team", false, T2);
    let out = apply_ok(Some(&shared), &smaller, "kubectl", false, T3);
    assert_eq!(out["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(owned(&out, "team"), [".metadata.labels.tier"]);
}

#[test]
fn containers_merge_by_name() {
    let live = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    let sidecar = obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "envoy", "image": "envoy:1.30", "ports": [{"containerPort": 9901}]}
        ]}}}
    }));
    let out = apply_ok(Some(&live), &sidecar, "injector", false, T2);
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "envoy"]);
    assert_eq!(
        owned(&out, "injector"),
        [
            ".spec.template.spec.containers[name=\"envoy\"]",
            ".spec.template.spec.containers[name=\"envoy\"].image",
            ".spec.template.spec.containers[name=\"envoy\"].name",
            ".spec.template.spec.containers[name=\"envoy\"].ports[containerPort=9901,protocol=\"TCP\"]",
            ".spec.template.spec.containers[name=\"envoy\"].ports[containerPort=9901,protocol=\"TCP\"].containerPort",
        ]
    );
    // kubectl re-applies its own configuration: the injected container stays, the image update
    // lands on nginx only.
    let again = apply_ok(Some(&out), &config(3, "nginx:1.26"), "kubectl", false, T3);
    let containers = again["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(containers[1]["image"], "envoy:1.30");
}

#[test]
fn apply_rejects_bad_configurations() {
    let mut cfg = config(3, "nginx");
    cfg["spec"]["paused"] = json!("yes");
    let err = apply(None, &cfg, "kubectl", false, &schema(), T1).unwrap_err();
    assert_eq!(
        err.message(),
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.paused: expected boolean, got \"yes\""
    );
    assert_eq!(err.to_api_error().code, 500);
    let mut cfg = config(3, "nginx");
    cfg["apiVersion"] = json!("apps/v1beta1");
    let err = apply(None, &cfg, "kubectl", false, &schema(), T1).unwrap_err();
    assert_eq!(
        err,
        ApplyError::BadRequest(
            "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1".into()
        )
    );
    let mut cfg = config(3, "nginx");
    cfg["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(None, &cfg, "kubectl", false, &schema(), T1).unwrap_err(),
        ApplyError::BadRequest("metadata.managedFields must be nil".into())
    );
}

/// A Deployment as kube-apiserver stores it after `kubectl create deployment` and defaulting.
fn created_deployment() -> Map<String, Value> {
    obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "nginx-0930", "namespace": "default",
            "uid": "037dfd90-08c3-45e3-89ca-0492c3d74b6f", "generation": 1,
            "creationTimestamp": T1, "labels": {"app": "nginx-0930"}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx-0930"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "nginx-0930"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx", "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "imagePullPolicy": "Always"
                    }],
                    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst", "securityContext": {},
                    "schedulerName": "default-scheduler"
                }
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
        },
        "status": {}
    }))
}

#[test]
fn create_tracks_like_kube_apiserver() {
    let mut new = created_deployment();
    track_update(None, &mut new, "kubectl-create", "Update", "", T1);
    // Observed from kube-apiserver for this very object (kubectl create deployment).
    let expected = r#"[{"manager":"kubectl-create","operation":"Update","apiVersion":"apps/v1","time":"2024-10-02T17:19:44Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}}]"#;
    assert_eq!(
        serde_json::to_string(&new["metadata"]["managedFields"]).unwrap(),
        expected
    );
}

#[test]
fn updates_move_ownership_and_status_has_its_own_entry() {
    let mut live = created_deployment();
    track_update(None, &mut live, "kubectl-create", "Update", "", T1);

    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:stable");
    track_update(Some(&live), &mut edited, "kubectl-edit", "Update", "", T2);
    assert_eq!(
        owned(&edited, "kubectl-edit"),
        [".spec.template.spec.containers[name=\"nginx\"].image"]
    );
    assert!(!owned(&edited, "kubectl-create")
        .contains(&".spec.template.spec.containers[name=\"nginx\"].image".to_string()));

    let mut status = edited.clone();
    status["status"] = json!({"replicas": 1, "observedGeneration": 1});
    track_update(
        Some(&edited),
        &mut status,
        "kube-controller-manager",
        "Update",
        "status",
        T3,
    );
    let e = entry(&status, "kube-controller-manager").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        serde_json::to_string(&e["fieldsV1"]).unwrap(),
        r#"{"f:status":{"f:observedGeneration":{},"f:replicas":{}}}"#
    );
    let order: Vec<&str> = managed_fields(&status)
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["kubectl-create", "kubectl-edit", "kube-controller-manager"]
    );

    // The main endpoint never tracks status (it is reset there).
    let mut sneaky = status.clone();
    sneaky["status"]["replicas"] = json!(9);
    sneaky["metadata"]["labels"]["x"] = json!("y");
    track_update(Some(&status), &mut sneaky, "mallory", "Update", "", T3);
    assert_eq!(owned(&sneaky, "mallory"), [".metadata.labels.x"]);
}

#[test]
fn no_op_updates_keep_timestamps_and_reset_clears() {
    let mut live = created_deployment();
    track_update(None, &mut live, "kubectl-create", "Update", "", T1);
    let mut same = live.clone();
    track_update(Some(&live), &mut same, "kubectl-edit", "Update", "", T3);
    assert_eq!(same, live);

    // Omitting managedFields keeps them.
    let mut omitted = live.clone();
    omitted["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    track_update(Some(&live), &mut omitted, "kubectl-edit", "Update", "", T3);
    assert_eq!(omitted, live);

    // `managedFields: []` clears them.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    track_update(Some(&live), &mut reset, "kubectl-edit", "Update", "", T3);
    assert!(reset["metadata"].get("managedFields").is_none());
    // ... and an untracked object stays untracked on update.
    let mut later = reset.clone();
    later["spec"]["replicas"] = json!(2);
    track_update(Some(&reset), &mut later, "kubectl-edit", "Update", "", T3);
    assert!(later["metadata"].get("managedFields").is_none());
}

#[test]
fn update_managers_are_capped_at_ten() {
    let mut live = created_deployment();
    track_update(None, &mut live, "kubectl-create", "Update", "", T1);
    for i in 0..12 {
        let mut next = live.clone();
        next["metadata"]["labels"][format!("l{i}")] = json!("v");
        let now = format!("2024-10-02T18:{i:02}:00Z");
        track_update(Some(&live), &mut next, &format!("m{i}"), "Update", "", &now);
        live = next;
    }
    let mf = managed_fields(&live);
    assert_eq!(mf.len(), 10);
    let ancient = entry(&live, "ancient-changes").expect("a bucket");
    assert_eq!(ancient["operation"], "Update");
    // The bucket took kubectl-create, m0, m1 and m2; it carries the newest merged time.
    assert_eq!(ancient["time"], "2024-10-02T18:02:00Z");
    let fields = Set::from_fields_v1(&ancient["fieldsV1"]).unwrap();
    let paths: Vec<String> = fields
        .paths()
        .iter()
        .map(|p| fieldpath::path_string(p))
        .collect();
    assert!(paths.contains(&".metadata.labels.l0".to_string()));
    assert!(paths.contains(&".metadata.labels.l2".to_string()));
    assert!(paths.contains(&".spec.replicas".to_string()));
    assert!(entry(&live, "m3").is_some());
    assert!(entry(&live, "kubectl-create").is_none());
}

#[test]
fn first_apply_to_an_untracked_object() {
    let mut live = created_deployment();
    live["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    let cfg = obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-0930"}, "spec": {"replicas": 4}
    }));
    let err = apply(Some(&live), &cfg, "kubectl", false, &schema(), T2).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
    let out = apply(Some(&live), &cfg, "kubectl", true, &schema(), T2).unwrap();
    assert_eq!(owned(&out, "kubectl"), [".spec.replicas"]);
    assert!(entry(&out, "before-first-apply").is_some());
}

#[test]
fn kubectl_apply_updates_last_applied_annotation() {
    let mut live = apply_ok(None, &config(3, "nginx"), "kubectl", false, T1);
    live["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"
    });
    let out = apply_ok(Some(&live), &config(4, "nginx"), "kubectl", false, T2);
    let text = out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(text.starts_with(
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"labels\""
    ));
    assert!(text.ends_with("}\n"));
    assert_eq!(out["spec"]["replicas"], 4);
}

#[test]
fn manager_names_and_options() {
    assert_eq!(
        manager_or_user_agent(
            None,
            Some("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07")
        ),
        "kubectl"
    );
    assert_eq!(
        manager_or_user_agent(Some("helm"), Some("kubectl/v1")),
        "helm"
    );
    assert_eq!(manager_or_user_agent(None, None), "");
    let long = "x".repeat(200);
    assert_eq!(manager_or_user_agent(None, Some(&long)).len(), 128);

    let e = validate_patch_options(true, None, None).unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let e = validate_patch_options(false, Some("x"), Some(true)).unwrap_err();
    assert_eq!(
        e.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    assert!(validate_patch_options(true, Some("kubectl"), Some(false)).is_ok());
    let e = validate_field_manager("CreateOptions", Some(&long)).unwrap_err();
    assert_eq!(
        e.message,
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
    );
    let e = validate_field_manager("UpdateOptions", Some("a\u{1}b")).unwrap_err();
    assert_eq!(
        e.message,
        "UpdateOptions.meta.k8s.io \"\" is invalid: fieldManager: Invalid value: \"a\\x01b\": invalid character U+0001 (at position 1)"
    );
    assert_eq!(
        parse_force(Some("fieldManager=k&force=true")).unwrap(),
        Some(true)
    );
    assert_eq!(parse_force(None).unwrap(), None);
}

#[test]
fn apply_a_config_map_and_a_custom_resource() {
    let cm_schema = Schema::for_kind("v1", "ConfigMap", "");
    let cfg = obj(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}
    }));
    let out = apply(None, &cfg, "kubectl", false, &cm_schema, T1).unwrap();
    assert_eq!(
        serde_json::to_string(&entry(&out, "kubectl").unwrap()["fieldsV1"]).unwrap(),
        r#"{"f:data":{"f:a":{},"f:b":{}}}"#
    );
    let cfg2 = obj(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"a": "1"}
    }));
    let out2 = apply(Some(&out), &cfg2, "kubectl", false, &cm_schema, T2).unwrap();
    assert_eq!(out2["data"], json!({"a": "1"}));
}

#[test]
fn apply_a_custom_resource_without_schema() {
    let s = Schema::for_kind("example.com/v1", "Widget", "");
    assert!(s.definition.is_none());
    let cfg = obj(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, "colors": ["red", "blue"], "extra": {"a": 1}}
    }));
    let out = apply(None, &cfg, "kubectl", false, &s, T1).unwrap();
    assert_eq!(
        serde_json::to_string(&entry(&out, "kubectl").unwrap()["fieldsV1"]).unwrap(),
        r#"{"f:spec":{".":{},"f:colors":{},"f:extra":{".":{},"f:a":{}},"f:size":{}}}"#
    );
    let cfg2 = obj(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"colors": ["green"]}
    }));
    let out2 = apply(Some(&out), &cfg2, "kubectl", false, &s, T2).unwrap();
    assert_eq!(out2["spec"], json!({"colors": ["green"]}));
}

#[test]
fn dropped_field_owned_by_an_updater_stays() {
    let live = apply_ok(None, &config(3, "nginx:1.25"), "kubectl", false, T1);
    let mut edited = live.clone();
    edited["metadata"]["labels"]["app"] = json!("web");
    edited["metadata"]["labels"]["team"] = json!("a");
    track_update(Some(&live), &mut edited, "kubectl-label", "Update", "", T2);
    assert_eq!(owned(&edited, "kubectl-label"), [".metadata.labels.team"]);
    let mut cfg = config(3, "nginx:1.25");
    cfg["metadata"].as_object_mut().unwrap().remove("labels");
    let out = apply_ok(Some(&edited), &cfg, "kubectl", false, T3);
    assert_eq!(out["metadata"]["labels"], json!({"team": "a"}));
}

#[test]
fn client_side_to_server_side_apply_upgrade() {
    // `kubectl apply` (client-side): the object and its last-applied annotation.
    let cfg = config(3, "nginx:1.25");
    let mut created = persist(cfg.clone());
    created["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration":
            format!("{}\n", serde_json::to_string(&Value::Object(cfg.clone())).unwrap())
    });
    track_update(
        None,
        &mut created,
        "kubectl-client-side-apply",
        "Update",
        "",
        T1,
    );

    // Another manager still conflicts on a changed field.
    let err = apply(
        Some(&created),
        &config(4, "nginx:1.25"),
        "ci",
        false,
        &schema(),
        T2,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    // `kubectl apply --server-side` takes over the fields its annotation set.
    let out = apply_ok(
        Some(&created),
        &config(4, "nginx:1.25"),
        "kubectl",
        false,
        T2,
    );
    assert_eq!(out["spec"]["replicas"], 4);
    assert!(owned(&out, "kubectl").contains(&".spec.replicas".to_string()));
    let text = out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(text.contains("\"replicas\":4"));
}

#[test]
fn rfc3339_seconds() {
    use super::managed::unix_seconds;
    assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(unix_seconds("2024-10-02T17:19:44Z"), Some(1727889584));
    assert_eq!(
        unix_seconds("2024-10-02T19:19:44.5+02:00"),
        Some(1727889584)
    );
    assert_eq!(unix_seconds("2024-10-02T17:19:4é"), None);
    assert_eq!(unix_seconds("garbage"), None);
}

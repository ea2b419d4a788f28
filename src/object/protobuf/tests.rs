use super::*;
use serde_json::json;

/// JSON text to a value (large literals overflow `json!`'s recursion limit).
fn j(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// JSON → protobuf → JSON must give back the same object.
fn roundtrip(v: Value) -> Vec<u8> {
    let input = obj(v);
    let bytes = encode_object(&input).unwrap_or_else(|e| panic!("encode: {e}"));
    assert!(bytes.starts_with(MAGIC));
    let (api_version, kind, back) = decode_object(&bytes).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(api_version, input["apiVersion"].as_str().unwrap());
    assert_eq!(kind, input["kind"].as_str().unwrap());
    let (want, got) = (Value::Object(input), Value::Object(back));
    if want != got {
        panic!(
            "round trip differs\nwant: {}\n got: {}",
            serde_json::to_string_pretty(&want).unwrap(),
            serde_json::to_string_pretty(&got).unwrap()
        );
    }
    bytes
}

fn pod_json() -> Value {
    j(r#"{
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "web-0",
            "generateName": "web-",
            "namespace": "default",
            "uid": "6f1c2a7e-3c1b-4d2a-9f0e-0123456789ab",
            "resourceVersion": "12345",
            "generation": 1,
            "creationTimestamp": "2024-05-01T10:20:30Z",
            "deletionTimestamp": "2024-05-02T00:00:00Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":1}\n"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                "uid": "11111111-2222-3333-4444-555555555555",
                "controller": true, "blockOwnerDeletion": true
            }],
            "finalizers": ["example.com/cleanup"],
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-05-01T10:20:30Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}
                }
            }, {
                "manager": "kubelet",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-05-01T10:20:41Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:phase": {}}},
                "subresource": "status"
            }]
        },
        "spec": {
            "volumes": [
                {"name": "creds", "secret": {
                    "secretName": "db-creds", "defaultMode": 420,
                    "items": [{"key": "password", "path": "pw", "mode": 256}]
                }},
                {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "cfg", "configMap": {"name": "web-config", "optional": true}},
                {"name": "kube-api-access", "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                    ],
                    "defaultMode": 420
                }}
            ],
            "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
            "containers": [{
                "name": "web",
                "image": "nginx:1.25",
                "args": ["-g", "daemon off;"],
                "workingDir": "/srv",
                "ports": [
                    {"name": "http", "containerPort": 80, "protocol": "TCP"},
                    {"containerPort": 9090, "hostPort": 19090, "hostIP": "0.0.0.0", "protocol": "UDP"}
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "web-config"}}],
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                    {"name": "DB_PASS", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}},
                    {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "mode", "optional": false}}},
                    {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"containerName": "web", "resource": "limits.cpu", "divisor": "1m"}}}
                ],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                    "requests": {"cpu": "250m", "memory": "128Mi", "ephemeral-storage": "1Gi"}
                },
                "volumeMounts": [{"name": "creds", "readOnly": true, "mountPath": "/etc/creds"}],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP",
                                "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                    "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                    "successThreshold": 1, "failureThreshold": 3
                },
                "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
                "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30,
                                 "terminationGracePeriodSeconds": 10},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {
                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                    "runAsUser": 0, "runAsNonRoot": false, "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false
                }
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "activeDeadlineSeconds": 600,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "serviceAccountName": "web",
            "automountServiceAccountToken": false,
            "nodeName": "node-1",
            "hostNetwork": false,
            "hostPID": false,
            "hostIPC": false,
            "shareProcessNamespace": true,
            "securityContext": {"fsGroup": 2000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
            "imagePullSecrets": [{"name": "regcred"}],
            "hostname": "web-0",
            "subdomain": "web",
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                    "topologyKey": "kubernetes.io/hostname"
                }
            }]}},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}
            ],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db.local"]}],
            "priorityClassName": "high",
            "priority": 1000,
            "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "overhead": {"cpu": "10m"},
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}
            }],
            "setHostnameAsFQDN": false
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:21:00Z"}
            ],
            "hostIP": "192.168.1.10",
            "hostIPs": [{"ip": "192.168.1.10"}],
            "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
            "startTime": "2024-05-01T10:20:31Z",
            "initContainerStatuses": [{
                "name": "init",
                "state": {"terminated": {"exitCode": -1, "signal": 9, "reason": "Error",
                          "startedAt": "2024-05-01T10:20:31Z", "finishedAt": "2024-05-01T10:20:32Z"}},
                "lastState": {},
                "ready": false, "restartCount": 0, "image": "busybox:1.36", "imageID": "", "started": false
            }],
            "containerStatuses": [{
                "name": "web",
                "state": {"running": {"startedAt": "2024-05-01T10:20:40Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                              "startedAt": "2024-05-01T10:20:32Z", "finishedAt": "2024-05-01T10:20:39Z",
                              "containerID": "containerd://abc"}},
                "ready": true,
                "restartCount": 1,
                "image": "nginx:1.25",
                "imageID": "docker.io/library/nginx@sha256:0123",
                "containerID": "containerd://def",
                "started": true
            }],
            "qosClass": "Burstable"
        }
    }"#)
}

#[test]
fn pod_round_trip() {
    roundtrip(pod_json());
}

#[test]
fn decoded_json_is_in_kube_apiserver_order() {
    let bytes = encode_object(&obj(pod_json())).unwrap();
    let (_, _, back) = decode_object(&bytes).unwrap();
    let keys: Vec<&str> = back.keys().map(String::as_str).collect();
    assert_eq!(keys, ["kind", "apiVersion", "metadata", "spec", "status"]);
    let meta: Vec<&str> = back["metadata"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &meta[..6],
        [
            "name",
            "generateName",
            "namespace",
            "uid",
            "resourceVersion",
            "generation"
        ]
    );
    // Inlined volume source and probe handler stay where Go puts them.
    let vol: Vec<&str> = back["spec"]["volumes"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(vol, ["name", "secret"]);
}

#[test]
fn deployment_round_trip() {
    roundtrip(json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "web", "namespace": "default", "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "3"},
            "generation": 4, "creationTimestamp": "2024-05-01T10:00:00Z"
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {}}]}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
            "minReadySeconds": 0,
            "revisionHistoryLimit": 10,
            "paused": false,
            "progressDeadlineSeconds": 600
        },
        "status": {
            "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
            "availableReplicas": 3,
            "conditions": [{
                "type": "Available", "status": "True",
                "lastUpdateTime": "2024-05-01T10:01:00Z", "lastTransitionTime": "2024-05-01T10:01:00Z",
                "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."
            }]
        }
    }));
}

#[test]
fn service_round_trip() {
    roundtrip(json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
                {"name": "metrics", "protocol": "TCP", "appProtocol": "http", "port": 9090,
                 "targetPort": 9091, "nodePort": 30090}
            ],
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "type": "NodePort",
            "externalIPs": ["1.2.3.4"],
            "sessionAffinity": "ClientIP",
            "loadBalancerIP": "",
            "externalTrafficPolicy": "Cluster",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [{"port": 80, "protocol": "TCP"}]}]}}
    }));
}

#[test]
fn secret_and_configmap_bytes_round_trip() {
    let bytes = roundtrip(json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "db-creds", "namespace": "default"},
        "immutable": true,
        "data": {"password": "c2VjcmV0", "bin": "AAEC/w==", "empty": ""},
        "type": "Opaque"
    }));
    // The protobuf carries the raw bytes, not the base64 text.
    assert!(bytes.windows(6).any(|w| w == b"secret"));
    assert!(!bytes.windows(8).any(|w| w == b"c2VjcmV0"));
    roundtrip(json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "web-config", "namespace": "default"},
        "data": {"mode": "prod", "app.properties": "a=1\nb=2\n"},
        "binaryData": {"logo.png": "iVBORw0KGgo="}
    }));
    let bad = obj(json!({"kind": "Secret", "apiVersion": "v1", "data": {"x": "not base64!"}}));
    let err = encode_object(&bad).unwrap_err();
    assert!(err.contains("base64") && err.contains("data"), "{err}");
}

#[test]
fn namespace_node_event_lease_rbac_round_trip() {
    roundtrip(json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active", "conditions": [{"type": "NamespaceDeletionDiscoveryFailure",
            "status": "False", "lastTransitionTime": "2024-05-01T10:00:00Z", "reason": "ResourcesDiscovered",
            "message": "All resources successfully discovered"}]}
    }));
    roundtrip(json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {
            "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"],
            "providerID": "kind://docker/kind/node-1",
            "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                        "timeAdded": "2024-05-01T10:00:00Z"}],
            "unschedulable": true
        },
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "7800m", "memory": "31Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-05-01T10:00:00Z",
                            "lastTransitionTime": "2024-05-01T09:00:00Z", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "node-1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1",
                         "osImage": "Debian", "containerRuntimeVersion": "containerd://1.7",
                         "kubeletVersion": "v1.35.0", "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64"},
            "images": [{"names": ["nginx:1.25"], "sizeBytes": 123_456_789_012i64}],
            "volumesAttached": [{"name": "kubernetes.io/csi/x", "devicePath": ""}]
        }
    }));
    roundtrip(json!({
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "web-0.17c", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "u",
                           "apiVersion": "v1", "resourceVersion": "12", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled",
        "message": "Container image \"nginx:1.25\" already present on machine",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T10:20:35Z",
        "lastTimestamp": "2024-05-01T10:25:35Z",
        "count": 3,
        "type": "Normal",
        "eventTime": "2024-05-01T10:20:35.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-05-01T10:25:35.000001Z"},
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1"
    }));
    roundtrip(json!({
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
        "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 15,
                 "acquireTime": "2024-05-01T10:00:00.000000Z",
                 "renewTime": "2024-05-01T10:20:30.987654Z", "leaseTransitions": 2}
    }));
    roundtrip(json!({
        "kind": "Role",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "pod-reader", "namespace": "default"},
        "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "pods/log"],
                   "resourceNames": ["web-0"]}]
    }));
    roundtrip(json!({
        "kind": "ClusterRole",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "metrics"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics", "/healthz/*"]}],
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]}
    }));
    roundtrip(json!({
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "read-pods", "namespace": "default"},
        "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "default"},
                     {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}
    }));
}

#[test]
fn list_and_status_round_trip() {
    let mut item = obj(pod_json());
    item.remove("kind");
    item.remove("apiVersion");
    roundtrip(json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "100", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", "remainingItemCount": 5},
        "items": [Value::Object(item), {"metadata": {"name": "b", "namespace": "default"}, "spec": {}, "status": {}}]
    }));
    roundtrip(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "pods \"x\" not found",
        "reason": "NotFound",
        "details": {"name": "x", "kind": "pods", "uid": "",
                    "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "metadata.name"}],
                    "retryAfterSeconds": 1},
        "code": 404
    }));
    assert!(is_supported("v1", "Status"));
    assert!(is_supported("meta.k8s.io/v1", "Status"));
    assert!(is_supported("v1", "PodList"));
    assert!(is_supported("apps/v1", "DeploymentList"));
    assert!(is_supported("meta.k8s.io/v1", "PartialObjectMetadataList"));
    assert!(is_supported("v1", "DeleteOptions"));
    assert!(is_supported("policy/v1", "Eviction"));
    assert!(is_supported("autoscaling/v1", "Scale"));
    assert!(is_supported("authentication.k8s.io/v1", "TokenRequest"));
    assert!(is_supported("apiregistration.k8s.io/v1", "APIService"));
    assert!(is_supported(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition"
    ));
    assert!(!is_supported("v1", "PodSpec"));
    assert!(!is_supported("apps/v1", "Pod"));
    assert!(!is_supported("example.com/v1", "Widget"));
}

#[test]
fn partial_object_metadata_and_delete_options() {
    roundtrip(json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "7"},
        "items": [{"metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "5",
                                "creationTimestamp": "2024-05-01T10:00:00Z"}}]
    }));
    roundtrip(json!({
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/v1",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u", "resourceVersion": "3"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"]
    }));
}

#[test]
fn crd_schema_unions_round_trip() {
    roundtrip(json!({
        "kind": "CustomResourceDefinition",
        "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                      "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "size": {"type": "integer", "format": "int32", "minimum": 1.0, "maximum": 10.5,
                                         "default": 3},
                                "mode": {"type": "string", "enum": ["a", "b"]},
                                "port": {"x-kubernetes-int-or-string": true,
                                         "anyOf": [{"type": "integer"}, {"type": "string"}]},
                                "tags": {"type": "array", "items": {"type": "string"},
                                         "x-kubernetes-list-type": "set"},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "free": {"type": "object", "additionalProperties": false}
                            },
                            "dependencies": {"mode": ["size"]},
                            "x-kubernetes-validations": [{"rule": "self.size < 100", "message": "too big"}]
                        }
                    }
                }},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                                                         "statusReplicasPath": ".status.size"}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]
            }],
            "conversion": {"strategy": "None"}
        }
    }));
}

#[test]
fn raw_extension_holds_embedded_json() {
    roundtrip(json!({
        "kind": "ControllerRevision",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web-7d4b9c", "namespace": "default"},
        "data": {"spec": {"template": {"$patch": "replace", "spec": {"containers": [{"name": "web"}]}}}},
        "revision": 3
    }));
}

#[test]
fn go_style_zero_fields_decode_losslessly() {
    // Go writes non-pointer fields even when empty: they come back as explicit zero values.
    let mut meta = Vec::new();
    wire::put_len(&mut meta, 1, b"a"); // name
    wire::put_len(&mut meta, 2, b""); // generateName
    wire::put_uint(&mut meta, 7, 0); // generation
    wire::put_len(&mut meta, 8, b""); // creationTimestamp: zero Time
    let mut pod = Vec::new();
    wire::put_len(&mut pod, 1, &meta);
    wire::put_len(&mut pod, 2, b""); // spec {}
    wire::put_uint(&mut pod, 999, 7); // unknown field: skipped
    let body = envelope("v1", "Pod", &pod);
    let (_, _, got) = decode_object(&body).unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"kind": "Pod", "apiVersion": "v1",
               "metadata": {"name": "a", "generateName": "", "generation": 0, "creationTimestamp": null},
               "spec": {}})
    );
}

fn tag_of(message: &str, json: &str) -> u32 {
    let m = schema::MESSAGES.iter().find(|m| m.name == message).unwrap();
    m.fields.iter().find(|f| f.json == json).unwrap().tag
}

#[test]
fn repeated_scalars_packed_or_not_and_negative_numbers() {
    let want = json!({"kind": "Pod", "apiVersion": "v1",
        "spec": {"securityContext": {"supplementalGroups": [1, 300, -2]}}});
    roundtrip(want.clone());
    // The same list packed (proto3 style) decodes the same.
    let mut packed = Vec::new();
    for v in [1i64, 300, -2] {
        wire::put_varint(&mut packed, v as u64);
    }
    let mut psc = Vec::new();
    let groups = tag_of("api::core::v1::PodSecurityContext", "supplementalGroups");
    wire::put_len(&mut psc, groups, &packed);
    let mut spec = Vec::new();
    wire::put_len(
        &mut spec,
        tag_of("api::core::v1::PodSpec", "securityContext"),
        &psc,
    );
    let mut pod = Vec::new();
    wire::put_len(&mut pod, 2, &spec);
    let (_, _, got) = decode_object(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(Value::Object(got), want);
    // A negative int32 (metav1.Status.code), sign-extended to 10 bytes on the wire.
    let mut status = Vec::new();
    wire::put_uint(
        &mut status,
        tag_of("apimachinery::pkg::apis::meta::v1::Status", "code"),
        (-5i64) as u64,
    );
    let (_, _, got) = decode_object(&envelope("v1", "Status", &status)).unwrap();
    assert_eq!(got["code"], -5);
}

#[test]
fn errors_are_reported_not_panicked() {
    assert!(decode_object(b"").is_err());
    assert!(decode_object(b"{}").is_err());
    assert!(decode_object(b"k8s\0\x0a\xff").is_err());
    let unknown_kind = envelope("example.com/v1", "Widget", b"");
    assert!(decode_object(&unknown_kind)
        .unwrap_err()
        .contains("no kind \"Widget\""));
    let truncated = envelope("v1", "Pod", b"\x0a\x05ab");
    assert!(decode_object(&truncated).is_err());
    // Wrong JSON types name the field.
    let err = encode_object(&obj(json!({"kind": "Pod", "apiVersion": "v1",
        "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}})))
    .unwrap_err();
    assert!(err.contains("containerPort"), "{err}");
    assert!(encode_object(&obj(json!({"apiVersion": "v1"}))).is_err());
    // Deeply nested input is refused, not a stack overflow.
    let mut deep = json!({"type": "object"});
    for _ in 0..200 {
        deep = json!({"type": "object", "properties": {"x": deep}});
    }
    let crd = json!({"kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1",
        "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": deep}}]}});
    assert!(encode_object(&obj(crd)).is_err());
}

#[test]
fn watch_frame_layout() {
    let env = encode_object(&obj(pod_json())).unwrap();
    let frame = encode_watch_frame("ADDED", &env);
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    let mut r = wire::Reader::new(&frame[4..]);
    assert_eq!(r.key().unwrap(), (1, wire::LEN));
    assert_eq!(r.bytes().unwrap(), b"ADDED");
    assert_eq!(r.key().unwrap(), (2, wire::LEN));
    let mut raw = wire::Reader::new(r.bytes().unwrap());
    assert_eq!(raw.key().unwrap(), (1, wire::LEN));
    assert_eq!(raw.bytes().unwrap(), &env[..]);
    assert!(r.is_empty());
}

#[test]
fn special_messages_have_the_expected_field_numbers() {
    // The hand-written parts of the transcoder assume these upstream field numbers.
    use schema::{Special, Ty, MESSAGES};
    let expect: &[(Special, &[(u32, Ty)])] = &[
        (Special::Time, &[(1, Ty::Int64), (2, Ty::Int32)]),
        (Special::MicroTime, &[(1, Ty::Int64), (2, Ty::Int32)]),
        (Special::Duration, &[(1, Ty::Int64)]),
        (Special::Quantity, &[(1, Ty::String)]),
        (
            Special::IntOrString,
            &[(1, Ty::Int64), (2, Ty::Int32), (3, Ty::String)],
        ),
        (Special::RawExtension, &[(1, Ty::Bytes)]),
        (Special::FieldsV1, &[(1, Ty::Bytes)]),
        (Special::Json, &[(1, Ty::Bytes)]),
        (Special::StringList, &[(1, Ty::String)]),
    ];
    for (special, fields) in expect {
        let found: Vec<_> = MESSAGES.iter().filter(|m| m.special == *special).collect();
        assert!(!found.is_empty(), "{special:?}");
        for m in found {
            let got: Vec<(u32, Ty)> = m.fields.iter().map(|f| (f.tag, f.ty)).collect();
            assert_eq!(&got[..], *fields, "{}", m.name);
        }
    }
    for m in MESSAGES.iter().filter(|m| {
        matches!(
            m.special,
            Special::SchemaOrBool | Special::SchemaOrArray | Special::SchemaOrStringArray
        )
    }) {
        let tags: Vec<u32> = m.fields.iter().map(|f| f.tag).collect();
        assert_eq!(tags, [1, 2], "{}", m.name);
    }
    assert!(schema::source().contains("k8s-pb"));
}

#[test]
fn json_names_come_from_the_json_side() {
    // Names where the proto field name or prost's snake_case would mislead.
    let find = |name: &str| {
        schema::MESSAGES
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let names = |name: &str| -> Vec<&str> { find(name).fields.iter().map(|f| f.json).collect() };
    assert!(names("api::core::v1::PodStatus").contains(&"podIPs"));
    assert!(names("api::core::v1::DaemonEndpoint").contains(&"Port"));
    assert!(names("api::networking::v1::IngressClassParametersReference").contains(&"apiGroup"));
    assert!(names("api::rbac::v1::PolicyRule").contains(&"nonResourceURLs"));
    let props = names("apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaProps");
    assert!(props.contains(&"$ref") && props.contains(&"x-kubernetes-list-type"));
    assert!(find("api::core::v1::Volume")
        .fields
        .iter()
        .any(|f| f.inline));
    assert!(find("api::networking::v1::IngressRule")
        .fields
        .iter()
        .any(|f| f.inline));
}

// ---------------------------------------------------------------------------------------------
// Wire compatibility with an independent implementation: k8s-pb's prost types.

mod cross {
    use super::*;
    use k8s_pb::api::coordination::v1 as coordination;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message as _;
    use std::collections::BTreeMap;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn time(seconds: i64) -> Option<meta::Time> {
        Some(meta::Time {
            seconds: Some(seconds),
            nanos: Some(0),
        })
    }

    fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
            .collect()
    }

    /// Wraps prost-encoded bytes in the envelope with k8s-pb's own `runtime.Unknown`.
    fn wrap(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s(api_version),
                kind: s(kind),
            }),
            raw: Some(raw),
            content_encoding: s(""),
            content_type: s(""),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    /// Our envelope, opened with k8s-pb.
    fn unwrap(body: &[u8]) -> (TypeMeta, Vec<u8>) {
        let unknown = Unknown::decode(body.strip_prefix(MAGIC).unwrap()).unwrap();
        (unknown.type_meta.unwrap(), unknown.raw.unwrap())
    }

    const T0: i64 = 1_714_558_830; // 2024-05-01T10:20:30Z

    fn pb_pod() -> core::Pod {
        let fields_v1 = br#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}"#.to_vec();
        core::Pod {
            metadata: Some(meta::ObjectMeta {
                name: s("web-0"),
                namespace: s("default"),
                uid: s("u-1"),
                generation: Some(3),
                creation_timestamp: time(T0),
                labels: [("app".to_string(), "web".to_string())].into(),
                annotations: [("note".to_string(), "x".to_string())].into(),
                owner_references: vec![meta::OwnerReference {
                    api_version: s("apps/v1"),
                    kind: s("ReplicaSet"),
                    name: s("web-7d4b9c"),
                    uid: s("u-rs"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }],
                managed_fields: vec![meta::ManagedFieldsEntry {
                    manager: s("kubectl"),
                    operation: s("Update"),
                    api_version: s("v1"),
                    time: time(T0),
                    fields_type: s("FieldsV1"),
                    fields_v1: Some(meta::FieldsV1 {
                        raw: Some(fields_v1),
                    }),
                    subresource: None,
                }],
                ..Default::default()
            }),
            spec: Some(core::PodSpec {
                volumes: vec![core::Volume {
                    name: s("creds"),
                    volume_source: Some(core::VolumeSource {
                        secret: Some(core::SecretVolumeSource {
                            secret_name: s("db-creds"),
                            default_mode: Some(420),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                }],
                containers: vec![core::Container {
                    name: s("web"),
                    image: s("nginx:1.25"),
                    ports: vec![core::ContainerPort {
                        name: s("http"),
                        container_port: Some(80),
                        protocol: s("TCP"),
                        ..Default::default()
                    }],
                    env: vec![
                        core::EnvVar {
                            name: s("MODE"),
                            value: s("prod"),
                            value_from: None,
                        },
                        core::EnvVar {
                            name: s("CFG"),
                            value: None,
                            value_from: Some(core::EnvVarSource {
                                config_map_key_ref: Some(core::ConfigMapKeySelector {
                                    local_object_reference: Some(core::LocalObjectReference {
                                        name: s("web-config"),
                                    }),
                                    key: s("mode"),
                                    optional: Some(false),
                                }),
                                ..Default::default()
                            }),
                        },
                    ],
                    resources: Some(core::ResourceRequirements {
                        limits: quantities(&[("cpu", "500m"), ("memory", "256Mi")]),
                        requests: quantities(&[("cpu", "250m")]),
                        claims: vec![],
                    }),
                    liveness_probe: Some(core::Probe {
                        handler: Some(core::ProbeHandler {
                            http_get: Some(core::HttpGetAction {
                                path: s("/healthz"),
                                port: Some(IntOrString {
                                    r#type: Some(0),
                                    int_val: Some(8080),
                                    str_val: s(""),
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        initial_delay_seconds: Some(5),
                        ..Default::default()
                    }),
                    readiness_probe: Some(core::Probe {
                        handler: Some(core::ProbeHandler {
                            tcp_socket: Some(core::TcpSocketAction {
                                port: Some(IntOrString {
                                    r#type: Some(1),
                                    int_val: Some(0),
                                    str_val: s("http"),
                                }),
                                host: None,
                            }),
                            ..Default::default()
                        }),
                        period_seconds: Some(5),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                termination_grace_period_seconds: Some(30),
                node_selector: [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
                automount_service_account_token: Some(false),
                tolerations: vec![core::Toleration {
                    key: s("node.kubernetes.io/not-ready"),
                    operator: s("Exists"),
                    effect: s("NoExecute"),
                    toleration_seconds: Some(300),
                    value: None,
                }],
                ..Default::default()
            }),
            status: Some(core::PodStatus {
                phase: s("Running"),
                pod_ip: s("10.244.1.5"),
                pod_ips: vec![core::PodIp {
                    ip: s("10.244.1.5"),
                }],
                start_time: time(T0 + 1),
                container_statuses: vec![core::ContainerStatus {
                    name: s("web"),
                    state: Some(core::ContainerState {
                        running: Some(core::ContainerStateRunning {
                            started_at: time(T0 + 10),
                        }),
                        ..Default::default()
                    }),
                    ready: Some(true),
                    restart_count: Some(0),
                    image: s("nginx:1.25"),
                    image_id: s("docker.io/library/nginx@sha256:0123"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn pod_json() -> Value {
        j(r#"{
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": "web-0",
                "namespace": "default",
                "uid": "u-1",
                "generation": 3,
                "creationTimestamp": "2024-05-01T10:20:30Z",
                "labels": {"app": "web"},
                "annotations": {"note": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                                     "uid": "u-rs", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                   "time": "2024-05-01T10:20:30Z", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
            },
            "spec": {
                "volumes": [{"name": "creds", "secret": {"secretName": "db-creds", "defaultMode": 420}}],
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.25",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "mode",
                                                                          "optional": false}}}
                    ],
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "250m"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5},
                    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5}
                }],
                "terminationGracePeriodSeconds": 30,
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "automountServiceAccountToken": false,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}]
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "startTime": "2024-05-01T10:20:31Z",
                "containerStatuses": [{
                    "name": "web",
                    "state": {"running": {"startedAt": "2024-05-01T10:20:40Z"}},
                    "ready": true,
                    "restartCount": 0,
                    "image": "nginx:1.25",
                    "imageID": "docker.io/library/nginx@sha256:0123"
                }]
            }
        }"#)
    }

    #[test]
    fn decodes_a_pod_encoded_by_prost() {
        let body = wrap("v1", "Pod", pb_pod().encode_to_vec());
        let (api_version, kind, got) = decode_object(&body).unwrap();
        assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Pod"));
        assert_eq!(Value::Object(got), pod_json());
    }

    #[test]
    fn prost_decodes_our_pod() {
        let body = encode_object(&obj(pod_json())).unwrap();
        let (type_meta, raw) = unwrap(&body);
        assert_eq!(type_meta.api_version.as_deref(), Some("v1"));
        assert_eq!(type_meta.kind.as_deref(), Some("Pod"));
        let pod = core::Pod::decode(&raw[..]).unwrap();
        assert_eq!(pod, pb_pod());
        // And our encoding is byte-identical to prost's for the same message.
        assert_eq!(raw, pb_pod().encode_to_vec());
    }

    #[test]
    fn secret_service_lease_both_ways() {
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: s("db"),
                ..Default::default()
            }),
            immutable: Some(true),
            data: [
                ("password".to_string(), b"secret".to_vec()),
                ("bin".to_string(), vec![0, 1, 2, 255]),
            ]
            .into(),
            r#type: s("Opaque"),
            ..Default::default()
        };
        let secret_json = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db"},
            "immutable": true, "data": {"bin": "AAEC/w==", "password": "c2VjcmV0"}, "type": "Opaque"});

        let service = core::Service {
            metadata: Some(meta::ObjectMeta {
                name: s("web"),
                ..Default::default()
            }),
            spec: Some(core::ServiceSpec {
                ports: vec![core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("http"),
                    }),
                    ..Default::default()
                }],
                cluster_ip: s("10.96.0.10"),
                cluster_ips: vec!["10.96.0.10".into()],
                ..Default::default()
            }),
            status: None,
        };
        let service_json = json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}],
                     "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}});

        let lease = coordination::Lease {
            metadata: Some(meta::ObjectMeta {
                name: s("kube-scheduler"),
                ..Default::default()
            }),
            spec: Some(coordination::LeaseSpec {
                holder_identity: s("node-1"),
                lease_duration_seconds: Some(15),
                renew_time: Some(meta::MicroTime {
                    seconds: Some(T0),
                    nanos: Some(987_654_000),
                }),
                ..Default::default()
            }),
        };
        let lease_json = json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": "kube-scheduler"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 15,
                     "renewTime": "2024-05-01T10:20:30.987654Z"}});

        let cases: [(&str, &str, Vec<u8>, Value); 3] = [
            ("v1", "Secret", secret.encode_to_vec(), secret_json),
            ("v1", "Service", service.encode_to_vec(), service_json),
            (
                "coordination.k8s.io/v1",
                "Lease",
                lease.encode_to_vec(),
                lease_json,
            ),
        ];
        for (api_version, kind, pb, want) in cases {
            let (_, _, got) = decode_object(&wrap(api_version, kind, pb.clone())).unwrap();
            assert_eq!(Value::Object(got), want, "{kind}");
            let (_, raw) = unwrap(&encode_object(&obj(want)).unwrap());
            assert_eq!(raw, pb, "{kind}: our bytes differ from prost's");
        }
        let _ = (secret, service, lease);
    }

    #[test]
    fn watch_event_decodes_with_prost() {
        let env = encode_object(&obj(pod_json())).unwrap();
        let frame = encode_watch_frame("MODIFIED", &env);
        let event = meta::WatchEvent::decode(&frame[4..]).unwrap();
        assert_eq!(event.r#type.as_deref(), Some("MODIFIED"));
        let raw = event.object.unwrap().raw.unwrap();
        let (type_meta, pod_raw) = unwrap(&raw);
        assert_eq!(type_meta.kind.as_deref(), Some("Pod"));
        assert_eq!(core::Pod::decode(&pod_raw[..]).unwrap(), pb_pod());
    }
}

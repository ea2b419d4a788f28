//! Small helpers over JSON objects shared by the plugins: pod containers, labels, paths and
//! `metav1.LabelSelector` matching.

use serde_json::{Map, Value};

/// The value at a path of object keys.
pub fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

/// The object at `key`, created (or replaced if not an object) as needed.
pub fn obj_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let e = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut().expect("just made an object")
}

/// The array at `key`, created (or replaced if not an array) as needed.
pub fn arr_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let e = m.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !e.is_array() {
        *e = Value::Array(Vec::new());
    }
    e.as_array_mut().expect("just made an array")
}

/// `metadata.labels` as (key, value) pairs.
pub fn labels(obj: &Map<String, Value>) -> Map<String, Value> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub fn annotation<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The containers of a pod spec in kube's visiting order: init containers, containers,
/// ephemeral containers.
pub fn all_containers(spec: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for k in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(a) = spec.get(k).and_then(Value::as_array) {
            out.extend(a.iter());
        }
    }
    out
}

/// `SetDefaults_Pod`'s resource default: a container or init container with a limit but no
/// request for a resource requests its limit.
pub fn default_requests_from_limits(pod: &mut Map<String, Value>) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["containers", "initContainers"] {
        let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in list.iter_mut().filter_map(Value::as_object_mut) {
            let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(limits) = res
                .get("limits")
                .and_then(Value::as_object)
                .filter(|l| !l.is_empty())
                .cloned()
            else {
                continue;
            };
            let requests = obj_mut(res, "requests");
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
}

/// The pod spec of a pod or of a workload's pod template (`None` for other kinds).
pub fn pod_spec_path(group: &str, plural: &str) -> Option<&'static [&'static str]> {
    match (group, plural) {
        ("", "pods") => Some(&["spec"]),
        ("", "podtemplates") => Some(&["template", "spec"]),
        ("", "replicationcontrollers")
        | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some(&["spec", "template", "spec"]),
        ("batch", "cronjobs") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Whether `labels` satisfy a JSON `metav1.LabelSelector` (`matchLabels` and
/// `matchExpressions`). An empty selector matches everything; a malformed one matches nothing.
pub fn selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    let Some(sel) = selector.as_object() else {
        return selector.is_null();
    };
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e.get("operator").and_then(Value::as_str) {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// `"a", "b"` (Go's joinQuote).
pub fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn pluralize<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let labels = json!({"env": "prod", "tier": "web"})
            .as_object()
            .unwrap()
            .clone();
        assert!(selector_matches(&json!({}), &labels));
        assert!(selector_matches(&Value::Null, &labels));
        assert!(selector_matches(
            &json!({"matchLabels": {"env": "prod"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"env": "dev"}}),
            &labels
        ));
        let e = |op: &str, vals: Value| json!({"matchExpressions": [{"key": "env", "operator": op, "values": vals}]});
        assert!(selector_matches(&e("In", json!(["prod", "x"])), &labels));
        assert!(!selector_matches(&e("NotIn", json!(["prod"])), &labels));
        assert!(selector_matches(&e("Exists", json!([])), &labels));
        assert!(!selector_matches(&e("DoesNotExist", json!([])), &labels));
        assert!(!selector_matches(&e("Bogus", json!([])), &labels));
    }

    #[test]
    fn requests_default_to_limits() {
        let mut pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1"}}},
                {"name": "b"},
                {"name": "c", "resources": {"limits": {}}}
            ],
            "initContainers": [{"name": "i", "resources": {"limits": {"memory": "64Mi"}}}]
        }})
        .as_object()
        .unwrap()
        .clone();
        default_requests_from_limits(&mut pod);
        let spec = &pod["spec"];
        assert_eq!(
            spec["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert!(spec["containers"][1].get("resources").is_none());
        assert!(spec["containers"][2]["resources"].get("requests").is_none());
        assert_eq!(
            spec["initContainers"][0]["resources"]["requests"],
            json!({"memory": "64Mi"})
        );
    }
}

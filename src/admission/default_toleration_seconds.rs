//! `DefaultTolerationSeconds` (`plugin/pkg/admission/defaulttolerationseconds`): pods that do not
//! tolerate the `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` NoExecute
//! taints get tolerations for them bounded by `--default-not-ready-toleration-seconds` and
//! `--default-unreachable-toleration-seconds` (300 s each).

use super::pod::arr_mut;
use super::{Attributes, Lookup, MutatingPlugin, Operation};
use crate::api::status::ApiError;
use async_trait::async_trait;
use serde_json::{json, Value};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

pub struct DefaultTolerationSeconds {
    pub not_ready_seconds: i64,
    pub unreachable_seconds: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

#[async_trait]
impl MutatingPlugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn admit(
        &self,
        _lookup: &dyn Lookup,
        attrs: &mut Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !matches!(attrs.operation, Operation::Create | Operation::Update)
            || !attrs.is_main("", "pods")
        {
            return Ok(());
        }
        let Some(pod) = attrs.object.as_mut() else {
            return Ok(());
        };
        let spec = super::pod::obj_mut(pod, "spec");
        let tolerations = arr_mut(spec, "tolerations");
        let covers = |t: &Value, key: &str| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        };
        let not_ready = tolerations.iter().any(|t| covers(t, TAINT_NOT_READY));
        let unreachable = tolerations.iter().any(|t| covers(t, TAINT_UNREACHABLE));
        if !not_ready {
            tolerations.push(json!({"key": TAINT_NOT_READY, "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": self.not_ready_seconds}));
        }
        if !unreachable {
            tolerations.push(json!({"key": TAINT_UNREACHABLE, "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": self.unreachable_seconds}));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;
    use crate::api::catalogue;

    async fn run(pod: Value) -> Value {
        let pods = catalogue::lookup("", "v1", "pods").unwrap();
        let mut a = Attributes::new(
            Operation::Create,
            pods,
            Some("ns"),
            "p",
            AdmissionUser::default(),
        )
        .with_object(pod.as_object().unwrap().clone());
        DefaultTolerationSeconds::default()
            .admit(&MemoryLookup::new(), &mut a, &mut Vec::new())
            .await
            .unwrap();
        Value::Object(a.object.unwrap())
    }

    #[tokio::test]
    async fn adds_both_tolerations() {
        let out =
            run(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})).await;
        assert_eq!(
            out["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
    }

    #[tokio::test]
    async fn keeps_existing_and_wildcards() {
        let own = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5});
        let out = run(json!({"spec": {"tolerations": [own.clone()]}})).await;
        let t = out["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], own);
        assert_eq!(t[1]["key"], "node.kubernetes.io/unreachable");
        // An empty key with no effect tolerates everything.
        let out = run(json!({"spec": {"tolerations": [{"operator": "Exists"}]}})).await;
        assert_eq!(out["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}

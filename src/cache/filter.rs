//! What a list or watch asks for: a namespace and label/field selectors.

use crate::api::catalogue::ResourceInfo;
use crate::api::selectors::field::FieldSelector;
use crate::api::selectors::label::LabelSelector;
use crate::object::raw::RawObject;

#[derive(Debug)]
pub struct Filter {
    pub res: &'static ResourceInfo,
    /// URL namespace (None = all namespaces or cluster-scoped).
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn new(
        res: &'static ResourceInfo,
        namespace: Option<String>,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> Self {
        Filter {
            res,
            namespace,
            labels,
            fields,
        }
    }

    pub fn everything(res: &'static ResourceInfo) -> Self {
        Filter::new(
            res,
            None,
            LabelSelector::default(),
            FieldSelector::default(),
        )
    }

    pub fn is_everything(&self) -> bool {
        self.namespace.is_none() && self.labels.is_empty() && self.fields.is_empty()
    }

    /// True when the filter has a selector (remainingItemCount is then omitted).
    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }

    pub fn matches(&self, o: &RawObject) -> bool {
        if let Some(ns) = &self.namespace {
            if *o.namespace() != **ns {
                return false;
            }
        }
        self.labels.matches(|k| o.label(k)) && self.fields.matches(|f| o.field(self.res, f))
    }
}

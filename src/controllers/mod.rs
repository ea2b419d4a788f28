//! What the apiserver itself does at start-up and in the background.

pub mod bootstrap_rbac;
pub mod namespaces;

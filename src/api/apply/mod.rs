//! Server-side apply and managedFields tracking (sigs.k8s.io/structured-merge-diff and
//! k8s.io/apimachinery/pkg/util/managedfields semantics).
//!
//! - [`apply`]: merges an applied configuration into the live object, with ownership,
//!   conflicts (409 `FieldManagerConflict`), `force`, and removal of fields the applier stopped
//!   setting.
//! - [`track_update`]: managedFields for creates, updates and non-apply patches.
//! - [`handler::apply_patch`]: the `application/apply-patch+yaml` PATCH handler.
//! - [`Set`]: field sets and their `FieldsV1` JSON.
//!
//! Wiring into the write handlers:
//! - create / update / non-apply patch: validate the manager with [`validate_field_manager`]
//!   (`CreateOptions` / `UpdateOptions`) or [`validate_patch_options`] (`force` is 422 there),
//!   name it with [`manager_or_user_agent`], and call [`track_update`] before mutating
//!   admission (as kube's handlers run the field manager first), with `live: None` on create;
//!   after the strategy, [`ignore_managed_fields_timestamps`] keeps a no-op a no-op.
//! - `application/apply-patch+yaml`: [`handler::apply_patch`], with `force` from
//!   [`parse_force`] until `Query` carries it.

pub mod fieldpath;
pub mod handler;
pub mod managed;
pub mod schema;
pub mod typed;

pub use fieldpath::{Path, PathElement, Set};
pub use managed::{
    apply, ignore_managed_fields_timestamps, manager_or_user_agent, parse_force, track_update,
    validate_field_manager, validate_patch_options, ApplyError, Conflict,
};
pub use schema::Schema;

#[cfg(test)]
mod tests;

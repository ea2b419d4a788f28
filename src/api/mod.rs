//! The Kubernetes API surface: the resource catalogue, discovery, request handlers, selectors and
//! `Status` errors.

pub mod apply;
pub mod catalogue;
pub mod continue_token;
pub mod discovery;
pub mod handlers;
pub mod openapi;
pub mod patch;
pub mod request;
pub mod selectors;
pub mod status;
pub mod table;

//! kapi: a Kubernetes API server built around a revision-indexed in-memory watch cache.
//!
//! The folder layout follows the request path: `server` (listener, TLS, routing) → `api`
//! (handlers, discovery, selectors, Status errors) → `cache` (watch cache and dispatch) and
//! `watch` (streaming watch bodies) → `storage` (etcd or the embedded store). `object` holds the
//! raw-object model, codecs and validation; `controllers` what the apiserver does by itself.

pub mod admission;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod config;
pub mod controllers;
pub mod metrics;
pub mod object;
pub mod server;
pub mod storage;
pub mod watch;

//! Shared helpers for integration tests. Each test binary uses only part of it.
#![allow(dead_code)]

pub mod etcd;
pub mod kapi;
pub mod pki;

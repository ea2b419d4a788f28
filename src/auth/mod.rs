//! The security chain: authentication (`authn`), impersonation, authorization (`authz`), and the
//! review APIs that expose them (`review`). The router runs them in kube-apiserver's order for
//! every request (API-SEMANTICS §8).

pub mod authn;

//! What the server does only for kubectl: `kubectl get`'s Table output, the protobuf bodies of
//! `kubectl create <kind>`, field ownership for `kubectl apply --server-side`, and the OpenAPI v3
//! documents `kubectl apply`/`create` look up. ferrolb's binaries (kube clients, JSON only,
//! merge patches) rely on none of it; the core verbs call in here at a few marked points.

pub(crate) mod managed;
pub(crate) mod openapi;
pub(crate) mod protobuf;
pub mod table;

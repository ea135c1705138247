//! Support of ferrolb's end-to-end and deploy tests (in `tests/tests/`).
#![forbid(unsafe_code)]

pub mod api_access;

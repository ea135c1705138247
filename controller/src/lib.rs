//! The ferrolb controller: watches LoadBalancer Services and the pool ConfigMap
//! and writes allocated IPs to the Services' status.
#![forbid(unsafe_code)]

//! ferrolb testbed.

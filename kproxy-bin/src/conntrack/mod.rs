//! Conntrack.

//! The seed's IPVS example configurations (digest 6.1 and 6.3), compiled in from
//! `examples/config/` because the VM has no access to the source tree.

/// 6.1 Production.
pub const PRODUCTION: &str = include_str!("../../../../examples/config/production.yaml");

/// 6.3 Large high-performance cluster.
pub const LARGE_CLUSTER: &str = include_str!("../../../../examples/config/large-cluster.yaml");

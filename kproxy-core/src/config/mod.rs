//! Upstream's `KubeProxyConfiguration` (kubeproxy.config.k8s.io/v1alpha1): types, defaults,
//! parsing with located errors, validation and layering.

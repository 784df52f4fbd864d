//! healthCheckNodePort servers.

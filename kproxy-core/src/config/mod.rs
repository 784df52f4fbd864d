//! Upstream's `KubeProxyConfiguration` (kubeproxy.config.k8s.io/v1alpha1): types, defaults,
//! parsing with located errors, validation and layering.
//!
//! # Using it
//! ```
//! use kproxy_core::config::{parse, Mode};
//! let parsed = parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n", "kube-proxy.yaml").unwrap();
//! assert_eq!(parsed.config.effective_mode().backend, Mode::Ipvs);
//! ```
//! To combine several sources (default files, `--config`, flags), build one [`Layer`] per
//! source ([`Layer::from_yaml`], [`Layer::set_flag`]), merge them with [`Layer::merged`]
//! (later layers win, field by field) and call [`resolve`] once.
//!
//! # Differences from upstream
//! - An empty `mode` means `nftables` (upstream: iptables). `mode: iptables` is served by the
//!   nftables backend with iptables-mode semantics; `mode: userspace` is an error.
//! - `udpIdleTimeout` (removed upstream) is accepted with a warning; `portRange` is accepted
//!   and validated but, as upstream, has no effect.
//! - Unknown fields are errors with a suggestion (upstream falls back to lenient decoding).
//!   The legacy fields old kubeadm files still carry (`resourceContainer`, `conntrack.max`)
//!   are accepted with a warning, as upstream's lenient fallback accepts them.
//! - Flags override every field of a `--config` file (upstream ignores most flags then).
//! - IPVS scheduler `mh` is accepted in addition to upstream's list.
//!
//! Everything here is pure: text in, values and messages out; no files are read.

mod decode;
mod duration;
mod effective;
mod error;
mod layer;
mod suggest;
mod tree;
mod types;
mod validate;
mod warnings;

pub use decode::Origins;
pub use duration::{DurationParseError, GoDuration};
pub use effective::{EffectiveMode, Mode, EFFECTIVE_CONTENT_TYPE};
pub use error::{ConfigError, ConfigWarning, FieldError, Origin};
pub use layer::{parse, resolve, FlagValue, Layer, ParsedConfig};
pub use types::*;
pub use validate::{IPVS_SCHEDULERS, LOCAL_MODES, PROXY_MODES};

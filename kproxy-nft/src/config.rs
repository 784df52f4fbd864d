//! Backend configuration.

/// How the nftables backend names and sizes what it programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftConfig {
    /// Name of the `ip` and `ip6` tables (default `kproxy`). A CNI embedding kproxy can pick
    /// its own so both instances coexist.
    pub table_name: String,
    /// Upper bound of the payload of one netlink message of set elements (bytes). Keeps every
    /// message below the 64 KiB netlink attribute cap.
    pub max_message_bytes: usize,
}

impl Default for NftConfig {
    fn default() -> Self {
        NftConfig { table_name: "kproxy".into(), max_message_bytes: 48 * 1024 }
    }
}

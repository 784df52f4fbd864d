//! What can fail while removing kube-proxy's leftovers.

/// One step that failed; the others still ran (see [`crate::Report::errors`]).
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// A save/restore/ipset tool could not be started (other than "not installed").
    #[error("running `{tool}` failed; kube-proxy's {what} were not checked")]
    Spawn {
        /// The tool.
        tool: String,
        /// What it was to check.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran but exited with an error.
    #[error("`{command}` failed ({status}): {stderr}; kube-proxy's {what} may still be present, check with `{check}`")]
    ToolFailed {
        /// The command line.
        command: String,
        /// What it was removing.
        what: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
        /// A command the operator can run to look.
        check: String,
    },
    /// Opening the nftables netlink socket failed.
    #[error("opening an nftables netlink socket to remove kube-proxy's nftables tables failed")]
    NftSocket(#[source] kproxy_nft::lowlevel::NetlinkError),
    /// The kernel refused to delete a kube-proxy nftables table.
    #[error("deleting nftables table `{family} kube-proxy` failed; check with `nft list tables`")]
    NftDelete {
        /// `ip` or `ip6`.
        family: &'static str,
        /// The kernel's answer.
        #[source]
        source: kproxy_nft::lowlevel::NetlinkError,
    },
    /// Listing the IPVS virtual servers failed.
    #[error("listing IPVS virtual servers failed; check with `ipvsadm -Ln`")]
    IpvsList(#[source] kproxy_ipvs::Error),
    /// Deleting an IPVS virtual server failed.
    #[error("deleting IPVS virtual server {service} failed ({errno}); check with `ipvsadm -Ln`")]
    IpvsDelete {
        /// The virtual server.
        service: String,
        /// The kernel's answer.
        errno: kproxy_ipvs::Errno,
    },
    /// Sending the IPVS deletions failed as a whole.
    #[error("sending IPVS virtual server deletions failed; check with `ipvsadm -Ln`")]
    IpvsSend(#[source] kproxy_ipvs::Error),
    /// Looking up or deleting the `kube-ipvs0` link failed.
    #[error("removing link `{link}` failed; check with `ip link show {link}`")]
    Link {
        /// The link.
        link: String,
        /// Why.
        #[source]
        source: kproxy_ipvs::Error,
    },
}

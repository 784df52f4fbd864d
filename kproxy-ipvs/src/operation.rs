//! [`Operation`]: one change a sync makes to the kernel, as a plain value.
//!
//! The pure steps ([`crate::plan`], [`crate::diff`]) produce a list of operations; an
//! [`crate::kernel::IpvsKernel`] executes it and answers one verdict per operation. IPVS has
//! no transactions: each operation succeeds or fails on its own, as the kernel answers each
//! pipelined request with its own ACK.

use std::net::IpAddr;

use crate::error::Errno;
use crate::ipvs::Op;

/// One kernel operation of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// A virtual server or real server operation (generic netlink, family "IPVS").
    Ipvs(Op),
    /// Add a host address (/32, /128) to link `link` (the dummy link holding the VIPs).
    AddAddress {
        /// Interface index.
        link: u32,
        /// The address.
        addr: IpAddr,
    },
    /// Delete a host address from link `link`.
    DeleteAddress {
        /// Interface index.
        link: u32,
        /// The address.
        addr: IpAddr,
    },
}

impl Operation {
    /// Whether `verdict` leaves the kernel as this operation wanted. Besides success: adding
    /// an address that is already there (`EEXIST`), and deleting a virtual server, real
    /// server or address that is already gone (`ESRCH`/`ENOENT`, `EADDRNOTAVAIL` for
    /// addresses).
    pub fn reached(&self, verdict: Result<(), Errno>) -> bool {
        let Err(e) = verdict else { return true };
        match self {
            Operation::Ipvs(Op::DelService(_) | Op::DelReal(..)) => e.is_not_found(),
            Operation::Ipvs(_) => false,
            Operation::AddAddress { .. } => e.is_exists(),
            Operation::DeleteAddress { .. } => e.is_not_found() || e.0 == libc::EADDRNOTAVAIL,
        }
    }

    /// Readable description for errors and logs; `link_name` names the link of address
    /// operations.
    pub fn describe(&self, link_name: &str) -> String {
        match self {
            Operation::Ipvs(op) => op.describe(),
            Operation::AddAddress { addr, .. } => format!("add address {addr} to {link_name}"),
            Operation::DeleteAddress { addr, .. } => {
                format!("delete address {addr} from {link_name}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs_msg::ServiceKey;
    use kproxy_core::model::Protocol;

    #[test]
    fn gone_and_present_count_as_reached_only_for_their_direction() {
        let addr: IpAddr = "198.19.160.1".parse().unwrap();
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            addr,
            port: 80,
        };
        let err = |e| Err(Errno(e));
        let del_vs = Operation::Ipvs(Op::DelService(key));
        assert!(del_vs.reached(err(libc::ESRCH)));
        assert!(!del_vs.reached(err(libc::EINVAL)));
        let add_addr = Operation::AddAddress { link: 3, addr };
        assert!(add_addr.reached(err(libc::EEXIST)));
        assert!(!add_addr.reached(err(libc::ENODEV)));
        let del_addr = Operation::DeleteAddress { link: 3, addr };
        assert!(del_addr.reached(err(libc::EADDRNOTAVAIL)));
        assert!(!del_addr.reached(err(libc::EEXIST)));
        assert_eq!(
            del_addr.describe("kube-ipvs0"),
            "delete address 198.19.160.1 from kube-ipvs0"
        );
    }
}

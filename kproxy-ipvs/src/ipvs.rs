//! [`Ipvs`]: the IPVS table of the current network namespace, over generic netlink.

use std::collections::BTreeMap;

use crate::error::{Errno, Error};
use crate::ipvs_msg::{
    self as m, cmd, Info, RealCounters, RealServer, ServiceKey, Timeouts, VirtualServer,
};
use kproxy_netlink::{Attrs, MsgBuilder, Protocol, Socket, Verdict, NLM_F_REQUEST};

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// `CTRL_CMD_GETFAMILY` request for a generic-netlink family name.
pub fn encode_get_family(name: &str) -> Vec<u8> {
    let mut b = MsgBuilder::new(GENL_ID_CTRL, NLM_F_REQUEST).header(&[CTRL_CMD_GETFAMILY, 1, 0, 0]);
    b.str(CTRL_ATTR_FAMILY_NAME, name);
    b.finish()
}

/// The family id in a `CTRL_CMD_NEWFAMILY` answer payload.
pub fn decode_family_id(payload: &[u8]) -> Option<u16> {
    Attrs::new(payload.get(4..)?)
        .find(|a| a.kind == CTRL_ATTR_FAMILY_ID)?
        .u16()
}

/// One IPVS operation of a sync, for batching through [`Ipvs::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a virtual server.
    AddService(VirtualServer),
    /// Change scheduler / flags / persistence of a virtual server.
    UpdateService(VirtualServer),
    /// Delete a virtual server (its real servers go with it).
    DelService(ServiceKey),
    /// Add a real server.
    AddReal(ServiceKey, RealServer),
    /// Change a real server's weight / forwarding.
    UpdateReal(ServiceKey, RealServer),
    /// Delete a real server.
    DelReal(ServiceKey, RealServer),
}

impl Op {
    /// Encode for the IPVS family id.
    pub fn encode(&self, family: u16) -> Vec<u8> {
        match self {
            Op::AddService(vs) => m::encode_service(family, cmd::NEW_SERVICE, vs),
            Op::UpdateService(vs) => m::encode_service(family, cmd::SET_SERVICE, vs),
            Op::DelService(k) => m::encode_del_service(family, k),
            Op::AddReal(k, rs) => m::encode_dest(family, cmd::NEW_DEST, k, rs),
            Op::UpdateReal(k, rs) => m::encode_dest(family, cmd::SET_DEST, k, rs),
            Op::DelReal(k, rs) => m::encode_dest(family, cmd::DEL_DEST, k, rs),
        }
    }

    /// Readable description for errors and logs.
    pub fn describe(&self) -> String {
        match self {
            Op::AddService(vs) => format!("add virtual server {} ({})", vs.key, vs.scheduler),
            Op::UpdateService(vs) => format!("update virtual server {}", vs.key),
            Op::DelService(k) => format!("delete virtual server {k}"),
            Op::AddReal(k, rs) => format!("add real server {}:{} to {k}", rs.key.addr, rs.key.port),
            Op::UpdateReal(k, rs) => format!(
                "set real server {}:{} of {k} to weight {}",
                rs.key.addr, rs.key.port, rs.weight
            ),
            Op::DelReal(k, rs) => {
                format!("delete real server {}:{} of {k}", rs.key.addr, rs.key.port)
            }
        }
    }
}

/// A dumped virtual server with its real servers and their connection counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedService {
    /// The virtual server.
    pub service: VirtualServer,
    /// Its real servers.
    pub reals: Vec<(RealServer, RealCounters)>,
}

/// The IPVS table of the network namespace the handle was opened in.
#[derive(Debug)]
pub struct Ipvs {
    sock: Socket,
    family: u16,
}

impl Ipvs {
    /// Open a generic-netlink socket and resolve the "IPVS" family. Fails with
    /// [`Error::IpvsUnavailable`] when the kernel has no IPVS (`modprobe ip_vs`).
    pub fn open() -> Result<Ipvs, Error> {
        let mut sock = Socket::open(Protocol::Generic).map_err(|source| Error::Socket {
            what: "generic netlink",
            source,
        })?;
        let replies = sock
            .request(encode_get_family(m::IPVS_GENL_NAME))
            .map_err(|source| Error::Io {
                step: "resolving the IPVS netlink family".into(),
                source,
            })?
            .map_err(|e| Error::IpvsUnavailable {
                errno: Errno(e.errno),
            })?;
        let family = replies
            .iter()
            .find_map(|(_, p)| decode_family_id(p))
            .ok_or(Error::IpvsUnavailable {
                errno: Errno(libc::ENOENT),
            })?;
        Ok(Ipvs { sock, family })
    }

    /// The resolved generic-netlink family id.
    pub fn family(&self) -> u16 {
        self.family
    }

    fn query(&mut self, step: &str, msg: Vec<u8>) -> Result<Vec<(u16, Vec<u8>)>, Error> {
        self.sock
            .request(msg)
            .map_err(|source| Error::Io {
                step: step.to_string(),
                source,
            })?
            .map_err(|e| Error::Kernel {
                step: step.to_string(),
                errno: Errno(e.errno),
            })
    }

    /// IPVS version and connection table size.
    pub fn info(&mut self) -> Result<Info, Error> {
        let r = self.query("reading IPVS info", m::encode_get_info(self.family))?;
        Ok(r.first()
            .map(|(_, p)| m::decode_info(p))
            .unwrap_or_default())
    }

    /// Current connection timeouts.
    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let r = self.query("reading IPVS timeouts", m::encode_get_timeouts(self.family))?;
        Ok(r.first()
            .map(|(_, p)| m::decode_timeouts(p))
            .unwrap_or_default())
    }

    /// Set the non-zero timeouts of `t`.
    pub fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), Error> {
        if *t == Timeouts::default() {
            return Ok(());
        }
        let mut msgs = vec![m::encode_set_timeouts(self.family, t)];
        let v = self.transact("setting IPVS timeouts", &mut msgs)?;
        v[0].clone().map_err(|e| Error::Kernel {
            step: format!("setting IPVS timeouts {t:?}"),
            errno: Errno(e.errno),
        })
    }

    fn transact(&mut self, step: &str, msgs: &mut [Vec<u8>]) -> Result<Vec<Verdict>, Error> {
        self.sock.transact(msgs).map_err(|source| Error::Io {
            step: step.to_string(),
            source,
        })
    }

    /// Every virtual server (fwmark services are left out).
    pub fn services(&mut self) -> Result<Vec<VirtualServer>, Error> {
        let r = self.query(
            "dumping IPVS virtual servers",
            m::encode_dump_services(self.family),
        )?;
        Ok(r.iter().filter_map(|(_, p)| m::decode_service(p)).collect())
    }

    /// The real servers of one virtual server.
    pub fn reals(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(RealServer, RealCounters)>, Error> {
        let family = match service.addr {
            std::net::IpAddr::V4(_) => libc::AF_INET as u16,
            std::net::IpAddr::V6(_) => libc::AF_INET6 as u16,
        };
        let r = self.query(
            &format!("dumping real servers of {service}"),
            m::encode_dump_dests(self.family, service),
        )?;
        Ok(r.iter()
            .filter_map(|(_, p)| m::decode_dest(p, family))
            .collect())
    }

    /// The whole table: every virtual server with its real servers.
    pub fn dump(&mut self) -> Result<BTreeMap<ServiceKey, DumpedService>, Error> {
        let mut out = BTreeMap::new();
        for service in self.services()? {
            let reals = self.reals(&service.key)?;
            out.insert(service.key, DumpedService { service, reals });
        }
        Ok(out)
    }

    /// Send `ops` (pipelined) and return one result per op, in order. `Err` of the whole
    /// call: the socket itself failed and nothing can be said about the ops.
    pub fn apply<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a Op>,
    ) -> Result<Vec<Result<(), Errno>>, Error> {
        let mut msgs: Vec<Vec<u8>> = ops.into_iter().map(|op| op.encode(self.family)).collect();
        let verdicts = self.transact("sending IPVS changes", &mut msgs)?;
        Ok(verdicts.into_iter().map(|v| v.map_err(|e| Errno(e.errno))).collect())
    }
}

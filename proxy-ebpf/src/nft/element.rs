//! Set and map elements as typed values: what a service puts in the
//! table's maps (destinations, endpoint slots, verdicts). Knows their nft
//! text form (for logs and tests) and their kernel byte layout (for the
//! netlink batches); it must never decide which elements a service gets
//! (render/ does).

use std::fmt;
use std::net::IpAddr;

use crate::model::Protocol;

impl Protocol {
    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// An element key. Each field of a concatenation takes a whole number of
/// 4-byte registers in the kernel, zero padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// `addr . proto . port`: a ClusterIP, external or load-balancer IP.
    Dest {
        addr: IpAddr,
        proto: Protocol,
        port: u16,
    },
    /// `proto . port`: a NodePort.
    NodePort { proto: Protocol, port: u16 },
    /// `addr . proto . port . slot`: endpoint `slot` of a destination,
    /// chosen by `numgen random mod n`.
    DestSlot {
        addr: IpAddr,
        proto: Protocol,
        port: u16,
        slot: u32,
    },
    /// `proto . port . slot`: endpoint `slot` of a NodePort.
    NodePortSlot {
        proto: Protocol,
        port: u16,
        slot: u32,
    },
    /// `addr . addr`: a hairpin set member.
    Pair(IpAddr),
}

/// What an element maps to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Goto(String),
    Drop,
    /// `addr . port`: where `dnat ... map` sends the packet.
    Target(IpAddr, u16),
}

fn addr_bytes(addr: &IpAddr, out: &mut Vec<u8>) {
    match addr {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

fn proto_bytes(p: Protocol, out: &mut Vec<u8>) {
    out.extend_from_slice(&[p.number(), 0, 0, 0]);
}

fn port_bytes(port: u16, out: &mut Vec<u8>) {
    let b = port.to_be_bytes();
    out.extend_from_slice(&[b[0], b[1], 0, 0]);
}

/// numgen writes its result as a host-order 32-bit register.
fn slot_bytes(slot: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&slot.to_ne_bytes());
}

impl Key {
    /// The key as the kernel stores it (`NFTA_DATA_VALUE`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Key::Dest { addr, proto, port } => {
                addr_bytes(&addr, out);
                proto_bytes(proto, out);
                port_bytes(port, out);
            }
            Key::NodePort { proto, port } => {
                proto_bytes(proto, out);
                port_bytes(port, out);
            }
            Key::DestSlot {
                addr,
                proto,
                port,
                slot,
            } => {
                addr_bytes(&addr, out);
                proto_bytes(proto, out);
                port_bytes(port, out);
                slot_bytes(slot, out);
            }
            Key::NodePortSlot { proto, port, slot } => {
                proto_bytes(proto, out);
                port_bytes(port, out);
                slot_bytes(slot, out);
            }
            Key::Pair(addr) => {
                addr_bytes(&addr, out);
                addr_bytes(&addr, out);
            }
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Dest { addr, proto, port } => write!(f, "{addr} . {} . {port}", proto.nft()),
            Key::NodePort { proto, port } => write!(f, "{} . {port}", proto.nft()),
            Key::DestSlot {
                addr,
                proto,
                port,
                slot,
            } => write!(f, "{addr} . {} . {port} . {slot}", proto.nft()),
            Key::NodePortSlot { proto, port, slot } => {
                write!(f, "{} . {port} . {slot}", proto.nft())
            }
            Key::Pair(addr) => write!(f, "{addr} . {addr}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Goto(chain) => write!(f, "goto {chain}"),
            Value::Drop => f.write_str("drop"),
            Value::Target(addr, port) => write!(f, "{addr} . {port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pad_every_field_to_a_register() {
        let mut b = Vec::new();
        Key::Dest {
            addr: "10.96.0.10".parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        }
        .encode(&mut b);
        assert_eq!(b, [10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]);
        let mut b = Vec::new();
        Key::NodePortSlot {
            proto: Protocol::Udp,
            port: 30053,
            slot: 2,
        }
        .encode(&mut b);
        let mut want = vec![17, 0, 0, 0, 0x75, 0x65, 0, 0];
        want.extend_from_slice(&2u32.to_ne_bytes());
        assert_eq!(b, want);
        let mut b = Vec::new();
        Key::Pair("fd00::1".parse().unwrap()).encode(&mut b);
        assert_eq!(b.len(), 32);
    }

    #[test]
    fn text_form_is_nft_syntax() {
        let k = Key::DestSlot {
            addr: "fd00::10".parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
            slot: 3,
        };
        assert_eq!(k.to_string(), "fd00::10 . tcp . 80 . 3");
        assert_eq!(
            Value::Target("10.0.0.1".parse().unwrap(), 8080).to_string(),
            "10.0.0.1 . 8080"
        );
        assert_eq!(
            Value::Goto("pick-cluster-2".into()).to_string(),
            "goto pick-cluster-2"
        );
    }
}

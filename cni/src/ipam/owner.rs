//! Who holds an address: the spec's key `(container ID, ifname)` within one
//! network's store. Must never include anything a DEL could not supply.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub container_id: String,
    pub ifname: String,
}

impl Owner {
    pub fn new(container_id: &str, ifname: &str) -> Self {
        Owner {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        }
    }

    /// FNV-1a over `container_id \0 ifname`: short, stable across
    /// processes and versions (unlike std's hasher), never secret.
    pub fn key_hash(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .container_id
            .bytes()
            .chain([0])
            .chain(self.ifname.bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// The reservation file's content.
    pub fn to_record(&self) -> String {
        format!("{}\n{}\n", self.container_id, self.ifname)
    }

    /// Reads a record; host-local's `id\r\nifname` layout is accepted too.
    pub fn from_record(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim);
        let id = lines.next().filter(|s| !s.is_empty())?;
        let ifname = lines.next().unwrap_or("");
        Some(Owner::new(id, ifname))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

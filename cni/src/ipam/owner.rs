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

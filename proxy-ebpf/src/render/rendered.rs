//! What rendering produces: the nft objects one service owns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::nft::element::{Key, Value};
use crate::nft::skeleton::Pick;

/// A map element: (map, key).
pub type ElementKey = (&'static str, Key);

/// The nft objects one service owns. Equal models render equal objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// Chain name → rules as nft text, in order. This (not the transaction
    /// text) is what the proxy keeps per service: 10,000 services hold
    /// ~120,000 rules of ~60 bytes.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity set name → timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map element → value (a verdict, or an endpoint's address).
    pub elements: BTreeMap<ElementKey, Value>,
    /// Endpoint addresses whose traffic to themselves (hairpin) must be
    /// masqueraded; shared between services, so counted by the proxier.
    pub hairpin: BTreeSet<IpAddr>,
    /// The shared pick chains this service's elements go to.
    pub picks: BTreeSet<Pick>,
}

impl Rendered {
    pub fn merge(&mut self, other: Rendered) {
        self.chains.extend(other.chains);
        self.sets.extend(other.sets);
        self.elements.extend(other.elements);
        self.hairpin.extend(other.hairpin);
        self.picks.extend(other.picks);
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.sets.is_empty()
            && self.elements.is_empty()
            && self.hairpin.is_empty()
            && self.picks.is_empty()
    }
}

//! What is programmed vs what is desired → the steps of one sync. Pure:
//! the caller keeps the record of what each service has programmed, so a
//! partial sync touches only the differences. It must never run nft nor
//! open a socket.
//!
//! A sync has up to three steps, each one atomic: `before` (nft text: new
//! sets and chains, rewritten chains), `elements` (one netlink batch: map
//! and set elements) and `after` (nft text: stale chains and sets, which
//! nothing references once the elements have moved away). Every state in
//! between is consistent: new chains exist before elements point at them,
//! old ones stay until nothing does. A change of endpoints of a service
//! without chains of its own is an element batch only.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::nft::element::{Key, Value};
use crate::nft::netlink::Batch;
use crate::nft::skeleton::{Pick, Table, FIXED_SETS, HAIRPIN_SET};
use crate::render::Rendered;

/// Element changes of one table.
#[derive(Debug, Default)]
pub struct Elements {
    /// Maps and sets emptied first (a full sync).
    pub flush: Vec<&'static str>,
    pub delete: BTreeMap<&'static str, Vec<Key>>,
    pub add: BTreeMap<&'static str, Vec<(Key, Option<Value>)>>,
}

impl Elements {
    pub fn is_empty(&self) -> bool {
        self.flush.is_empty() && self.delete.is_empty() && self.add.is_empty()
    }

    /// Appends the changes to `batch`: flushes, then deletes, then adds
    /// (a key whose value changes is deleted and re-added).
    pub fn write(&self, table: &Table, batch: &mut Batch) {
        let (f, t) = (table.family, crate::nft::skeleton::TABLE);
        for set in &self.flush {
            batch.flush(f, t, set);
        }
        for (set, keys) in &self.delete {
            batch.delete(f, t, set, keys.iter());
        }
        for (set, elems) in &self.add {
            batch.add(f, t, set, elems.iter().map(|(k, v)| (k, v.as_ref())));
        }
    }

    /// nft text of the changes (logs, tests).
    pub fn describe(&self, table: &Table) -> Vec<String> {
        let mut out: Vec<String> = self
            .flush
            .iter()
            .map(|s| table.cmd("flush", "set", s))
            .collect();
        for (set, keys) in &self.delete {
            let keys: Vec<String> = keys.iter().map(Key::to_string).collect();
            out.push(table.cmd(
                "delete",
                "element",
                &format!("{set} {{ {} }}", keys.join(", ")),
            ));
        }
        for (set, elems) in &self.add {
            let elems: Vec<String> = elems
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k} : {v}"),
                    None => k.to_string(),
                })
                .collect();
            out.push(table.cmd(
                "add",
                "element",
                &format!("{set} {{ {} }}", elems.join(", ")),
            ));
        }
        out
    }
}

/// One sync's steps for one table.
#[derive(Debug, Default)]
pub struct Transaction {
    add_sets: Vec<String>,
    add_chains: Vec<String>,
    rewrite: Vec<String>,
    pub elements: Elements,
    flush_stale: Vec<String>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.before_len() == 0 && self.elements.is_empty() && self.after_len() == 0
    }

    fn before_len(&self) -> usize {
        self.add_sets.len() + self.add_chains.len() + self.rewrite.len()
    }

    fn after_len(&self) -> usize {
        self.flush_stale.len() + self.delete_chains.len() + self.delete_sets.len()
    }

    /// Hairpin set changes (the caller counts references across services).
    pub fn hairpin(&mut self, add: &[IpAddr], delete: &[IpAddr]) {
        if !delete.is_empty() {
            self.elements
                .delete
                .entry(HAIRPIN_SET)
                .or_default()
                .extend(delete.iter().map(|ip| Key::Pair(*ip)));
        }
        if !add.is_empty() {
            self.elements
                .add
                .entry(HAIRPIN_SET)
                .or_default()
                .extend(add.iter().map(|ip| (Key::Pair(*ip), None)));
        }
    }

    /// Creates (or, if it exists, refills) a shared pick chain.
    pub fn ensure_pick(&mut self, table: &Table, pick: &Pick, cidr: Option<(IpAddr, u8)>) {
        let name = pick.chain();
        self.add_chains.push(table.cmd("add", "chain", &name));
        self.rewrite.push(table.cmd("flush", "chain", &name));
        for r in table.pick_rules(pick, cidr) {
            self.rewrite.push(table.add_rule(&name, &r));
        }
    }

    /// Adds the changes that turn `old` into `new` (one service's objects).
    pub fn diff(&mut self, table: &Table, old: &Rendered, new: &Rendered) {
        for (key, value) in &old.elements {
            if new.elements.get(key) != Some(value) {
                self.elements.delete.entry(key.0).or_default().push(key.1);
            }
        }
        for (name, timeout) in &new.sets {
            if !old.sets.contains_key(name) {
                self.add_sets.push(table.affinity_set(name, *timeout));
            }
        }
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                Some(old_rules) if old_rules == rules => continue,
                Some(_) => self.rewrite.push(table.cmd("flush", "chain", name)),
                None => self.add_chains.push(table.cmd("add", "chain", name)),
            }
            for r in rules {
                self.rewrite.push(table.add_rule(name, r));
            }
        }
        for name in old.chains.keys() {
            if !new.chains.contains_key(name) {
                self.stale_chain(table, name);
            }
        }
        for name in old.sets.keys() {
            if !new.sets.contains_key(name) {
                self.delete_sets.push(table.cmd("delete", "set", name));
            }
        }
        for (key, value) in &new.elements {
            if old.elements.get(key) != Some(value) {
                self.elements
                    .add
                    .entry(key.0)
                    .or_default()
                    .push((key.1, Some(value.clone())));
            }
        }
    }

    /// A chain to remove after the elements moved away from it; flushed
    /// first, as a stale chain may jump to another stale one.
    pub fn stale_chain(&mut self, table: &Table, name: &str) {
        self.flush_stale.push(table.cmd("flush", "chain", name));
        self.delete_chains.push(table.cmd("delete", "chain", name));
    }

    pub fn stale_set(&mut self, table: &Table, name: &str) {
        self.delete_sets.push(table.cmd("delete", "set", name));
    }

    /// The nft commands run before the elements.
    pub fn before(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.add_sets);
        out.append(&mut self.add_chains);
        out.append(&mut self.rewrite);
        out
    }

    /// The nft commands run after the elements.
    pub fn after(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.flush_stale);
        out.append(&mut self.delete_chains);
        out.append(&mut self.delete_sets);
        out
    }
}

/// A full sync's first step: the skeleton restored, every pick chain and
/// every service's own sets and chains (re)written, without removing
/// anything traffic uses (that is the elements' and the stale step's job).
pub fn full_before<'a, I>(
    table: &Table,
    services: I,
    picks: &[Pick],
    cidr: Option<(IpAddr, u8)>,
) -> Vec<String>
where
    I: Iterator<Item = &'a Rendered>,
{
    let mut t = Transaction::default();
    for p in picks {
        t.ensure_pick(table, p, cidr);
    }
    let mut out = table.skeleton();
    out.extend(t.before());
    // Every set and chain first: a service's rules jump between its chains.
    let mut rules = Vec::new();
    for r in services {
        for (name, timeout) in &r.sets {
            out.push(table.affinity_set(name, *timeout));
        }
        for (name, chain_rules) in &r.chains {
            out.push(table.cmd("add", "chain", name));
            rules.push(table.cmd("flush", "chain", name));
            for rule in chain_rules {
                rules.push(table.add_rule(name, rule));
            }
        }
    }
    out.append(&mut rules);
    out
}

/// A full sync's elements, straight into `batch` (no copy of the ~110,000
/// elements of 10,000 services): every map and set emptied and refilled in
/// the same transaction, so traffic never sees them half-written.
pub fn write_full_elements<'a, I>(table: &Table, services: I, hairpin: &[IpAddr], batch: &mut Batch)
where
    I: Iterator<Item = &'a Rendered> + Clone,
{
    let (f, t) = (table.family, crate::nft::skeleton::TABLE);
    for set in FIXED_SETS {
        batch.flush(f, t, set);
    }
    for set in FIXED_SETS {
        if set == HAIRPIN_SET {
            continue;
        }
        let elems = services.clone().flat_map(move |r| {
            r.elements
                .iter()
                .filter(move |((m, _), _)| *m == set)
                .map(|((_, k), v)| (k, Some(v)))
        });
        batch.add(f, t, set, elems);
    }
    let pairs: Vec<Key> = hairpin.iter().map(|ip| Key::Pair(*ip)).collect();
    batch.add(f, t, HAIRPIN_SET, pairs.iter().map(|k| (k, None)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IpFamily, Protocol};
    use crate::nft::skeleton::{endpoints_map, PickKind, SERVICE_IPS_MAP};

    fn table() -> Table {
        Table::new(IpFamily::V4)
    }

    fn dest(last: u8) -> Key {
        Key::Dest {
            addr: IpAddr::from([10, 96, 0, last]),
            proto: Protocol::Tcp,
            port: 80,
        }
    }

    fn slot(last: u8, slot: u32) -> Key {
        Key::DestSlot {
            addr: IpAddr::from([10, 96, 0, last]),
            proto: Protocol::Tcp,
            port: 80,
            slot,
        }
    }

    fn target(last: u8) -> Value {
        Value::Target(IpAddr::from([10, 244, 0, last]), 8080)
    }

    fn rendered(chains: &[(&str, &str)], elems: &[(&'static str, Key, Value)]) -> Rendered {
        let mut r = Rendered::default();
        for (c, rule) in chains {
            r.chains.insert(c.to_string(), vec![rule.to_string()]);
        }
        for (m, k, v) in elems {
            r.elements.insert((m, *k), v.clone());
        }
        r
    }

    /// `<verb> <kind> <name>` of each command (family and table dropped).
    fn verbs(cmds: &[String]) -> Vec<String> {
        cmds.iter()
            .map(|c| {
                let w: Vec<&str> = c.split_whitespace().collect();
                assert_eq!(&w[2..4], &["ip", "capstan-proxy"], "{c}");
                format!("{} {} {}", w[0], w[1], w.get(4).copied().unwrap_or(""))
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn unchanged_service_plans_nothing() {
        let r = rendered(
            &[("service-a", "x")],
            &[(SERVICE_IPS_MAP, dest(1), Value::Goto("service-a".into()))],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &r, &r.clone());
        assert!(t.is_empty());
    }

    #[test]
    fn endpoint_change_of_a_shared_service_is_elements_only() {
        let goto = Value::Goto("pick-cluster-tcp-2".into());
        let old = rendered(
            &[],
            &[
                (SERVICE_IPS_MAP, dest(1), goto.clone()),
                (endpoints_map(Protocol::Tcp), slot(1, 0), target(1)),
                (endpoints_map(Protocol::Tcp), slot(1, 1), target(2)),
            ],
        );
        let new = rendered(
            &[],
            &[
                (SERVICE_IPS_MAP, dest(1), goto),
                (endpoints_map(Protocol::Tcp), slot(1, 0), target(1)),
                (endpoints_map(Protocol::Tcp), slot(1, 1), target(3)),
            ],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &old, &new);
        assert!(t.before().is_empty() && t.after().is_empty());
        assert_eq!(
            t.elements.describe(&table()),
            vec![
                "delete element ip capstan-proxy endpoints-tcp { 10.96.0.1 . tcp . 80 . 1 }",
                "add element ip capstan-proxy endpoints-tcp { 10.96.0.1 . tcp . 80 . 1 : 10.244.0.3 . 8080 }",
            ]
        );
    }

    #[test]
    fn own_chains_are_added_before_and_removed_after_the_elements() {
        let old = rendered(
            &[("service-a", "pick e1"), ("endpoint-e1", "dnat 1")],
            &[(SERVICE_IPS_MAP, dest(1), Value::Goto("service-a".into()))],
        );
        let new = rendered(
            &[("service-a", "pick e2"), ("endpoint-e2", "dnat 2")],
            &[(SERVICE_IPS_MAP, dest(1), Value::Goto("service-a".into()))],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &old, &new);
        assert_eq!(
            verbs(&t.before()),
            vec![
                "add chain endpoint-e2",
                "add rule endpoint-e2",
                "flush chain service-a",
                "add rule service-a",
            ]
        );
        assert!(t.elements.is_empty());
        assert_eq!(
            verbs(&t.after()),
            vec!["flush chain endpoint-e1", "delete chain endpoint-e1"]
        );
    }

    #[test]
    fn removed_service_deletes_elements_then_chains() {
        let old = rendered(
            &[("service-a", "x")],
            &[(SERVICE_IPS_MAP, dest(1), Value::Goto("service-a".into()))],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &old, &Rendered::default());
        assert!(t.before().is_empty());
        assert_eq!(t.elements.delete[SERVICE_IPS_MAP], vec![dest(1)]);
        assert_eq!(
            verbs(&t.after()),
            vec!["flush chain service-a", "delete chain service-a"]
        );
    }

    #[test]
    fn pick_chains_are_refilled_idempotently() {
        let mut t = Transaction::default();
        let pick = Pick {
            kind: PickKind::NodePort,
            proto: Protocol::Udp,
            n: 3,
        };
        t.ensure_pick(&table(), &pick, None);
        let cmds = t.before();
        assert_eq!(
            verbs(&cmds),
            vec![
                "add chain pick-nodeport-udp-3",
                "flush chain pick-nodeport-udp-3",
                "add rule pick-nodeport-udp-3",
                "add rule pick-nodeport-udp-3",
            ]
        );
        assert!(cmds[3].ends_with(
            "dnat ip to meta l4proto . th dport . numgen random mod 3 map @nodeport-endpoints-udp"
        ));
    }

    #[test]
    fn full_sync_restores_the_skeleton_without_deleting_the_table() {
        let r = rendered(&[("service-a", "x")], &[]);
        let cmds = full_before(&table(), [&r].into_iter(), &[], None);
        assert!(!cmds.iter().any(|c| c.starts_with("delete")), "{cmds:?}");
        assert_eq!(cmds[0], "add table ip capstan-proxy");
        assert!(cmds.contains(&"flush chain ip capstan-proxy services".to_string()));
        let v = verbs(&cmds);
        assert_eq!(
            &v[v.len() - 3..],
            [
                "add chain service-a",
                "flush chain service-a",
                "add rule service-a"
            ]
        );
    }
}

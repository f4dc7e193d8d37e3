//! What is programmed vs what is desired → one nft transaction. Pure: the
//! caller keeps the record of what each service has programmed, so a
//! partial sync touches only the differences. It must never run nft.
//!
//! Order inside the transaction matters to the kernel: map elements that
//! point at a chain go before the chain, new chains exist before rules
//! jump to them, rewritten chains are flushed before stale chains (which
//! they may have referenced) are deleted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::nft::skeleton::{
    Table, HAIRPIN_SET, NODEPORTS_MAP, NO_ENDPOINT_NODEPORTS_MAP, NO_ENDPOINT_SERVICES_MAP,
    SERVICE_IPS_MAP,
};
use crate::render::Rendered;

/// Every verdict map services put elements in.
const ELEMENT_MAPS: [&str; 4] = [
    SERVICE_IPS_MAP,
    NODEPORTS_MAP,
    NO_ENDPOINT_SERVICES_MAP,
    NO_ENDPOINT_NODEPORTS_MAP,
];

/// A transaction under construction, kept in phases; every command is
/// one line of nft text.
#[derive(Debug, Default)]
pub struct Transaction {
    delete_elements: BTreeMap<&'static str, Vec<String>>,
    add_sets: Vec<String>,
    add_chains: Vec<String>,
    rewrite: Vec<String>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
    add_elements: BTreeMap<&'static str, Vec<String>>,
    prologue: Vec<String>,
    add_hairpin: Vec<IpAddr>,
    delete_hairpin: Vec<IpAddr>,
}

impl Transaction {
    /// A full sync: the table is replaced atomically (delete + re-create in
    /// the same transaction, so traffic never sees it half-written and
    /// established connections keep their conntrack state).
    pub fn full(table: &Table) -> Transaction {
        let mut prologue = vec![
            table.cmd("add", "table", ""),
            table.cmd("delete", "table", ""),
            table.cmd("add", "table", ""),
        ];
        prologue.extend(table.skeleton());
        Transaction {
            prologue,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.prologue.is_empty()
            && self.delete_elements.is_empty()
            && self.add_sets.is_empty()
            && self.add_chains.is_empty()
            && self.rewrite.is_empty()
            && self.delete_chains.is_empty()
            && self.delete_sets.is_empty()
            && self.add_elements.is_empty()
            && self.add_hairpin.is_empty()
            && self.delete_hairpin.is_empty()
    }

    /// Hairpin set changes (the caller counts references across services).
    pub fn hairpin(&mut self, add: Vec<IpAddr>, delete: Vec<IpAddr>) {
        self.add_hairpin.extend(add);
        self.delete_hairpin.extend(delete);
    }

    /// Adds the changes that turn `old` into `new` (one service's objects).
    pub fn diff(&mut self, table: &Table, old: &Rendered, new: &Rendered) {
        for (key, verdict) in &old.elements {
            if new.elements.get(key) != Some(verdict) {
                self.delete_elements
                    .entry(key.0)
                    .or_default()
                    .push(key.1.clone());
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
                // Flushed first: a stale chain may jump to another stale one.
                self.rewrite.push(table.cmd("flush", "chain", name));
                self.delete_chains.push(table.cmd("delete", "chain", name));
            }
        }
        for name in old.sets.keys() {
            if !new.sets.contains_key(name) {
                self.delete_sets.push(table.cmd("delete", "set", name));
            }
        }
        for (key, verdict) in &new.elements {
            if old.elements.get(key) != Some(verdict) {
                self.add_elements
                    .entry(key.0)
                    .or_default()
                    .push(format!("{} : {verdict}", key.1));
            }
        }
    }

    /// The nft commands (one text line each), in an order the kernel accepts.
    pub fn into_commands(self, table: &Table) -> Vec<String> {
        let mut out = self.prologue;
        let hairpin = |ips: &[IpAddr]| ips.iter().map(Table::hairpin_element).collect::<Vec<_>>();
        out.extend(table.elements("delete", HAIRPIN_SET, hairpin(&self.delete_hairpin)));
        for (map, keys) in self.delete_elements {
            // Deleting takes keys only.
            out.extend(table.elements("delete", map, keys));
        }
        out.extend(self.add_sets);
        out.extend(self.add_chains);
        out.extend(self.rewrite);
        out.extend(self.delete_chains);
        out.extend(self.delete_sets);
        for (map, elems) in self.add_elements {
            out.extend(table.elements("add", map, elems));
        }
        out.extend(table.elements("add", HAIRPIN_SET, hairpin(&self.add_hairpin)));
        out
    }
}

/// A full sync written straight into `out` (one command per line; returns
/// how many): the table re-created with its skeleton, then each service's
/// sets, chains and rules, then every map element. Streaming instead of
/// collecting ~120,000 command strings keeps the proxy's peak memory near
/// its steady state. Each service's rules only reference its own chains
/// and sets (written just before) and the skeleton's.
pub fn write_full<'a, I>(table: &Table, services: I, hairpin: &[IpAddr], out: &mut String) -> usize
where
    I: Iterator<Item = &'a Rendered> + Clone,
{
    let mut n = 0;
    let mut line = |out: &mut String, cmd: &str| {
        out.push_str(cmd);
        out.push('\n');
        n += 1;
    };
    for cmd in Transaction::full(table).prologue {
        line(out, &cmd);
    }
    for r in services.clone() {
        for (name, timeout) in &r.sets {
            line(out, &table.affinity_set(name, *timeout));
        }
        for name in r.chains.keys() {
            line(out, &table.cmd("add", "chain", name));
        }
        for (name, rules) in &r.chains {
            for rule in rules {
                line(out, &table.add_rule(name, rule));
            }
        }
    }
    for map in ELEMENT_MAPS {
        let elems = services.clone().flat_map(|r| {
            r.elements
                .iter()
                .filter(|((m, _), _)| *m == map)
                .map(|((_, key), verdict)| format!("{key} : {verdict}"))
        });
        if let Some(cmd) = table.elements("add", map, elems) {
            line(out, &cmd);
        }
    }
    let hp = hairpin.iter().map(Table::hairpin_element);
    if let Some(cmd) = table.elements("add", HAIRPIN_SET, hp) {
        line(out, &cmd);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IpFamily;

    fn table() -> Table {
        Table::new(IpFamily::V4)
    }

    fn rendered(chains: &[(&str, &str)], elems: &[(&'static str, &str, &str)]) -> Rendered {
        let mut r = Rendered::default();
        for (c, rule) in chains {
            r.chains.insert(c.to_string(), vec![rule.to_string()]);
        }
        for (m, k, v) in elems {
            r.elements.insert((m, k.to_string()), v.to_string());
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
        let r = rendered(&[("service-a", "x")], &[("service-ips", "k", "v")]);
        let mut t = Transaction::default();
        t.diff(&table(), &r, &r.clone());
        assert!(t.is_empty());
    }

    #[test]
    fn endpoint_change_touches_only_differences_in_order() {
        let old = rendered(
            &[("service-a", "pick e1"), ("endpoint-e1", "dnat 1")],
            &[("service-ips", "k", "goto service-a")],
        );
        let new = rendered(
            &[("service-a", "pick e2"), ("endpoint-e2", "dnat 2")],
            &[("service-ips", "k", "goto service-a")],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &old, &new);
        let v = verbs(&t.into_commands(&table()));
        assert_eq!(
            v,
            vec![
                "add chain endpoint-e2",
                "add rule endpoint-e2",
                "flush chain service-a",
                "add rule service-a",
                "flush chain endpoint-e1",
                "delete chain endpoint-e1",
            ]
        );
    }

    #[test]
    fn removed_service_deletes_elements_before_chains() {
        let old = rendered(
            &[("service-a", "x")],
            &[("service-ips", "k", "goto service-a")],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &old, &Rendered::default());
        let v = verbs(&t.into_commands(&table()));
        assert_eq!(
            v,
            vec![
                "delete element service-ips",
                "flush chain service-a",
                "delete chain service-a"
            ]
        );
    }

    #[test]
    fn verdict_change_replaces_the_element() {
        let old = rendered(&[], &[("no-endpoint-services", "k", "goto reject-chain")]);
        let new = rendered(
            &[("service-a", "x")],
            &[("service-ips", "k", "goto service-a")],
        );
        let mut t = Transaction::default();
        t.diff(&table(), &old, &new);
        let v = verbs(&t.into_commands(&table()));
        assert_eq!(
            v.first().map(String::as_str),
            Some("delete element no-endpoint-services")
        );
        assert_eq!(
            v.last().map(String::as_str),
            Some("add element service-ips")
        );
    }

    #[test]
    fn full_sync_recreates_the_table_first() {
        let t = Transaction::full(&table());
        let v = verbs(&t.into_commands(&table()));
        assert_eq!(&v[..3], &["add table", "delete table", "add table"]);
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;
    use crate::model::IpFamily;

    #[test]
    fn commands_are_nft_text_lines() {
        let table = Table::new(IpFamily::V4);
        let mut new = Rendered::default();
        new.chains.insert(
            "service-a".into(),
            vec!["meta l4proto tcp dnat ip to 10.0.0.1:80".into()],
        );
        new.sets.insert("affinity-a".into(), 10);
        new.elements.insert(
            ("service-ips", "10.96.0.1 . tcp . 80".into()),
            "goto service-a".into(),
        );
        let mut t = Transaction::default();
        t.diff(&table, &Rendered::default(), &new);
        t.hairpin(vec!["10.0.0.1".parse().unwrap()], vec![]);
        assert_eq!(
            t.into_commands(&table),
            vec![
                "add set ip capstan-proxy affinity-a { type ipv4_addr; flags timeout; timeout 10s; }",
                "add chain ip capstan-proxy service-a",
                "add rule ip capstan-proxy service-a meta l4proto tcp dnat ip to 10.0.0.1:80",
                "add element ip capstan-proxy service-ips { 10.96.0.1 . tcp . 80 : goto service-a }",
                "add element ip capstan-proxy hairpin { 10.0.0.1 . 10.0.0.1 }",
            ]
        );
    }

    #[test]
    fn deletes_take_keys_only() {
        let table = Table::new(IpFamily::V4);
        let mut old = Rendered::default();
        old.elements.insert(
            ("service-ips", "10.96.0.1 . tcp . 80".into()),
            "goto service-a".into(),
        );
        let mut t = Transaction::default();
        t.diff(&table, &old, &Rendered::default());
        t.hairpin(vec![], vec!["10.0.0.1".parse().unwrap()]);
        assert_eq!(
            t.into_commands(&table),
            vec![
                "delete element ip capstan-proxy hairpin { 10.0.0.1 . 10.0.0.1 }",
                "delete element ip capstan-proxy service-ips { 10.96.0.1 . tcp . 80 }",
            ]
        );
    }
}

#[cfg(test)]
mod full_tests {
    use super::*;
    use crate::model::IpFamily;

    fn service(name: &str, ip: &str) -> Rendered {
        let mut r = Rendered::default();
        r.chains.insert(
            format!("service-{name}"),
            vec![format!("goto endpoint-{name}")],
        );
        r.chains.insert(
            format!("endpoint-{name}"),
            vec![format!("update @affinity-{name} {{ ip saddr }}")],
        );
        r.sets.insert(format!("affinity-{name}"), 5);
        r.elements.insert(
            (SERVICE_IPS_MAP, format!("{ip} . tcp . 80")),
            format!("goto service-{name}"),
        );
        r
    }

    #[test]
    fn full_sync_streams_objects_before_their_users() {
        let table = Table::new(IpFamily::V4);
        let (a, b) = (service("a", "10.96.0.1"), service("b", "10.96.0.2"));
        let mut out = String::new();
        let hp = ["10.0.0.1".parse().unwrap()];
        let n = write_full(&table, [&a, &b].into_iter(), &hp, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(n, lines.len());
        assert_eq!(lines[0], "add table ip capstan-proxy");
        assert_eq!(lines[1], "delete table ip capstan-proxy");
        let pos = |needle: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} missing: {out}"))
        };
        // Per service: set and chains, then rules using them.
        assert!(
            pos("add set ip capstan-proxy affinity-a")
                < pos("add rule ip capstan-proxy endpoint-a")
        );
        assert!(
            pos("add chain ip capstan-proxy endpoint-a")
                < pos("add rule ip capstan-proxy service-a")
        );
        // One element command per map, after every chain.
        let el = pos("add element ip capstan-proxy service-ips");
        assert!(el > pos("add rule ip capstan-proxy service-b"));
        assert_eq!(
            lines[el],
            "add element ip capstan-proxy service-ips { 10.96.0.1 . tcp . 80 : goto service-a, 10.96.0.2 . tcp . 80 : goto service-b }"
        );
        assert_eq!(
            lines.last().copied(),
            Some("add element ip capstan-proxy hairpin { 10.0.0.1 . 10.0.0.1 }")
        );
        assert!(
            !out.contains("add element ip capstan-proxy service-nodeports"),
            "no empty element lists"
        );
    }
}

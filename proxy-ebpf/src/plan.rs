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

use serde_json::{json, Value};

use crate::nft::expr::cmd;
use crate::nft::skeleton::Table;
use crate::render::{ElementKey, Rendered};

/// A transaction under construction, kept in phases.
#[derive(Debug, Default)]
pub struct Transaction {
    delete_elements: BTreeMap<String, Vec<Value>>,
    add_sets: Vec<Value>,
    add_chains: Vec<Value>,
    /// Already JSON text: rules are stored that way.
    rewrite: Vec<String>,
    delete_chains: Vec<Value>,
    delete_sets: Vec<Value>,
    add_elements: BTreeMap<String, Vec<Value>>,
    prologue: Vec<Value>,
    add_hairpin: Vec<IpAddr>,
    delete_hairpin: Vec<IpAddr>,
}

fn key_value(key: &ElementKey) -> Value {
    serde_json::from_str(&key.1).unwrap_or(Value::Null)
}

impl Transaction {
    /// A full sync: the table is replaced atomically (delete + re-create in
    /// the same transaction, so traffic never sees it half-written and
    /// established connections keep their conntrack state).
    pub fn full(table: &Table) -> Transaction {
        let t = table.table_obj();
        let mut prologue = vec![
            cmd("add", "table", t.clone()),
            cmd("delete", "table", t.clone()),
            cmd("add", "table", t),
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
                    .entry(key.0.clone())
                    .or_default()
                    .push(key_value(key));
            }
        }
        for (name, timeout) in &new.sets {
            if !old.sets.contains_key(name) {
                self.add_sets
                    .push(cmd("add", "set", table.affinity_set(name, *timeout)));
            }
        }
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                Some(old_rules) if old_rules == rules => continue,
                Some(_) => self
                    .rewrite
                    .push(cmd("flush", "chain", table.chain(name)).to_string()),
                None => self.add_chains.push(cmd("add", "chain", table.chain(name))),
            }
            for r in rules {
                self.rewrite.push(table.add_rule_text(name, r));
            }
        }
        for name in old.chains.keys() {
            if !new.chains.contains_key(name) {
                // Flushed first: a stale chain may jump to another stale one.
                self.rewrite
                    .push(cmd("flush", "chain", table.chain(name)).to_string());
                self.delete_chains
                    .push(cmd("delete", "chain", table.chain(name)));
            }
        }
        for name in old.sets.keys() {
            if !new.sets.contains_key(name) {
                self.delete_sets
                    .push(cmd("delete", "set", table.set_ref(name)));
            }
        }
        for (key, verdict) in &new.elements {
            if old.elements.get(key) != Some(verdict) {
                self.add_elements
                    .entry(key.0.clone())
                    .or_default()
                    .push(json!([key_value(key), verdict]));
            }
        }
    }

    /// The nft commands (JSON text each), in an order the kernel accepts.
    pub fn into_commands(self, table: &Table) -> Vec<String> {
        let text = |v: Value| v.to_string();
        let mut out: Vec<String> = self.prologue.into_iter().map(text).collect();
        if !self.delete_hairpin.is_empty() {
            out.push(text(cmd(
                "delete",
                "element",
                table.hairpin_elements(&self.delete_hairpin),
            )));
        }
        for (map, keys) in self.delete_elements {
            // Deleting takes keys only.
            out.push(text(cmd("delete", "element", table.elements(&map, keys))));
        }
        out.extend(self.add_sets.into_iter().map(text));
        out.extend(self.add_chains.into_iter().map(text));
        out.extend(self.rewrite);
        out.extend(self.delete_chains.into_iter().map(text));
        out.extend(self.delete_sets.into_iter().map(text));
        for (map, elems) in self.add_elements {
            out.push(text(cmd("add", "element", table.elements(&map, elems))));
        }
        if !self.add_hairpin.is_empty() {
            out.push(text(cmd(
                "add",
                "element",
                table.hairpin_elements(&self.add_hairpin),
            )));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IpFamily;

    fn table() -> Table {
        Table::new(IpFamily::V4)
    }

    fn rendered(chains: &[(&str, &str)], elems: &[(&str, &str, &str)]) -> Rendered {
        let mut r = Rendered::default();
        for (c, rule) in chains {
            r.chains
                .insert(c.to_string(), vec![json!([rule]).to_string()]);
        }
        for (m, k, v) in elems {
            r.elements
                .insert((m.to_string(), json!(k).to_string()), json!(v));
        }
        r
    }

    fn verbs(cmds: &[String]) -> Vec<String> {
        cmds.iter()
            .map(|c| serde_json::from_str::<Value>(c).unwrap())
            .map(|c| {
                let (verb, body) = c.as_object().unwrap().iter().next().unwrap();
                let (kind, obj) = body.as_object().unwrap().iter().next().unwrap();
                let name = obj
                    .get("name")
                    .or(obj.get("chain"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                format!("{verb} {kind} {name}")
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
        assert_eq!(
            &v[..3],
            &[
                "add table capstan-proxy",
                "delete table capstan-proxy",
                "add table capstan-proxy"
            ]
        );
    }
}

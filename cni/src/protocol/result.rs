//! The ADD result in one in-memory shape (the 1.1.0 superset) and its JSON
//! form for each spec version. Reads any version's result (prevResult);
//! must never emit a field the requested version does not define.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::serde_str;
use super::version::CniVersion;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CniResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub sandbox: Option<String>,
    #[serde(default)]
    pub socket_path: Option<String>,
    #[serde(default, rename = "pciID")]
    pub pci_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct IpConfig {
    /// Address with the prefix of its subnet, e.g. 10.244.1.5/24.
    #[serde(with = "serde_str")]
    pub address: IpNetwork,
    #[serde(default, with = "serde_str::option")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Route {
    #[serde(with = "serde_str")]
    pub dst: IpNetwork,
    #[serde(default, with = "serde_str::option")]
    pub gw: Option<IpAddr>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub advmss: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub table: Option<u32>,
    #[serde(default)]
    pub scope: Option<u32>,
}

impl Route {
    /// A plain route: `dst` via `gw`, no 1.1.0 extras.
    pub fn via(dst: IpNetwork, gw: IpAddr) -> Self {
        Route {
            dst,
            gw: Some(gw),
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// The JSON answer for `version`, built field by field so that a field
    /// the version does not define never leaks out.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.as_str()));
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| interface_json(i, version))
            .collect();
        if !interfaces.is_empty() {
            out.insert("interfaces".into(), Value::Array(interfaces));
        }
        let ips: Vec<Value> = self.ips.iter().map(|ip| ip_json(ip, version)).collect();
        if !ips.is_empty() {
            out.insert("ips".into(), Value::Array(ips));
        }
        let routes: Vec<Value> = self.routes.iter().map(|r| route_json(r, version)).collect();
        if !routes.is_empty() {
            out.insert("routes".into(), Value::Array(routes));
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).unwrap_or_else(|_| json!({})),
        );
        Value::Object(out)
    }
}

fn put<T: Serialize>(map: &mut Map<String, Value>, key: &str, value: &Option<T>) {
    if let Some(v) = value {
        if let Ok(v) = serde_json::to_value(v) {
            map.insert(key.into(), v);
        }
    }
}

fn interface_json(i: &Interface, version: CniVersion) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(i.name));
    put(&mut m, "mac", &i.mac);
    if version.has_1_1_fields() {
        put(&mut m, "mtu", &i.mtu);
    }
    put(&mut m, "sandbox", &i.sandbox);
    if version.has_1_1_fields() {
        put(&mut m, "socketPath", &i.socket_path);
        put(&mut m, "pciID", &i.pci_id);
    }
    Value::Object(m)
}

fn ip_json(ip: &IpConfig, version: CniVersion) -> Value {
    let mut m = Map::new();
    if version.ips_carry_version() {
        let family = if ip.address.is_ipv4() { "4" } else { "6" };
        m.insert("version".into(), json!(family));
    }
    m.insert("address".into(), json!(ip.address.to_string()));
    put(&mut m, "gateway", &ip.gateway.map(|g| g.to_string()));
    put(&mut m, "interface", &ip.interface);
    Value::Object(m)
}

fn route_json(r: &Route, version: CniVersion) -> Value {
    let mut m = Map::new();
    m.insert("dst".into(), json!(r.dst.to_string()));
    put(&mut m, "gw", &r.gw.map(|g| g.to_string()));
    if version.has_1_1_fields() {
        put(&mut m, "mtu", &r.mtu);
        put(&mut m, "advmss", &r.advmss);
        put(&mut m, "priority", &r.priority);
        put(&mut m, "table", &r.table);
        put(&mut m, "scope", &r.scope);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: Some("aa:bb:cc:dd:ee:ff".into()),
                mtu: Some(1450),
                sandbox: Some("/run/netns/x".into()),
                ..Default::default()
            }],
            ips: vec![IpConfig {
                address: "10.244.1.5/24".parse().expect("literal"),
                gateway: Some("10.244.1.1".parse().expect("literal")),
                interface: Some(0),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().expect("literal"),
                gw: Some("10.244.1.1".parse().expect("literal")),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn old_versions_tag_ips_and_drop_1_1_fields() {
        let v = sample().to_json(CniVersion::V0_3_1);
        assert_eq!(v["ips"][0]["version"], "4");
        assert!(v["interfaces"][0].get("mtu").is_none());
        let v = sample().to_json(CniVersion::V1_0_0);
        assert!(v["ips"][0].get("version").is_none());
        assert!(v["interfaces"][0].get("mtu").is_none());
        let v = sample().to_json(CniVersion::V1_1_0);
        assert_eq!(v["interfaces"][0]["mtu"], 1450);
        assert_eq!(v["cniVersion"], "1.1.0");
    }

    #[test]
    fn round_trips_through_prev_result() {
        for version in CniVersion::SUPPORTED {
            let text = sample().to_json(version).to_string();
            let back: CniResult = serde_json::from_str(&text).expect("own output parses");
            assert_eq!(back.ips, sample().ips);
            assert_eq!(back.routes, sample().routes);
        }
    }
}

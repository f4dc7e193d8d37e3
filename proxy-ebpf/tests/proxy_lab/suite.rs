//! The proxy_lab fixture: two nodes with host-gw pod routes, four pods
//! with test servers, one in-process proxy and health-check server per
//! node, fed the same events; the initial dual-stack NodePort service.

use std::sync::Mutex;

use capstan_lab::{privileged, Lab};
use capstan_proxy::healthcheck::HealthServer;
use capstan_proxy::model::IpFamily;
use capstan_proxy::{Place, Proxy, ProxyEvent, SyncReport};
use libtest_mimic::Failed;

use crate::common::*;

pub const WEB_V4: &str = "10.96.0.10";
pub const WEB_V6: &str = "fd00:96::10";

pub struct Suite {
    pub lab: Lab,
    pub pods: Vec<Pod>,
    pub proxies: Vec<Mutex<Proxy>>,
    /// Every event fed so far, to replay into a restarted proxy.
    pub history: Mutex<Vec<ProxyEvent>>,
    pub rt: tokio::runtime::Runtime,
    pub health: Mutex<Vec<HealthServer>>,
}

impl Suite {
    pub fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name == name).expect("pod")
    }

    pub fn node_name(&self, i: usize) -> String {
        self.lab.node(i).name().to_string()
    }

    pub fn node_place(&self, i: usize) -> Place {
        Place::netns(format!("/run/netns/{}", self.lab.node(i).netns_name()))
    }

    pub fn underlay(&self) -> Place {
        Place::netns(self.lab.underlay().path())
    }

    /// Feeds events to every node's proxy and syncs each; then refreshes
    /// the health-check servers.
    pub fn apply(&self, events: Vec<ProxyEvent>) -> Result<Vec<SyncReport>, Failed> {
        self.history
            .lock()
            .map_err(|_| "poisoned")?
            .extend(events.iter().cloned());
        let mut reports = Vec::new();
        for (i, p) in self.proxies.iter().enumerate() {
            let mut p = p.lock().map_err(|_| "poisoned")?;
            for e in &events {
                p.handle(e.clone());
            }
            if let Some(r) = p.sync().map_err(|e| format!("sync node {i}: {e}"))? {
                reports.push(r);
            }
            let checks = p.health_checks();
            let mut hs = self.health.lock().map_err(|_| "poisoned")?;
            let errors = self.rt.block_on(async { hs[i].update(checks) });
            if let Some(e) = errors.first() {
                return Err(format!("health server node {i}: {e}").into());
            }
        }
        Ok(reports)
    }
}

impl Suite {
    /// Two nodes, four pods with servers, a proxy and health server per
    /// node, and the initial service synced (None: skipped).
    pub fn start() -> Option<Suite> {
        if !privileged::require("proxy_lab", &["ip", "nft", "conntrack", "sysctl"]) {
            return None;
        }
        let lab = Lab::builder()
            .nodes(2)
            .etcd(false)
            .containerd(false)
            .image(false)
            .build()
            .expect("build lab");
        setup_nodes(&lab, 2);
        let pods = vec![
            make_pod(&lab, 0, "a1", 2),
            make_pod(&lab, 0, "a2", 3),
            make_pod(&lab, 1, "b1", 2),
            make_pod(&lab, 1, "b2", 3),
        ];
        for p in &pods {
            start_server(p);
        }
        let proxies = (0..2).map(|i| Mutex::new(proxy_for(&lab, i))).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let health = (0..2)
            .map(|i| {
                HealthServer::new(Place::netns(format!(
                    "/run/netns/{}",
                    lab.node(i).netns_name()
                )))
            })
            .collect();
        let suite = Suite {
            lab,
            pods,
            proxies,
            history: Mutex::new(Vec::new()),
            rt,
            health: Mutex::new(health),
        };
        // The initial state: one dual-stack NodePort service on both nodes.
        let (n1, n2) = (suite.node_name(0), suite.node_name(1));
        let web = Svc::new("web", &[WEB_V4, WEB_V6], 80, "TCP")
            .node_port(30080)
            .s;
        let eps = [
            (suite.pod("a2"), n1.as_str(), true),
            (suite.pod("b1"), n2.as_str(), true),
        ];
        let initial = vec![
            ProxyEvent::ServiceApplied(web),
            ProxyEvent::SliceApplied(slice("web", IpFamily::V4, TCP_PORT, "TCP", &eps)),
            ProxyEvent::SliceApplied(slice("web", IpFamily::V6, TCP_PORT, "TCP", &eps)),
            ProxyEvent::InitDone,
        ];
        let reports = suite.apply(initial).expect("initial sync");
        assert!(
            reports.iter().all(|r| r.full),
            "first sync is full: {reports:?}"
        );
        Some(suite)
    }
}

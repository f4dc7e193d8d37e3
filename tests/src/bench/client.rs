//! kube-rs configuration and clients from a lab kubeconfig, for the
//! benchmarks that drive capstan-control like any other API client.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub async fn config(kubeconfig: &Path) -> anyhow::Result<kube::Config> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
}

pub async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(config(kubeconfig).await?)?)
}

//! kube-rs configuration and clients from a lab kubeconfig, for the
//! benchmarks that drive capstan-control like any other API client.

use std::path::Path;

use capstan_k8s::ClientOptions;

pub async fn config(kubeconfig: &Path) -> anyhow::Result<kube::Config> {
    Ok(capstan_k8s::config(&ClientOptions::kubeconfig(Some(kubeconfig))).await?)
}

pub async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(config(kubeconfig).await?)?)
}

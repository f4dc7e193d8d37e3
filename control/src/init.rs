//! `capstan-control init`: writes the cluster's CA, certificates, token file
//! and kubeconfigs through `pki::init` and lists what it made or kept. It
//! never overwrites an existing file.

use std::io::Write;

use capstan_apiserver::pki;

use crate::args::InitArgs;

pub fn init(a: InitArgs) -> anyhow::Result<()> {
    let report = pki::init(&pki::InitOptions {
        dir: a.dir.clone(),
        server: a.server,
        sans: a.sans,
        nodes: a.nodes,
        service_cidr: a.service_cidr,
    })?;
    // A closed stdout (`| head`) ends the listing, it is not an error:
    // the files are written by now.
    let mut out = std::io::stdout().lock();
    let lines = report
        .created
        .iter()
        .map(|p| ("created", p))
        .chain(report.kept.iter().map(|p| ("kept   ", p)));
    for (what, p) in lines {
        if writeln!(out, "{what} {}", p.display()).is_err() {
            break;
        }
    }
    Ok(())
}

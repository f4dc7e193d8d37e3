//! `capstan-cni`: the CNI plugin. Not built yet; see the CNI issue.
fn main() {
    eprintln!("capstan-cni: not built yet");
    std::process::exit(1);
}

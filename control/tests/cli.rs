//! capstan-control's command line: node IPAM flag mistakes are one-line
//! usage errors (exit 2) naming the flag, found before anything starts
//! (no etcd, no credentials needed).

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan-control"))
        .args(args)
        .output()
        .expect("run capstan-control");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn node_ipam_flag_mistakes_are_one_line_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--cluster-cidr=10.244.0.0"], "--cluster-cidr"),
        (&["--cluster-cidr=10.0.0.0/8,10.1.0.0/16"], "same family"),
        (
            &[
                "--allocate-node-cidrs",
                "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
                "--node-cidr-mask-size=24",
            ],
            "--node-cidr-mask-size is not allowed with a dual-stack --cluster-cidr",
        ),
        (
            &[
                "serve",
                "--allocate-node-cidrs",
                "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56",
                "--node-cidr-mask-size-ipv6=48",
            ],
            "--node-cidr-mask-size-ipv6 48 does not fit in --cluster-cidr fd00:10:244::/56",
        ),
        (
            &["--allocate-node-cidrs", "--node-cidr-mask-size-ipv6=64"],
            "--node-cidr-mask-size-ipv6 is not allowed with a single-stack IPv4",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("capstan-control: ") && err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err:?}"
        );
    }
}

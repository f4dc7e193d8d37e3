//! The host-side forwarder: a client on the caller's loopback reaches a
//! server that listens only inside the lab's underlay namespace, both ways,
//! on several connections at once, and sees the server's close.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use capstan_lab::forward::Forwarder;
use capstan_lab::{privileged, Lab};

/// An echo server on the underlay's address, made inside the namespace
/// (its socket stays there); answers each connection until EOF.
fn echo_server(lab: &Lab) -> SocketAddr {
    let ip = lab.underlay_ip();
    let listener = lab
        .underlay()
        .run_in(move || TcpListener::bind((ip, 0)))
        .expect("enter underlay")
        .expect("bind in underlay");
    let addr = listener.local_addr().expect("listener address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn forwards_loopback_connections_into_the_lab() {
    if !privileged::require("forwards_loopback_connections_into_the_lab", &["ip"]) {
        return;
    }
    let lab = Lab::builder().nodes(1).build().expect("lab");
    let target = echo_server(&lab);
    // The forwarder listens here and dials the server from inside the lab.
    let fwd = Forwarder::bind("127.0.0.1:0".parse().unwrap(), lab.underlay(), target)
        .expect("bind forwarder");
    let door = fwd.local_addr().expect("forwarder address");
    std::thread::spawn(move || fwd.serve());

    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(door).expect("connect to the forwarder"))
        .collect();
    for (i, mut c) in clients.into_iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msg = format!("hello {i} ").repeat(10_000);
        c.write_all(msg.as_bytes())
            .expect("write through forwarder");
        c.shutdown(Shutdown::Write).expect("half-close");
        let mut back = String::new();
        c.read_to_string(&mut back).expect("read echo until close");
        assert_eq!(back, msg, "connection {i} echoed intact");
    }
}

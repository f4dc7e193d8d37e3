//! `capstan-testsrv`: the small server and load generator carried in the
//! lab's test image and used by tests and `capstan-bench`: an HTTP responder
//! (GET / answers the host name; /healthz; /status/<code>), TCP and UDP
//! echo, a TCP sink; clients measuring request/response latency,
//! connection rate and stream throughput, printing one JSON line; and one
//! HTTPS GET with a CA file and bearer token, as an in-cluster client.
//! Std (and rustls for `get`) only, so the binary stays small and needs
//! nothing but libc inside the image.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "capstan-testsrv/client.rs"]
mod client;
#[path = "capstan-testsrv/https_get.rs"]
mod https_get;

#[derive(Parser)]
#[command(name = "capstan-testsrv", version, about = "Capstan lab test server")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve until killed.
    Serve {
        /// HTTP listen address, e.g. 0.0.0.0:8080.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// TCP echo listen address.
        #[arg(long)]
        tcp_echo: Option<SocketAddr>,
        /// UDP echo listen address.
        #[arg(long)]
        udp_echo: Option<SocketAddr>,
        /// TCP sink (reads and discards) listen address, for stream tests.
        #[arg(long)]
        tcp_sink: Option<SocketAddr>,
        /// Pin to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Measure something against a server and print one JSON line.
    Client(client::ClientArgs),
    /// One HTTPS GET (CA file, bearer token file): status line, then body.
    Get(https_get::GetArgs),
}

fn main() -> ExitCode {
    let cli = match capstan_lab::cli::parse::<Cli>("capstan-testsrv") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan-testsrv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> std::io::Result<()> {
    let (http, tcp_echo, udp_echo, tcp_sink, cpu) = match cli.command {
        Cmd::Client(args) => return client::run(&args),
        Cmd::Get(args) => return https_get::run(&args),
        Cmd::Serve {
            http,
            tcp_echo,
            udp_echo,
            tcp_sink,
            cpu,
        } => (http, tcp_echo, udp_echo, tcp_sink, cpu),
    };
    if http.is_none() && tcp_echo.is_none() && udp_echo.is_none() && tcp_sink.is_none() {
        return Err(std::io::Error::other(
            "nothing to serve: give --http, --tcp-echo, --udp-echo or --tcp-sink",
        ));
    }
    if let Some(cpu) = cpu {
        client::pin_to_cpu(cpu)?;
    }
    let mut threads = Vec::new();
    if let Some(addr) = http {
        let l = bind_tcp(addr)?;
        threads.push(std::thread::spawn(move || accept_loop(l, serve_http)));
    }
    if let Some(addr) = tcp_echo {
        let l = bind_tcp(addr)?;
        threads.push(std::thread::spawn(move || accept_loop(l, echo_tcp)));
    }
    if let Some(addr) = tcp_sink {
        let l = bind_tcp(addr)?;
        threads.push(std::thread::spawn(move || accept_loop(l, sink_tcp)));
    }
    if let Some(addr) = udp_echo {
        let s = UdpSocket::bind(addr)
            .map_err(|e| std::io::Error::other(format!("bind udp {addr}: {e}")))?;
        threads.push(std::thread::spawn(move || echo_udp(s)));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| std::io::Error::other(format!("bind tcp {addr}: {e}")))
}

fn accept_loop(l: TcpListener, handle: fn(TcpStream) -> std::io::Result<()>) {
    for conn in l.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = handle(conn);
        });
    }
}

fn echo_tcp(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}

fn sink_tcp(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    while s.read(&mut buf)? > 0 {}
    Ok(())
}

fn echo_udp(s: UdpSocket) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok((n, peer)) = s.recv_from(&mut buf) {
        let _ = s.send_to(&buf[..n], peer);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn serve_http(s: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(s.try_clone()?);
    let mut out = s;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut keep_alive = request_line.contains("HTTP/1.1");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if lower.starts_with("connection:") && lower.contains("close") {
                keep_alive = false;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (code, body) = match path {
            "/healthz" => (200, "ok\n".to_string()),
            p if p.starts_with("/status/") => {
                let code = p["/status/".len()..].parse().unwrap_or(400);
                (code, format!("status {code}\n"))
            }
            _ => (200, format!("{}\n", hostname())),
        };
        write!(
            out,
            "HTTP/1.1 {code} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            if code < 400 { "OK" } else { "Error" },
            body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        )?;
        if !keep_alive {
            return Ok(());
        }
    }
}

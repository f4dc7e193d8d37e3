//! The load-generator side of capstan-testsrv: one measurement per run
//! (after a warm-up), reported as one JSON line on stdout so that
//! capstan-bench can collect it from inside any namespace or container.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Mode {
    /// 1-byte ping-pong on one TCP connection (against --tcp-echo).
    TcpRr,
    /// 1-byte ping-pong over UDP (against --udp-echo).
    UdpRr,
    /// Connect, 1-byte request/response, close; repeated (against --tcp-echo).
    TcpCrr,
    /// One TCP stream, as fast as it goes (against --tcp-sink).
    TcpStream,
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    #[arg(value_enum)]
    mode: Mode,
    /// Server address.
    #[arg(long)]
    target: SocketAddr,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Unmeasured seconds first (caches, ARP, conntrack, CPU frequency).
    #[arg(long, default_value_t = 0.2)]
    warmup: f64,
    /// Pin to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
}

pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET bounds-checks.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::other(format!(
                "pin to cpu {cpu}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

fn secs(s: f64) -> std::io::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| std::io::Error::other(format!("bad duration {s}")))
}

pub fn run(args: &ClientArgs) -> std::io::Result<()> {
    if let Some(cpu) = args.cpu {
        pin_to_cpu(cpu)?;
    }
    let warmup = secs(args.warmup)?;
    let duration = secs(args.duration)?;
    let t = args.target;
    let line = match args.mode {
        Mode::TcpRr => latency_json(tcp_rr(t, warmup, duration)?),
        Mode::UdpRr => latency_json(udp_rr(t, warmup, duration)?),
        Mode::TcpCrr => {
            let (n, elapsed) = tcp_crr(t, warmup, duration)?;
            format!(
                "{{\"connections\":{n},\"per_s\":{:.1}}}",
                n as f64 / elapsed.as_secs_f64()
            )
        }
        Mode::TcpStream => {
            let (bytes, elapsed) = tcp_stream(t, warmup, duration)?;
            format!(
                "{{\"bytes\":{bytes},\"gbit_s\":{:.3}}}",
                bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
            )
        }
    };
    println!("{line}");
    Ok(())
}

/// Round trips in nanoseconds, sorted, summarised as 101 quantiles
/// (0, 1, ..., 99 %, then 99.9 %) plus the count: enough for percentiles
/// and a CDF plot without shipping every sample.
fn latency_json(mut rtts: Vec<u64>) -> String {
    rtts.sort_unstable();
    let q = |p: f64| -> f64 {
        if rtts.is_empty() {
            return 0.0;
        }
        let i = ((rtts.len() - 1) as f64 * p).round() as usize;
        rtts[i] as f64 / 1000.0
    };
    let mut quantiles: Vec<String> = (0..100)
        .map(|i| format!("{:.2}", q(i as f64 / 100.0)))
        .collect();
    quantiles.push(format!("{:.2}", q(0.999)));
    quantiles.push(format!("{:.2}", q(1.0)));
    format!(
        "{{\"count\":{},\"quantiles_us\":[{}]}}",
        rtts.len(),
        quantiles.join(",")
    )
}

fn tcp_rr(t: SocketAddr, warmup: Duration, duration: Duration) -> std::io::Result<Vec<u64>> {
    let mut s = TcpStream::connect(t)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut b = [0u8; 1];
    let mut once = |s: &mut TcpStream| -> std::io::Result<()> {
        s.write_all(&[1])?;
        s.read_exact(&mut b)
    };
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        once(&mut s)?;
    }
    let mut rtts = Vec::with_capacity(200_000);
    let end = Instant::now() + duration;
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        once(&mut s)?;
        rtts.push(start.elapsed().as_nanos() as u64);
    }
    Ok(rtts)
}

fn udp_rr(t: SocketAddr, warmup: Duration, duration: Duration) -> std::io::Result<Vec<u64>> {
    let bind: SocketAddr = if t.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(t)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut b = [0u8; 16];
    let mut lost = 0u32;
    let mut once = || -> std::io::Result<bool> {
        s.send(&[1])?;
        match s.recv(&mut b) {
            Ok(_) => Ok(true),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                lost += 1;
                if lost > 20 {
                    return Err(std::io::Error::other("more than 20 UDP requests lost"));
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    };
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        once()?;
    }
    let mut rtts = Vec::with_capacity(200_000);
    let end = Instant::now() + duration;
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        if once()? {
            rtts.push(start.elapsed().as_nanos() as u64);
        }
    }
    Ok(rtts)
}

fn tcp_crr(
    t: SocketAddr,
    warmup: Duration,
    duration: Duration,
) -> std::io::Result<(u64, Duration)> {
    let once = || -> std::io::Result<()> {
        let mut s = TcpStream::connect_timeout(&t, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(&[1])?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)
    };
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        once()?;
    }
    let start = Instant::now();
    let end = start + duration;
    let mut n = 0;
    while Instant::now() < end {
        once()?;
        n += 1;
    }
    Ok((n, start.elapsed()))
}

fn tcp_stream(
    t: SocketAddr,
    warmup: Duration,
    duration: Duration,
) -> std::io::Result<(u64, Duration)> {
    let mut s = TcpStream::connect(t)?;
    let buf = vec![0x5au8; 128 * 1024];
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        s.write_all(&buf)?;
    }
    let start = Instant::now();
    let end = start + duration;
    let mut bytes = 0u64;
    while Instant::now() < end {
        s.write_all(&buf)?;
        bytes += buf.len() as u64;
    }
    Ok((bytes, start.elapsed()))
}

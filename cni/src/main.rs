//! `capstan-cni`: reads the CNI environment and stdin, runs the plugin and
//! prints the answer. Logs go to the config's `logFile` or stderr, never
//! stdout, which belongs to the protocol.
//!
//! The C `main` is ours (`no_main`): std's start-up (probing the main
//! thread's stack through /proc/self/maps, signal set-up) costs ~0.2 ms, a
//! tenth of an ADD, and the plugin needs none of it. Panics still unwind to
//! dispatch's catch_unwind.
#![no_main]

use std::io::{Read, Write};
use std::os::raw::{c_char, c_int};

use capstan_cni::plugin::Capstan;
use capstan_cni::protocol::dispatch;

#[no_mangle]
pub extern "C" fn main(argc: c_int, _argv: *const *const c_char) -> c_int {
    // Runtimes call a CNI plugin without arguments; arguments mean a person.
    if argc > 1 {
        return answer_person();
    }
    let mut stdin = Vec::new();
    // An unreadable stdin is answered like malformed JSON by dispatch.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    init_logging(&stdin);
    let outcome = dispatch(&Capstan, |k| std::env::var(k).ok(), &stdin);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    outcome.exit_code
}

/// `logFile`/`logLevel` (a level: error, warn, info, debug, trace) from the
/// config, else `CAPSTAN_CNI_LOG`, default `warn`; to the file, else stderr.
/// A plain level filter rather than an EnvFilter: building one of those took
/// ~0.2 ms, a tenth of an ADD, for directives nobody needs here.
fn init_logging(stdin: &[u8]) {
    use tracing_subscriber::filter::LevelFilter;
    let conf: serde_json::Value = serde_json::from_slice(stdin).unwrap_or_default();
    let level = conf
        .get("logLevel")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| std::env::var("CAPSTAN_CNI_LOG").ok())
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::WARN);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    let file = conf.get("logFile").and_then(|v| v.as_str()).and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let _ = match file {
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// `--help`, `--version`, or a one-line error for anything else.
fn answer_person() -> c_int {
    // args_os: a non-UTF-8 argument must not panic.
    let arg = std::env::args_os()
        .nth(1)
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    match arg.as_str() {
        "--version" | "-V" => {
            println!("capstan-cni {}", env!("CARGO_PKG_VERSION"));
            println!(
                "CNI protocol versions supported: {}",
                capstan_cni::protocol::CniVersion::supported_list().join(", ")
            );
            0
        }
        "--help" | "-h" => {
            println!(
                "capstan-cni {}: the Capstan CNI plugin (type \"capstan\")\n\n\
                 Usage: CNI_COMMAND=ADD|DEL|CHECK|VERSION|GC|STATUS [CNI_* ...] capstan-cni < netconf.json\n\n\
                 Install as /opt/cni/bin/capstan; see the README for the network config keys.",
                env!("CARGO_PKG_VERSION")
            );
            0
        }
        other => {
            eprintln!("capstan-cni: unexpected argument '{other}': a CNI plugin takes its input from CNI_* variables and stdin (see --help)");
            2
        }
    }
}

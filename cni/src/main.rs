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
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
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

/// `logFile`/`logLevel` from the config, else `CAPSTAN_CNI_LOG` (an
/// EnvFilter) on stderr, default `warn`.
fn init_logging(stdin: &[u8]) {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::EnvFilter;
    let conf: serde_json::Value = serde_json::from_slice(stdin).unwrap_or_default();
    let level = conf
        .get("logLevel")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| std::env::var("CAPSTAN_CNI_LOG").ok())
        .unwrap_or_else(|| "warn".into());
    // A plain level needs no directive parsing; `capstan_cni=debug` and
    // the like still get a full EnvFilter.
    let filter = match level.parse::<LevelFilter>() {
        Ok(l) => EnvFilter::default().add_directive(l.into()),
        Err(_) => EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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

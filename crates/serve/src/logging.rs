//! Logging for a Capstan binary: `tracing` events as text on stderr, the
//! `RUST_LOG` filter (default `info`), ANSI colour only on a terminal.

/// Installs the process's subscriber; call once, first thing in `main`.
pub fn init() {
    init_with("info");
}

/// Like `init`, with another level where `RUST_LOG` is unset (a CLI tool
/// that should only speak up about problems uses "warn").
pub fn init_with(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
}

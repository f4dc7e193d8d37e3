//! Container logs in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>`),
//! one file per attempt at `<log dir>/<ns>_<name>_<uid>/<container>/<n>.log`:
//! the record format and the splitting of output into records. Pure.

/// Longest line kept whole; longer ones are split into P ... F records.
const MAX_LINE: usize = 16 * 1024;

/// One CRI log record.
pub fn record(timestamp: &str, stream: &str, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Splits what was read into records; returns the bytes still waiting for
/// their newline.
pub fn split_records(buf: &mut Vec<u8>, stream: &str, now: &dyn Fn() -> String, out: &mut Vec<u8>) {
    loop {
        match buf.iter().position(|b| *b == b'\n') {
            Some(nl) if nl <= MAX_LINE => {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                out.extend(record(&now(), stream, false, &line[..line.len() - 1]));
            }
            _ if buf.len() >= MAX_LINE => {
                let chunk: Vec<u8> = buf.drain(..MAX_LINE).collect();
                out.extend(record(&now(), stream, true, &chunk));
            }
            _ => return,
        }
    }
}

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{container_log_path, pod_log_dir};
    use std::path::Path;

    #[test]
    fn records_full_and_partial_lines() {
        let ts = || "2026-01-01T00:00:00.5Z".to_string();
        let mut buf = b"hello\nwor".to_vec();
        let mut out = Vec::new();
        split_records(&mut buf, "stdout", &ts, &mut out);
        assert_eq!(out, b"2026-01-01T00:00:00.5Z stdout F hello\n");
        assert_eq!(buf, b"wor");
        let mut long = vec![b'x'; MAX_LINE + 3];
        long.push(b'\n');
        let mut out = Vec::new();
        split_records(&mut long, "stderr", &ts, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("2026-01-01T00:00:00.5Z stderr P xxx"));
        assert_eq!(lines[1], "2026-01-01T00:00:00.5Z stderr F xxx");
        assert_eq!(
            container_log_path(&pod_log_dir(Path::new("/l"), "ns", "p", "u"), "c", 2),
            Path::new("/l/ns_p_u/c/2.log")
        );
    }
}

//! Reading CRI log files back for `containerLogs`: parses records
//! (`<RFC3339Nano> <stream> <P|F> <text>`) and renders them as kubelet does
//! for `timestamps`, `sinceSeconds`/`sinceTime`, `tailLines`, `limitBytes`.
//! Pure: no files, no clocks; `container_logs` feeds it bytes.

use jiff::Timestamp;

/// One record of a CRI log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    /// A `P` record: the line goes on in the next record.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one line (without its newline); `None` for a malformed line,
/// which is skipped rather than ending the whole answer.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        timestamp,
        stream,
        partial,
        text,
    })
}

/// What the client asked for, as far as rendering goes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Render {
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
}

/// Renders records one at a time, remembering whether the output is in
/// the middle of a line (so a timestamp prefixes only a line's start) and
/// how many bytes `limitBytes` still allows.
#[derive(Debug)]
pub struct Renderer {
    timestamps: bool,
    since: Option<Timestamp>,
    left: Option<u64>,
    mid_line: bool,
}

impl Renderer {
    pub fn new(r: &Render) -> Self {
        Renderer {
            timestamps: r.timestamps,
            since: r.since,
            left: r.limit_bytes,
            mid_line: false,
        }
    }

    /// True once `limitBytes` is used up: nothing more will be written.
    pub fn exhausted(&self) -> bool {
        self.left == Some(0)
    }

    /// Appends what `rec` contributes to `out`.
    pub fn push(&mut self, rec: &Record<'_>, out: &mut Vec<u8>) {
        if self.exhausted() {
            return;
        }
        if let Some(since) = self.since {
            // An unparsable timestamp is kept: better too much than lost.
            if rec.timestamp.parse::<Timestamp>().is_ok_and(|t| t < since) {
                return;
            }
        }
        let mut piece = Vec::with_capacity(rec.text.len() + 40);
        if self.timestamps && !self.mid_line {
            piece.extend_from_slice(rec.timestamp.as_bytes());
            piece.push(b' ');
        }
        piece.extend_from_slice(rec.text);
        if !rec.partial {
            piece.push(b'\n');
        }
        self.mid_line = rec.partial;
        if let Some(left) = self.left.as_mut() {
            let n = piece
                .len()
                .min(usize::try_from(*left).unwrap_or(usize::MAX));
            piece.truncate(n);
            *left -= n as u64;
        }
        out.extend_from_slice(&piece);
    }
}

/// Byte offset in `data` where the last `n` lines start (a line being
/// records up to and including an `F` record), so a tail never begins in
/// the middle of a split line. `data` holds whole lines only.
pub fn tail_offset(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut full_lines = 0u64;
    // Walk file lines backwards; `end` is one past a line's newline.
    let mut end = data.len();
    while end > 0 {
        let start = data[..end - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        if parse(&data[start..end - 1]).is_some_and(|r| !r.partial) {
            if full_lines == n {
                return end;
            }
            full_lines += 1;
        }
        end = start;
    }
    0
}

/// Splits `data` at the end of its last complete line: (complete, rest).
pub fn complete_lines(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().rposition(|b| *b == b'\n') {
        Some(p) => data.split_at(p + 1),
        None => (&data[..0], data),
    }
}

/// Renders every complete line of `data`.
pub fn render_lines(data: &[u8], r: &mut Renderer, out: &mut Vec<u8>) {
    for line in data.split(|b| *b == b'\n') {
        if r.exhausted() {
            return;
        }
        if let Some(rec) = parse(line) {
            r.push(&rec, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"2026-01-01T00:00:01.000000001Z stdout F one\n\
2026-01-01T00:00:02Z stderr F two\n\
2026-01-01T00:00:03Z stdout P thr\n\
2026-01-01T00:00:03.5Z stdout F ee\n\
garbage\n\
2026-01-01T00:00:04Z stdout F four\n";

    fn render(r: Render, data: &[u8]) -> String {
        let mut out = Vec::new();
        render_lines(data, &mut Renderer::new(&r), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_records() {
        let r = parse(b"2026-01-01T00:00:01Z stderr P a b").unwrap();
        assert_eq!(r.stream, "stderr");
        assert!(r.partial);
        assert_eq!(r.text, b"a b");
        assert_eq!(parse(b"2026-01-01T00:00:01Z stdout F").unwrap().text, b"");
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"t stdout X text").is_none());
    }

    #[test]
    fn renders_plain_timestamps_since_and_limit() {
        assert_eq!(render(Render::default(), FILE), "one\ntwo\nthree\nfour\n");
        assert_eq!(
            render(
                Render {
                    timestamps: true,
                    ..Default::default()
                },
                FILE
            ),
            "2026-01-01T00:00:01.000000001Z one\n2026-01-01T00:00:02Z two\n\
2026-01-01T00:00:03Z three\n2026-01-01T00:00:04Z four\n"
        );
        assert_eq!(
            render(
                Render {
                    since: Some("2026-01-01T00:00:02Z".parse().unwrap()),
                    ..Default::default()
                },
                FILE
            ),
            "two\nthree\nfour\n"
        );
        assert_eq!(
            render(
                Render {
                    limit_bytes: Some(6),
                    ..Default::default()
                },
                FILE
            ),
            "one\ntw"
        );
    }

    #[test]
    fn tail_starts_at_whole_lines() {
        let at = |n| std::str::from_utf8(&FILE[tail_offset(FILE, n)..]).unwrap();
        assert_eq!(
            render(Render::default(), &FILE[tail_offset(FILE, 1)..]),
            "four\n"
        );
        assert_eq!(
            render(Render::default(), &FILE[tail_offset(FILE, 2)..]),
            "three\nfour\n"
        );
        assert!(at(2).starts_with("2026-01-01T00:00:03Z stdout P thr"));
        assert_eq!(
            render(Render::default(), &FILE[tail_offset(FILE, 3)..]),
            "two\nthree\nfour\n"
        );
        assert_eq!(tail_offset(FILE, 10), 0);
        assert_eq!(tail_offset(FILE, 0), FILE.len());
        assert_eq!(tail_offset(b"", 3), 0);
    }

    #[test]
    fn splits_complete_lines() {
        assert_eq!(complete_lines(b"a\nb"), (&b"a\n"[..], &b"b"[..]));
        assert_eq!(complete_lines(b"ab"), (&b""[..], &b"ab"[..]));
    }
}

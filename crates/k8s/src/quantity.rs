//! Kubernetes resource quantities ("100m", "1.5", "128Mi", "1e3") as plain
//! integers: thousandths of the base unit, millicores for cpu, whole base
//! units (bytes, counts) for everything else. k8s-openapi keeps `Quantity`
//! a string and no maintained crate parses it, so this is the grammar of
//! apimachinery's resource.Quantity, minus what nobody writes in a spec.
//! Negative quantities are refused: nothing a node or a pod asks for is.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Thousandths of the base unit ("100m" → 100, "2" → 2000, "1Ki" →
/// 1_024_000), rounded up like Kubernetes does; `None` for garbage.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let milli = (value * factor * 1000.0).ceil();
    if !milli.is_finite() || milli < 0.0 {
        return None;
    }
    Some(milli as i128)
}

/// `s` in thousandths when `milli` (cpu), else in whole base units, rounded
/// up (a request of 1.5 bytes needs 2).
pub fn parse(s: &str, milli: bool) -> Option<i128> {
    let m = parse_milli(s)?;
    Some(if milli { m } else { (m + 999) / 1000 })
}

/// Millicores for "cpu"; whole units (bytes, counts) for every other name.
pub fn parse_resource(name: &str, q: &Quantity) -> Option<i128> {
    parse(&q.0, name == "cpu")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_forms() {
        assert_eq!(parse_resource("cpu", &Quantity("100m".into())), Some(100));
        assert_eq!(parse_resource("cpu", &Quantity("1.5".into())), Some(1500));
        assert_eq!(parse_resource("cpu", &Quantity("2".into())), Some(2000));
        assert_eq!(parse("0.5", true), Some(500));
        assert_eq!(
            parse_resource("memory", &Quantity("128Mi".into())),
            Some(128 * 1024 * 1024)
        );
        assert_eq!(parse("64Mi", false), Some(64 << 20));
        assert_eq!(
            parse_resource("memory", &Quantity("1G".into())),
            Some(1_000_000_000)
        );
        assert_eq!(parse("1e3", false), Some(1000));
        assert_eq!(parse("1.5", false), Some(2));
        assert_eq!(parse_resource("pods", &Quantity("110".into())), Some(110));
        assert_eq!(parse("1Ei", false), Some(1 << 60));
    }

    #[test]
    fn garbage_and_negatives_are_none() {
        for bad in ["", "abc", "1Xi", "--1", "1e", "-5", "12x", "Mi"] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
    }
}

//! Kubernetes resource quantities ("100m", "1.5", "128Mi", "1e3") as plain
//! integers in the unit the scheduler compares: millicores for cpu, bytes
//! (or counts) for everything else. k8s-openapi keeps `Quantity` a string,
//! and no maintained crate parses it, so this is the grammar of
//! apimachinery's resource.Quantity, minus what nobody writes in a spec.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parses a quantity into thousandths of its base unit ("100m" → 100,
/// "2" → 2000, "1Ki" → 1_024_000), rounding up like Kubernetes does.
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

/// Millicores for "cpu"; whole units (bytes, counts) for everything else.
pub fn parse_resource(name: &str, q: &Quantity) -> Option<i128> {
    let milli = parse_milli(&q.0)?;
    if name == "cpu" {
        Some(milli)
    } else {
        // Round up: a request of 1.5 bytes needs 2.
        Some((milli + 999) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_forms() {
        assert_eq!(parse_resource("cpu", &Quantity("100m".into())), Some(100));
        assert_eq!(parse_resource("cpu", &Quantity("1.5".into())), Some(1500));
        assert_eq!(parse_resource("cpu", &Quantity("2".into())), Some(2000));
        assert_eq!(
            parse_resource("memory", &Quantity("128Mi".into())),
            Some(128 * 1024 * 1024)
        );
        assert_eq!(
            parse_resource("memory", &Quantity("1G".into())),
            Some(1_000_000_000)
        );
        assert_eq!(
            parse_resource("memory", &Quantity("1e3".into())),
            Some(1000)
        );
        assert_eq!(parse_resource("pods", &Quantity("110".into())), Some(110));
    }

    #[test]
    fn garbage_is_none() {
        for bad in ["", "abc", "1Xi", "--1", "1e", "-5"] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
    }
}

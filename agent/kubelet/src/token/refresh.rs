//! When kubelet's token manager replaces a token: once 80% of its lifetime
//! has passed, or 24 h after it was issued, whichever comes first (a token
//! the API server issued for longer still rotates daily). The lifetime is
//! the one the server answered with (it may differ from the request).
//! Pure: callers pass the clock.

use jiff::{SignedDuration, Timestamp};

/// Tokens older than this are replaced whatever their expiry.
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(24);

/// The moment a token expiring at `expires` with lifetime `ttl_seconds`
/// must be replaced.
pub fn refresh_at(expires: Timestamp, ttl_seconds: i64) -> Timestamp {
    let ttl = SignedDuration::from_secs(ttl_seconds.max(0));
    let issued = expires - ttl;
    // kubelet: "within 20% of the TTL ... from the expiration time".
    let by_lifetime = expires - SignedDuration::from_secs(ttl_seconds.max(0) * 20 / 100);
    let by_age = issued + MAX_AGE;
    by_lifetime.min(by_age)
}

/// Whether the token must be replaced at `now`.
pub fn requires_refresh(now: Timestamp, expires: Timestamp, ttl_seconds: i64) -> bool {
    now >= refresh_at(expires, ttl_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn an_hour_token_is_replaced_after_48_minutes() {
        // Issued at 0, expires at 3600: due at 2880 s (80%).
        assert_eq!(refresh_at(t(3600), 3600), t(2880));
        assert!(!requires_refresh(t(2879), t(3600), 3600));
        assert!(requires_refresh(t(2880), t(3600), 3600));
        assert!(requires_refresh(t(4000), t(3600), 3600));
    }

    #[test]
    fn the_shortest_lifetime_is_replaced_before_80_percent_passed() {
        // expirationSeconds 600, kube's minimum: due at 480 s.
        assert_eq!(refresh_at(t(600), 600), t(480));
        // kube-api-access' 3607 s: due at 2886 s (integer 20%, as kubelet).
        assert_eq!(refresh_at(t(3607), 3607), t(3607 - 721));
    }

    #[test]
    fn a_long_token_rotates_after_a_day() {
        // A year-long token (--service-account-extend-token-expiration):
        // due 24 h after issue, long before 80% of a year.
        let year = 365 * 24 * 3600;
        assert_eq!(refresh_at(t(year), year), t(24 * 3600));
        // A 48 h token: 80% would be 38.4 h; 24 h comes first.
        assert_eq!(refresh_at(t(48 * 3600), 48 * 3600), t(24 * 3600));
    }

    #[test]
    fn a_nonsense_lifetime_is_due_at_once() {
        assert_eq!(refresh_at(t(0), 0), t(0));
        assert_eq!(refresh_at(t(0), -5), t(0));
    }
}

//! The per-host stagger that spreads a fleet's renewals, and fleet-simulation helpers.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::time::{subtract_saturating, unix_seconds_floor};
use crate::{Fingerprint, Policy};

/// Separates this use of SHA-256 from any other hash of the same identity.
const STAGGER_DOMAIN: &[u8] = b"renewal-policy/stagger/v1\0";

/// The host's identity, hashed, from which its stagger is derived.
///
/// The same identity always gives the same stagger, so a restarted agent keeps its place in
/// the fleet. Prefer the client id, which survives renewals; the certificate fingerprint also
/// works but gives the host a new place after every renewal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostSeed {
    digest: [u8; 32],
}

impl HostSeed {
    /// A seed from any stable identity bytes.
    pub fn from_bytes(identity: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(STAGGER_DOMAIN);
        hasher.update(identity);
        Self {
            digest: hasher.finalize().into(),
        }
    }

    /// A seed from the client id the manager assigned at registration.
    pub fn from_client_id(client_id: &str) -> Self {
        Self::from_bytes(client_id.as_bytes())
    }

    /// A seed from the current certificate's fingerprint.
    pub fn from_fingerprint(fingerprint: &Fingerprint) -> Self {
        Self::from_bytes(&fingerprint.0)
    }

    /// A number in `[0, 1)` with 64 bits of precision, as `numerator / 2^64`.
    fn fraction_numerator(&self) -> u64 {
        let mut first_eight = [0_u8; 8];
        first_eight.copy_from_slice(&self.digest[..8]);
        u64::from_be_bytes(first_eight)
    }
}

impl fmt::Debug for HostSeed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "HostSeed({:016x}…)", self.fraction_numerator())
    }
}

/// This host's jitter for the `attempt`-th retry after back-pressure: `delay` scaled by a
/// fraction in `[0, 1)` drawn from the seed and the attempt (SHA-256), so a throttled fleet does
/// not come back in step, and one host's successive retries differ.
pub(crate) fn jitter(host: &HostSeed, attempt: u32, delay: Duration) -> Duration {
    let mut hasher = Sha256::new();
    hasher.update(b"cte-agent back-pressure jitter v1");
    hasher.update(host.digest);
    hasher.update(attempt.to_be_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut first_eight = [0_u8; 8];
    first_eight.copy_from_slice(&digest[..8]);
    let fraction = u128::from(u64::from_be_bytes(first_eight));
    let scaled = (fraction * delay.as_nanos()) >> 64;
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// This host's stagger: whole seconds in `[0, policy.effective_max_stagger())`.
///
/// The first 64 bits of the seed's hash, read as a fraction of 2^64, scale the range
/// (multiply-and-shift, so every second of the range is equally likely to within 2^-64).
/// Zero when the range is shorter than one second.
pub fn stagger_offset(policy: &Policy, host: &HostSeed) -> Duration {
    let range_seconds = u128::from(policy.effective_max_stagger().as_secs());
    let offset_seconds = (u128::from(host.fraction_numerator()) * range_seconds) >> 64;
    // offset_seconds < range_seconds <= u64::MAX, so the conversion cannot fail.
    Duration::from_secs(u64::try_from(offset_seconds).unwrap_or(0))
}

/// When this host's renewal window opens for a certificate expiring at `not_after`:
/// `not_after - renew_before + stagger_offset`.
///
/// Because the stagger range is clamped (see [`Policy::effective_max_stagger`]), the result is
/// never later than `not_after - minimum_time_left_at_window_start` unless `renew_before`
/// itself is shorter than that, in which case it is exactly `not_after - renew_before`.
///
/// This is also the helper for fleet simulations: call it once per host seed with a shared
/// `not_after`, then feed the times to [`peak_per_clock_hour`].
pub fn renewal_window_start(policy: &Policy, host: &HostSeed, not_after: SystemTime) -> SystemTime {
    let unstaggered = subtract_saturating(not_after, policy.renew_before);
    unstaggered
        .checked_add(stagger_offset(policy, host))
        .unwrap_or(unstaggered)
}

/// The largest number of `times` that fall in one UTC clock hour (`HH:00:00` to `HH:59:59`),
/// which is what a manager's hourly request graph would show as its peak. Zero if empty.
pub fn peak_per_clock_hour(times: &[SystemTime]) -> usize {
    let mut per_hour: BTreeMap<i128, usize> = BTreeMap::new();
    for time in times {
        *per_hour
            .entry(unix_seconds_floor(*time).div_euclid(3600))
            .or_default() += 1;
    }
    per_hour.into_values().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_deterministic_and_distinct() {
        assert_eq!(
            HostSeed::from_client_id("host-1"),
            HostSeed::from_bytes(b"host-1")
        );
        assert_ne!(
            HostSeed::from_client_id("host-1"),
            HostSeed::from_client_id("host-2")
        );
        let policy = Policy::default();
        let seed = HostSeed::from_client_id("host-1");
        assert_eq!(
            stagger_offset(&policy, &seed),
            stagger_offset(&policy, &seed.clone())
        );
    }

    #[test]
    fn offsets_stay_in_range_at_both_ends() {
        let policy = Policy::default();
        let lowest = HostSeed { digest: [0; 32] };
        let highest = HostSeed { digest: [0xff; 32] };
        assert_eq!(stagger_offset(&policy, &lowest), Duration::ZERO);
        assert_eq!(
            stagger_offset(&policy, &highest),
            policy.max_stagger - Duration::from_secs(1)
        );
        let no_stagger = Policy {
            max_stagger: Duration::from_millis(999),
            ..Policy::default()
        };
        assert_eq!(stagger_offset(&no_stagger, &highest), Duration::ZERO);
    }

    #[test]
    fn fingerprints_print_as_lower_case_hex() {
        let mut bytes = [0_u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x01;
        let text = Fingerprint(bytes).to_string();
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("ab00"));
        assert!(text.ends_with("0001"));
    }

    #[test]
    fn peak_counts_by_clock_hour() {
        let hour = |h: u64, s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(h * 3600 + s);
        assert_eq!(peak_per_clock_hour(&[]), 0);
        let times = [
            hour(1, 0),
            hour(1, 3599),
            hour(2, 0),
            hour(5, 1),
            hour(5, 2),
            hour(5, 3),
        ];
        assert_eq!(peak_per_clock_hour(&times), 3);
    }
}

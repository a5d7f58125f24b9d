//! Item 6 of the bench: the fleet arithmetic of the renewal stagger (peak requests per hour
//! for simulated fleets).

use std::io::Read;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use renewal_policy::{HostSeed, Policy, peak_per_clock_hour, renewal_window_start};

use super::markdown::{Row, verdict};
use super::timing::median_of;

const FLEET_HOSTS: usize = 10_000;
pub(super) const FLEET_HOSTS_TEXT: &str = "10,000";

// ---- Item 6 ---------------------------------------------------------------------------------

pub(super) struct FleetNumbers {
    pub(super) fleets: usize,
    pub(super) even_per_hour: f64,
    pub(super) stagger_hours: f64,
    pub(super) clock_peaks: Vec<usize>,
    pub(super) sliding_peaks: Vec<usize>,
    pub(super) late_clock_peaks: Vec<usize>,
}

impl FleetNumbers {
    pub(super) fn rows(&self) -> Vec<Row> {
        let median_peak = median_of(&self.clock_peaks);
        let worst_peak = self.clock_peaks.iter().copied().max().unwrap_or(0);
        let worst_sliding = self.sliding_peaks.iter().copied().max().unwrap_or(0);
        let late_median = median_of(&self.late_clock_peaks);
        let late_worst = self.late_clock_peaks.iter().copied().max().unwrap_or(0);
        let ratio = |peak: f64| peak / self.even_per_hour;
        vec![
            Row {
                number: "6",
                what: format!(
                    "fleet: peak renewal requests per clock hour, {FLEET_HOSTS_TEXT} hosts, one expiry, new sets in place before the windows open ({} random fleets)",
                    self.fleets
                ),
                ours: format!(
                    "median {median_peak:.0}, worst {worst_peak} (worst sliding 60-min window {worst_sliding})"
                ),
                reference: format!(
                    "{:.1}/h (even over the {:.0} h stagger)",
                    self.even_per_hour, self.stagger_hours
                ),
                ratio: format!(
                    "{:.3} (worst {:.3}; sliding {:.3})",
                    ratio(median_peak),
                    ratio(worst_peak as f64),
                    ratio(worst_sliding as f64)
                ),
                target: "≤ 1.2".to_string(),
                verdict: format!(
                    "median {}, worst fleet {}, sliding {}",
                    verdict(ratio(median_peak) <= 1.2),
                    verdict(ratio(worst_peak as f64) <= 1.2),
                    verdict(ratio(worst_sliding as f64) <= 1.2)
                ),
            },
            Row {
                number: "6",
                what: "fleet, same, but the new sets arrive after every window opened (hosts retry every 24 h)".to_string(),
                ours: format!("median {late_median:.0}, worst {late_worst}"),
                reference: format!("{:.1}/h", self.even_per_hour),
                ratio: format!(
                    "{:.3} (worst {:.3})",
                    ratio(late_median),
                    ratio(late_worst as f64)
                ),
                target: "(no target; see notes)".to_string(),
                verdict: "—".to_string(),
            },
        ]
    }

    pub(super) fn notes(&self) -> Vec<String> {
        vec![
            format!(
                "Item 6: `renewal_policy::renewal_window_start` with the default policy (what agent.conf's \
                 defaults give: 60 days, stagger up to {:.0} h, retry 24 h) and seeds made as the agent \
                 makes them, `HostSeed::from_client_id` of a random UUID-like client id; the shared expiry \
                 is 2027-01-01 plus a random offset inside the hour, per fleet. Peaks are per UTC clock \
                 hour (`peak_per_clock_hour`, what a manager's hourly graph shows); the sliding 60-minute \
                 window is the stricter reading of \"any hour\".",
                self.stagger_hours
            ),
            "Item 6, second row: when the administrator drops the new sets in after the windows opened, \
             each host finds nothing at its window start and looks again every 24 h from then, so the \
             48 h stagger folds onto a 24 h cycle and the peak roughly doubles against the 48 h even \
             spread (it is close to even over 24 h). The stagger cannot help there; the manager's load is \
             then set by the retry interval."
                .to_string(),
        ]
    }
}

pub(super) fn fleet_arithmetic(fleets: usize) -> Result<FleetNumbers> {
    let policy = Policy::default();
    let stagger = policy.effective_max_stagger();
    let stagger_hours = stagger.as_secs_f64() / 3600.0;
    let even_per_hour = FLEET_HOSTS as f64 / stagger_hours;
    // 2027-01-01T00:00:00Z.
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
    let mut random = RandomBytes::open()?;
    let mut clock_peaks = Vec::new();
    let mut sliding_peaks = Vec::new();
    let mut late_clock_peaks = Vec::new();
    for _ in 0..fleets {
        let not_after = base + Duration::from_secs(random.below(3600)?);
        let mut starts = Vec::with_capacity(FLEET_HOSTS);
        for _ in 0..FLEET_HOSTS {
            let client_id = random.uuid()?;
            starts.push(renewal_window_start(
                &policy,
                &HostSeed::from_client_id(&client_id),
                not_after,
            ));
        }
        clock_peaks.push(peak_per_clock_hour(&starts));
        sliding_peaks.push(peak_per_sliding_hour(&starts));
        // The new sets arrive at one moment after the last window opened: each host sends its
        // request at its first look at or after that moment (window start + k × retry interval).
        let arrival = not_after - policy.renew_before
            + stagger
            + Duration::from_secs(random.below(policy.retry_interval.as_secs())?);
        let late: Vec<SystemTime> = starts
            .iter()
            .map(|start| {
                let mut look = *start;
                while look < arrival {
                    look += policy.retry_interval;
                }
                look
            })
            .collect();
        late_clock_peaks.push(peak_per_clock_hour(&late));
    }
    Ok(FleetNumbers {
        fleets,
        even_per_hour,
        stagger_hours,
        clock_peaks,
        sliding_peaks,
        late_clock_peaks,
    })
}

/// The largest number of `times` inside any window of 3,600 seconds.
pub(super) fn peak_per_sliding_hour(times: &[SystemTime]) -> usize {
    let mut seconds: Vec<u64> = times
        .iter()
        .map(|time| {
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        })
        .collect();
    seconds.sort_unstable();
    let mut peak = 0;
    let mut first = 0;
    for (last, second) in seconds.iter().enumerate() {
        while *second - seconds[first] >= 3600 {
            first += 1;
        }
        peak = peak.max(last - first + 1);
    }
    peak
}

/// Random bytes from the kernel, for client ids and offsets.
pub(super) struct RandomBytes(std::fs::File);

impl RandomBytes {
    pub(super) fn open() -> Result<Self> {
        Ok(Self(
            std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        ))
    }

    pub(super) fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut bytes = [0; N];
        self.0.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    pub(super) fn below(&mut self, limit: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?) % limit.max(1))
    }

    /// A random version-4 UUID in its usual text form, like the manager's client ids.
    pub(super) fn uuid(&mut self) -> Result<String> {
        let mut bytes: [u8; 16] = self.bytes()?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_hour_peak_counts_any_sixty_minutes() {
        let at = |seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        assert_eq!(peak_per_sliding_hour(&[]), 0);
        // Two clock hours of two each, but three inside one sliding hour.
        let times = [at(100), at(3_500), at(3_700), at(7_000)];
        assert_eq!(peak_per_clock_hour(&times), 2);
        assert_eq!(peak_per_sliding_hour(&times), 3);
    }

    #[test]
    fn client_ids_look_like_the_managers_uuids() {
        let mut random = RandomBytes::open().expect("urandom");
        let id = random.uuid().expect("uuid");
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, random.uuid().expect("uuid"));
    }
}

//! Item 5 of the bench: the load generator that measures the emulator's registrations and
//! renewals per second with concurrent mTLS clients.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::json;
use test_pki::{ClientCertificateRequest, IssuedCertificate, KeyMaterial, KeyType};

use super::emulator::{EmulatorProcess, call, client_agent};
use super::markdown::Row;
use super::process::Memory;
use super::{DAY, Settings};

pub(super) const CONCURRENT_CLIENTS: usize = 32;
const RSA_LOAD_KEYS: usize = 4;

// ---- Item 5 ---------------------------------------------------------------------------------

pub(super) struct LoadNumbers {
    pub(super) per_key_type: Vec<LoadRates>,
    pub(super) clients: usize,
    pub(super) rounds: usize,
    pub(super) emulator_memory: Memory,
    /// How the two processes were placed on the cores: `Ok(text)` when pinned with `taskset`,
    /// or why they were not.
    pub(super) pinning: Result<String, String>,
}

/// Item 5's rates for one key type, one entry per round.
pub(super) struct LoadRates {
    pub(super) label: &'static str,
    pub(super) registrations: Vec<f64>,
    pub(super) renewals: Vec<f64>,
}

/// "median 123/s (best 150/s)" over the rounds, or the one value.
pub(super) fn rate_text(rates: &[f64], unit: &str) -> String {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => 0.0,
        length if length % 2 == 1 => sorted[length / 2],
        length => (sorted[length / 2 - 1] + sorted[length / 2]) / 2.0,
    };
    match sorted.last() {
        Some(best) if sorted.len() > 1 => format!("{median:.0} {unit} (best {best:.0})"),
        _ => format!("{median:.0} {unit}"),
    }
}

impl LoadNumbers {
    pub(super) fn rows(&self, _settings: &Settings) -> Vec<Row> {
        self.per_key_type
            .iter()
            .map(|rates| Row {
                number: "5",
                what: format!(
                    "emulator, {}: registrations/s and renewals/s, {CONCURRENT_CLIENTS} concurrent mTLS clients ({} rounds of {} clients, median)",
                    rates.label, self.rounds, self.clients
                ),
                ours: format!(
                    "{}; {}",
                    rate_text(&rates.registrations, "registrations/s"),
                    rate_text(&rates.renewals, "renewals/s")
                ),
                reference: "—".to_string(),
                ratio: "—".to_string(),
                target: "none set".to_string(),
                verdict: "—".to_string(),
            })
            .collect()
    }

    pub(super) fn notes(&self) -> Vec<String> {
        vec![format!(
            "Item 5: the release `cm-emulator` in its own process; the load generator (this task, \
             release build, ureq over rustls) runs on the same machine, and so does whatever else \
             runs on it (see the load average): these rates are the least stable numbers of the \
             table. Each round registers {} new clients per key type and then renews \
             each of them; rounds alternate the key types. Every request is a fresh TLS connection \
             presenting that client's certificate, as separate hosts would. A registration is one \
             connection (`POST /api/v1/client-management/clients/`); a renewal is two \
             (client-certificate login with the current certificate, then `POST \
             .../self/client/renew` presenting the new one). RSA-3072 clients share \
             {RSA_LOAD_KEYS} keys (the server's work does not depend on whether keys repeat). \
             Emulator resident memory afterwards: {}. Cores: {}.",
            self.clients,
            self.emulator_memory.text(),
            match &self.pinning {
                Ok(text) => text.clone(),
                Err(why) => format!("not pinned ({why}); the two processes shared the cores"),
            }
        )]
    }
}

/// One simulated host of the load test: its name, first and renewed certificate.
pub(super) struct LoadClient {
    pub(super) name: String,
    pub(super) first: IssuedCertificate,
    pub(super) renewed: IssuedCertificate,
}

pub(super) fn measure_emulator_load(settings: &Settings, work: &Path) -> Result<LoadNumbers> {
    let emulator = EmulatorProcess::start(&work.join("load-state"))?;
    emulator.setup_test_cas()?;
    // The emulator on the last core and this load generator on the others, so that the two do
    // not take turns on one core and the rate is stable; undone afterwards.
    let pinning = pin_apart(emulator.process.pid());
    let ca_pem = std::fs::read(&emulator.web_ca_path)?;
    let rsa_keys: Vec<KeyMaterial> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RSA_LOAD_KEYS)
            .map(|_| scope.spawn(|| KeyMaterial::generate(KeyType::RSA_3072)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| anyhow!("RSA key generation panicked"))?
                    .map_err(anyhow::Error::from)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let now = SystemTime::now();
    let kinds = [
        ("P-384", KeyType::P384, "ca-p384"),
        ("RSA-3072", KeyType::RSA_3072, "ca-rsa"),
    ];
    let mut per_key_type: Vec<LoadRates> = kinds
        .iter()
        .map(|(label, _, _)| LoadRates {
            label,
            registrations: Vec::new(),
            renewals: Vec::new(),
        })
        .collect();
    // Rounds alternate the key types, so that load from elsewhere on the machine falls on both.
    for round in 0..settings.load_rounds {
        for ((label, key_type, ca_name), rates) in kinds.iter().zip(&mut per_key_type) {
            let round_setup = LoadRound {
                emulator: &emulator,
                ca_pem: &ca_pem,
                label,
                key_type: *key_type,
                ca_name,
                round,
                clients: settings.load_clients_per_key_type,
                rsa_keys: &rsa_keys,
                now,
            };
            let (registrations, renewals) = load_round(&round_setup)?;
            rates.registrations.push(registrations);
            rates.renewals.push(renewals);
        }
    }
    let emulator_memory = Memory::read(emulator.process.pid())?;
    emulator.stop();
    if let Ok(cores) = &pinning {
        // Back to every core for the rest of the bench.
        let _ = taskset(std::process::id(), &cores.all);
    }
    Ok(LoadNumbers {
        per_key_type,
        clients: settings.load_clients_per_key_type,
        rounds: settings.load_rounds,
        emulator_memory,
        pinning: pinning.map(|cores| cores.text),
    })
}

/// The cores as pinned by [`pin_apart`].
struct Pinned {
    /// Every core (`0-1`), to undo the load generator's pinning.
    all: String,
    /// What the notes say.
    text: String,
}

/// Pins the emulator (`pid`, every thread) to the last core and this process to the others,
/// with util-linux's `taskset`.
fn pin_apart(emulator: u32) -> Result<Pinned, String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        return Err(format!("{cores} core available"));
    }
    let last = cores - 1;
    let others = if last == 1 {
        "0".to_string()
    } else {
        format!("0-{}", last - 1)
    };
    taskset(emulator, &last.to_string())?;
    taskset(std::process::id(), &others)?;
    Ok(Pinned {
        all: format!("0-{last}"),
        text: format!(
            "pinned with `taskset`: the emulator on core {last}, the load generator on core(s) \
             {others}"
        ),
    })
}

/// `taskset -a -p -c CORES PID`.
fn taskset(pid: u32, cores: &str) -> Result<(), String> {
    let output = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cores, &pid.to_string()])
        .output()
        .map_err(|error| format!("taskset: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// One round of item 5 for one key type.
pub(super) struct LoadRound<'a> {
    pub(super) emulator: &'a EmulatorProcess,
    pub(super) ca_pem: &'a [u8],
    pub(super) label: &'a str,
    pub(super) key_type: KeyType,
    pub(super) ca_name: &'a str,
    pub(super) round: usize,
    pub(super) clients: usize,
    pub(super) rsa_keys: &'a [KeyMaterial],
    pub(super) now: SystemTime,
}

/// Registers `clients` new clients, then renews each of them; returns registrations/s and
/// renewals/s.
pub(super) fn load_round(setup: &LoadRound<'_>) -> Result<(f64, f64)> {
    let ca = test_support::test_ca(setup.ca_name)?;
    let token = setup.emulator.create_token_unlimited(setup.ca_name)?;
    let clients = (0..setup.clients)
        .map(|index| {
            let name = format!(
                "load-{}-{}-{index}",
                setup.label.to_lowercase(),
                setup.round
            );
            let common_name = format!("{name}.example");
            let request = |not_after| {
                let request = ClientCertificateRequest::new(&common_name)
                    .validity(setup.now - DAY, not_after);
                if setup.key_type == KeyType::P384 {
                    request.key_type(KeyType::P384)
                } else {
                    request.key(setup.rsa_keys[index % RSA_LOAD_KEYS].clone())
                }
            };
            Ok(LoadClient {
                first: ca.issue(&request(setup.now + 300 * DAY))?,
                renewed: ca.issue(&request(setup.now + 400 * DAY))?,
                name,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let registration_url = format!("{}/api/v1/client-management/clients/", setup.emulator.url);
    let (registered, registration_time) = in_parallel(clients, |client| {
        let agent = client_agent(setup.ca_pem, Some(&client.first))?;
        let (status, reply) = call(
            &agent,
            "POST",
            &registration_url,
            None,
            Some(&json!({
                "reg_token": token,
                "cert": client.first.chain_pem(),
                "name": client.name,
                "client_type": "CTE",
            })),
        )?;
        ensure!(status == 201, "registration answered {status}: {reply}");
        let id = reply["id"].as_str().context("no client id")?.to_string();
        Ok((id, client))
    })?;
    let count = registered.len();
    let login_url = format!("{}/api/v1/auth/tokens/", setup.emulator.url);
    let renew_url = format!(
        "{}/api/v1/client-management/self/client/renew",
        setup.emulator.url
    );
    let (_, renewal_time) = in_parallel(registered, |(id, client)| {
        let current = client_agent(setup.ca_pem, Some(&client.first))?;
        let (status, login) = call(
            &current,
            "POST",
            &login_url,
            None,
            Some(&json!({"grant_type": "client_credential", "client_id": id})),
        )?;
        ensure!(status == 200, "login answered {status}: {login}");
        let bearer = login["jwt"].as_str().context("no jwt")?;
        let renewed = client_agent(setup.ca_pem, Some(&client.renewed))?;
        let (status, reply) = call(
            &renewed,
            "POST",
            &renew_url,
            Some(bearer),
            Some(&json!({"ext_cert": client.renewed.chain_pem()})),
        )?;
        ensure!(status == 200, "renewal answered {status}: {reply}");
        Ok(())
    })?;
    let registrations = count as f64 / registration_time.as_secs_f64();
    let renewals = count as f64 / renewal_time.as_secs_f64();
    eprintln!(
        "   {} round {}: {registrations:.0} registrations/s, {renewals:.0} renewals/s ({count} clients)",
        setup.label,
        setup.round + 1
    );
    Ok((registrations, renewals))
}

/// Runs `work` over `items` on [`CONCURRENT_CLIENTS`] threads; returns the results (in no
/// particular order) and the wall time.
pub(super) fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    work: impl Fn(T) -> Result<R> + Sync,
) -> Result<(Vec<R>, Duration)> {
    let queue = Mutex::new(items);
    let results = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..CONCURRENT_CLIENTS)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let Some(item) = queue.lock().map_err(|_| anyhow!("poisoned"))?.pop()
                        else {
                            return Ok(());
                        };
                        let result = work(item)?;
                        results
                            .lock()
                            .map_err(|_| anyhow!("poisoned"))?
                            .push(result);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow!("a load worker panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();
    let results = results.into_inner().map_err(|_| anyhow!("poisoned"))?;
    Ok((results, elapsed))
}

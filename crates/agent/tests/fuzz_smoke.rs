//! The fuzz harnesses of `fuzz/` on the stable toolchain, as CI runs them: every seed of
//! `fuzz/corpus/<target>/`, every saved finding of `fuzz/regressions/<target>/`, then
//! deterministic mutations of the seeds (bit flips, insertions, deletions, splices, truncations)
//! within a small time budget. libFuzzer (`cargo xtask fuzz`) explores far more; this keeps
//! the harnesses compiling and their properties holding on every change.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Upper bounds per target, to keep the CI run short.
const MAX_MUTATIONS: usize = 50_000;
const TIME_BUDGET: Duration = Duration::from_secs(2);

fn fuzz_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().is_file())
                .map(|entry| {
                    (
                        entry.file_name().to_string_lossy().into_owned(),
                        std::fs::read(entry.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    inputs.sort();
    inputs
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }
}

const INTERESTING: [&[u8]; 12] = [
    b"\x00",
    b"\xff",
    b"\n",
    b"\r\n",
    b"=",
    b"\"",
    b"#",
    b"-----END CERTIFICATE-----\n",
    b"\xef\xbb\xbf",
    b"}",
    b"\xe2\x80\x8b",
    harness::SEPARATOR,
];

fn mutate(random: &mut Random, seeds: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut data = seeds[random.below(seeds.len())].1.clone();
    for _ in 0..=random.below(4) {
        let at = random.below(data.len() + 1);
        match random.below(7) {
            0 if !data.is_empty() => {
                let at = at.min(data.len() - 1);
                data[at] ^= 1 << random.below(8);
            }
            1 if !data.is_empty() => {
                let at = at.min(data.len() - 1);
                data[at] = random.next() as u8;
            }
            2 => {
                let token = INTERESTING[random.below(INTERESTING.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + random.below(64)).min(data.len());
                data.drain(at..end);
            }
            4 => data.truncate(at),
            5 => {
                let other = &seeds[random.below(seeds.len())].1;
                let from = random.below(other.len());
                let end = (from + random.below(256)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let end = (at + random.below(32)).min(data.len());
                let chunk = data[at..end].to_vec();
                data.splice(at..at, chunk);
            }
        }
    }
    data
}

fn run(target: &str, harness: fn(&[u8])) {
    // Only the committed seeds: what libFuzzer adds locally is not in CI's checkout.
    let seeds: Vec<_> = inputs(&fuzz_folder().join("corpus").join(target))
        .into_iter()
        .filter(|(name, _)| name.starts_with("seed-"))
        .collect();
    assert!(!seeds.is_empty(), "no seed corpus for {target}");
    let regressions = inputs(&fuzz_folder().join("regressions").join(target));
    let started = Instant::now();
    for (name, data) in seeds.iter().chain(&regressions) {
        let result = std::panic::catch_unwind(|| harness(data));
        assert!(result.is_ok(), "{target}: input {name} failed");
    }
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    let mut mutations = 0;
    while mutations < MAX_MUTATIONS && started.elapsed() < TIME_BUDGET {
        let data = mutate(&mut random, &seeds);
        let result = std::panic::catch_unwind(|| harness(&data));
        if result.is_err() {
            let saved = std::env::temp_dir().join(format!("fuzz-smoke-{target}-{mutations}"));
            let _ = std::fs::write(&saved, &data);
            panic!(
                "{target}: mutation {mutations} failed; input saved to {} (copy it to fuzz/regressions/{target}/ once fixed)",
                saved.display()
            );
        }
        mutations += 1;
    }
    eprintln!(
        "fuzz smoke {target}: {} seeds, {} regressions, {mutations} mutations, {} executions in {:.1} s, no failure",
        seeds.len(),
        regressions.len(),
        seeds.len() + regressions.len() + mutations,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn certificate_loading_holds_over_the_corpus_and_mutations() {
    run("certificate_loading", harness::certificate_loading);
}

#[test]
fn agent_conf_holds_over_the_corpus_and_mutations() {
    run("agent_conf", harness::agent_conf);
}

#[test]
fn silent_file_holds_over_the_corpus_and_mutations() {
    run("silent_file", harness::silent_file);
}

#[test]
fn manager_response_holds_over_the_corpus_and_mutations() {
    run("manager_response", harness::manager_response);
}

//! Computes, prints and parses back a fingerprint, and prints certificate-range times.
//!
//! `cargo run --example vocabulary -p cert-vocabulary`

use std::time::{Duration, SystemTime};

use cert_vocabulary::{Fingerprint, format_rfc3339};

fn main() {
    let der = b"0\x82\x01\x0a... stands in for a certificate's DER";
    let fingerprint = Fingerprint::of(der);
    println!("manager form : {fingerprint}");
    println!("openssl form : {}", fingerprint.to_colon_hex());
    let typed_by_an_operator = format!("  {}  ", fingerprint.to_colon_hex().to_lowercase());
    let parsed: Fingerprint = typed_by_an_operator
        .parse()
        .expect("an operator's copy of OpenSSL's output parses");
    assert_eq!(parsed, fingerprint);
    println!("parsed back  : equal");
    match "12:34".parse::<Fingerprint>() {
        Ok(_) => unreachable!("two bytes are not a SHA-256"),
        Err(error) => println!("refused      : \"12:34\": {error}"),
    }
    for seconds in [0, 1_798_761_600, 253_402_300_799, 300_000_000_000] {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        println!("{seconds:>14} s: {}", format_rfc3339(time));
    }
}

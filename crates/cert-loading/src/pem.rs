//! A PEM block scanner that keeps RFC 1421 headers.
//!
//! `der::Document::from_pem` and `pem-rfc7468` refuse files with several blocks and the
//! `Proc-Type`/`DEK-Info` headers of OpenSSL's traditional encrypted keys, so this module finds
//! the blocks, their labels and headers, and hands the base64 body to `base64ct`.

use base64ct::Encoding;
use zeroize::Zeroizing;

/// One `-----BEGIN X-----` ... `-----END X-----` block.
pub(crate) struct PemBlock {
    /// The label, for example `CERTIFICATE` or `ENCRYPTED PRIVATE KEY`.
    pub(crate) label: String,
    /// RFC 1421 headers (`Proc-Type`, `DEK-Info`), in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The decoded body. Zeroized on drop because key blocks pass through here.
    pub(crate) der: Zeroizing<Vec<u8>>,
}

impl PemBlock {
    /// The value of a header, by case-insensitive name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Splits `input` into PEM blocks. Text outside blocks is ignored (OpenSSL writes "Bag
/// Attributes" and similar there). Returns a human-readable reason on failure.
pub(crate) fn parse_blocks(input: &[u8]) -> Result<Vec<PemBlock>, String> {
    let text = match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(_) if looks_like_der(input) => {
            return Err(
                "the file is binary DER, not PEM; convert it with: openssl x509 -inform DER -in FILE -out FILE.pem (or openssl pkey -inform DER for keys)"
                    .to_string(),
            );
        }
        Err(_) => return Err("the file is not text (not UTF-8)".to_string()),
    };
    let mut blocks = Vec::new();
    let mut lines = text
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .enumerate();
    while let Some((line_number, line)) = lines.next() {
        let Some(label) = marker(line.trim(), "-----BEGIN ") else {
            continue;
        };
        let mut headers = Vec::new();
        let mut body = Zeroizing::new(String::new());
        let mut in_headers = true;
        let mut ended = false;
        for (_, line) in lines.by_ref() {
            let line = line.trim();
            if let Some(end_label) = marker(line, "-----END ") {
                if end_label != label {
                    return Err(format!(
                        "block \"{label}\" (line {}) ends with \"{end_label}\"",
                        line_number + 1
                    ));
                }
                ended = true;
                break;
            }
            if in_headers {
                if line.is_empty() {
                    if !headers.is_empty() {
                        in_headers = false;
                    }
                    continue;
                }
                if let Some((key, value)) = line.split_once(':')
                    && !key.contains(' ')
                    && body.is_empty()
                {
                    headers.push((key.trim().to_string(), value.trim().to_string()));
                    continue;
                }
                in_headers = false;
            }
            body.push_str(line);
        }
        if !ended {
            return Err(format!(
                "block \"{label}\" starting at line {} has no END line (the file is truncated)",
                line_number + 1
            ));
        }
        let der = base64ct::Base64::decode_vec(&body)
            .map(Zeroizing::new)
            .map_err(|_| format!("block \"{label}\" has invalid base64 content"))?;
        if der.is_empty() {
            return Err(format!("block \"{label}\" is empty"));
        }
        blocks.push(PemBlock {
            label: label.to_string(),
            headers,
            der,
        });
    }
    if blocks.is_empty() {
        if looks_like_der(input) {
            return Err(
                "the file is binary DER, not PEM; convert it with: openssl x509 -inform DER -in FILE -out FILE.pem (or openssl pkey -inform DER for keys)"
                    .to_string(),
            );
        }
        return Err("no \"-----BEGIN ...-----\" block found".to_string());
    }
    Ok(blocks)
}

/// Returns the label of a `-----BEGIN LABEL-----` or `-----END LABEL-----` line.
fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

/// DER always starts with a SEQUENCE tag and a length byte.
fn looks_like_der(input: &[u8]) -> bool {
    input.len() > 2 && input[0] == 0x30 && (input[1] & 0x80 == 0 || input[1] <= 0x84)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_headers_of_traditional_keys() {
        let pem = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse_blocks(pem).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].header("proc-type"), Some("4,ENCRYPTED"));
        assert_eq!(
            blocks[0].header("DEK-Info"),
            Some("AES-256-CBC,00112233445566778899AABBCCDDEEFF")
        );
        assert_eq!(&blocks[0].der[..], &[0, 1, 2]);
    }

    #[test]
    fn several_blocks_and_text_between() {
        let pem = b"Bag Attributes\n-----BEGIN CERTIFICATE-----\r\nAAEC\r\n-----END CERTIFICATE-----\r\nsubject=x\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
        let blocks = parse_blocks(pem).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(&blocks[1].der[..], &[3, 4, 5]);
    }

    #[test]
    fn truncated_block_is_refused() {
        let error = parse_blocks(b"-----BEGIN CERTIFICATE-----\nAAEC\n")
            .err()
            .unwrap();
        assert!(error.contains("truncated"), "{error}");
    }

    #[test]
    fn bad_base64_is_refused() {
        let error = parse_blocks(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .err()
            .unwrap();
        assert!(error.contains("base64"), "{error}");
    }

    #[test]
    fn der_is_recognised() {
        let error = parse_blocks(&[0x30, 0x82, 0x01, 0x0a, 0xff, 0xfe])
            .err()
            .unwrap();
        assert!(error.contains("DER"), "{error}");
    }
}

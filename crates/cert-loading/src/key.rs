//! Private keys: decryption of every supported form, type rules and the secret type.

use std::fmt;
use std::path::Path;

use der::Decode;
use der::asn1::ObjectIdentifier;
use pkcs8::pkcs5::{self, pbes2};
use pkcs8::{EncryptedPrivateKeyInfoOwned, PrivateKeyInfoRef};
use spki::{AlgorithmIdentifierOwned, EncodePublicKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::pem::{PemBlock, parse_blocks};
use crate::traditional::{self, DekCipher};

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Upper bounds on key-derivation work and memory, so a hostile key file cannot make the agent
/// spend minutes or gigabytes (while it holds the renewal lock). Well above what tools write:
/// OpenSSL writes 2048 PBKDF2 iterations and scrypt N = 2^14, r = 8, p = 1 (N·r·p = 2^17);
/// OWASP's 2023 advice for PBKDF2-HMAC-SHA1 is 1,300,000 iterations. Memory alone does not bound
/// scrypt's work (`p` multiplies the time, not the memory), so the product N·r·p is bounded too.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// The largest scrypt N·r·p accepted: 2^22, 32 times OpenSSL's default.
pub const MAX_SCRYPT_WORK: u128 = 1 << 22;
/// The most memory scrypt may need (128·r·(N + p) bytes).
pub const MAX_SCRYPT_MEMORY_BYTES: u128 = 1 << 30;

/// A decrypted private key as unencrypted PKCS#8 DER.
///
/// The bytes are zeroized on drop, and `Debug` prints only the type name. Nothing in this crate
/// writes it anywhere.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct SecretKeyDer(Zeroizing<Vec<u8>>);

impl SecretKeyDer {
    /// Wraps PKCS#8 DER bytes. The caller gives up its copy.
    pub fn from_pkcs8_der(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The PKCS#8 DER bytes.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.0
    }

    /// The key as an unencrypted PKCS#8 PEM string (`BEGIN PRIVATE KEY`), for in-memory use by
    /// TLS libraries only. Zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        // `encode_string` builds the text in one buffer that becomes the returned string, so
        // no unzeroized copy of the base64 is left behind. It fails only when the encoded
        // length overflows `usize`.
        Zeroizing::new(
            der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &self.0)
                .expect("the PEM length of a key held in memory fits in usize"),
        )
    }
}

impl fmt::Debug for SecretKeyDer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SecretKeyDer(..)")
    }
}

/// The kind and size of a private key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA with the modulus length in bits.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
    /// ECDSA on NIST P-384.
    EcP384,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(formatter, "RSA {bits}"),
            Self::EcP384 => formatter.write_str("EC P-384"),
        }
    }
}

/// How the key file was encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFormat {
    /// `BEGIN ENCRYPTED PRIVATE KEY` with PBES2.
    Pkcs8Pbes2 {
        /// The key derivation, e.g. `PBKDF2-HMAC-SHA256 (2048 iterations)`.
        kdf: String,
        /// The cipher, e.g. `AES-256-CBC`.
        cipher: String,
    },
    /// OpenSSL's traditional form with `Proc-Type: 4,ENCRYPTED` and `DEK-Info`.
    Traditional {
        /// The `DEK-Info` cipher, e.g. `AES-256-CBC`.
        cipher: String,
    },
}

impl fmt::Display for KeyFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pkcs8Pbes2 { kdf, cipher } => write!(formatter, "PKCS#8 PBES2, {kdf}, {cipher}"),
            Self::Traditional { cipher } => {
                write!(
                    formatter,
                    "traditional OpenSSL PEM, MD5 key derivation, {cipher}"
                )
            }
        }
    }
}

/// A decrypted key with what was learnt about it.
pub(crate) struct DecryptedKey {
    pub(crate) secret: SecretKeyDer,
    pub(crate) algorithm: KeyAlgorithm,
    pub(crate) format: KeyFormat,
    /// SubjectPublicKeyInfo DER derived from the private key.
    pub(crate) public_key_info_der: Vec<u8>,
}

/// Decrypts a key file's contents with the passphrase.
pub(crate) fn decrypt_key_file(
    path: &Path,
    bytes: &[u8],
    passphrase: &[u8],
) -> Result<DecryptedKey, Error> {
    let blocks = parse_blocks(bytes).map_err(|reason| Error::InvalidPem {
        path: path.to_path_buf(),
        reason,
    })?;
    let mut key_blocks = blocks
        .into_iter()
        .filter(|block| block.label != "EC PARAMETERS" && block.label != "DH PARAMETERS");
    let block = key_blocks.next().ok_or_else(|| Error::InvalidPem {
        path: path.to_path_buf(),
        reason: "no private key block found".to_string(),
    })?;
    if key_blocks.next().is_some() {
        return Err(Error::InvalidPem {
            path: path.to_path_buf(),
            reason: "the file holds more than one key; keep only the client certificate's key"
                .to_string(),
        });
    }
    match block.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => decrypt_pkcs8(path, &block, passphrase),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => decrypt_traditional(path, &block, passphrase),
        "PRIVATE KEY" => Err(Error::UnencryptedKey {
            path: path.to_path_buf(),
        }),
        "DSA PRIVATE KEY" => Err(Error::UnsupportedKeyType {
            path: path.to_path_buf(),
            key_type: "DSA".to_string(),
        }),
        "CERTIFICATE" => Err(Error::InvalidPem {
            path: path.to_path_buf(),
            reason: "holds a CERTIFICATE, not a private key (are the two files swapped?)"
                .to_string(),
        }),
        other => Err(Error::InvalidPem {
            path: path.to_path_buf(),
            reason: format!("holds a \"{other}\" block, not an encrypted private key"),
        }),
    }
}

fn decrypt_pkcs8(path: &Path, block: &PemBlock, passphrase: &[u8]) -> Result<DecryptedKey, Error> {
    let encrypted = match EncryptedPrivateKeyInfoOwned::from_der(&block.der) {
        Ok(encrypted) => encrypted,
        Err(error) => return Err(unparseable_pkcs8(path, &block.der, error)),
    };
    let parameters = match &encrypted.encryption_algorithm {
        pkcs5::EncryptionScheme::Pbes2(parameters) => parameters,
        pkcs5::EncryptionScheme::Pbes1(algorithm) => {
            return Err(Error::UnsupportedKeyEncryption {
                path: path.to_path_buf(),
                scheme: format!("legacy PBES1 ({})", pbe_name(&algorithm.encryption.oid())),
            });
        }
        _ => {
            return Err(Error::UnsupportedKeyEncryption {
                path: path.to_path_buf(),
                scheme: "an unknown PKCS#5 scheme".to_string(),
            });
        }
    };
    let (kdf, cipher) = describe_pbes2(path, parameters)?;
    let plaintext = match parameters.decrypt(passphrase, encrypted.encrypted_data.as_bytes()) {
        Ok(plaintext) => Zeroizing::new(plaintext),
        Err(pkcs5::Error::DecryptFailed) => return Err(wrong_passphrase(path, passphrase)),
        Err(error) => {
            return Err(Error::UnsupportedKeyEncryption {
                path: path.to_path_buf(),
                scheme: format!("PBES2 with {kdf} and {cipher} ({error})"),
            });
        }
    };
    // About one wrong passphrase in 256 passes the padding check: a plaintext that is not a
    // PrivateKeyInfo is reported as a wrong passphrase too.
    let info =
        PrivateKeyInfoRef::from_der(&plaintext).map_err(|_| wrong_passphrase(path, passphrase))?;
    let format = KeyFormat::Pkcs8Pbes2 { kdf, cipher };
    let oid = info.algorithm.oid;
    if oid == OID_RSA_ENCRYPTION {
        rsa_from_pkcs1(path, info.private_key.as_bytes(), format)
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = info.algorithm.parameters_oid().ok();
        if curve != Some(OID_SECP384R1) {
            return Err(Error::UnsupportedKeyType {
                path: path.to_path_buf(),
                key_type: curve_name(curve),
            });
        }
        let secret =
            p384::SecretKey::from_sec1_der(info.private_key.as_bytes()).map_err(|error| {
                Error::InvalidKey {
                    path: path.to_path_buf(),
                    reason: format!("EC P-384 key does not decode: {error}"),
                }
            })?;
        p384_key(path, secret, format)
    } else {
        Err(Error::UnsupportedKeyType {
            path: path.to_path_buf(),
            key_type: key_type_name(&oid),
        })
    }
}

/// A PKCS#8 container that `pkcs8` cannot parse: name the scheme if it is a known legacy one.
fn unparseable_pkcs8(path: &Path, der: &[u8], error: der::Error) -> Error {
    #[derive(der::Sequence)]
    struct RawEncryptedPrivateKeyInfo {
        algorithm: AlgorithmIdentifierOwned,
        data: der::asn1::OctetString,
    }
    match RawEncryptedPrivateKeyInfo::from_der(der) {
        Ok(raw) => Error::UnsupportedKeyEncryption {
            path: path.to_path_buf(),
            scheme: pbe_name(&raw.algorithm.oid),
        },
        Err(_) => Error::InvalidPem {
            path: path.to_path_buf(),
            reason: format!("the ENCRYPTED PRIVATE KEY block does not decode: {error}"),
        },
    }
}

fn pbe_name(oid: &ObjectIdentifier) -> String {
    let text = oid.to_string();
    let name = match text.as_str() {
        "1.2.840.113549.1.12.1.1" => "PKCS#12 pbeWithSHAAnd128BitRC4",
        "1.2.840.113549.1.12.1.2" => "PKCS#12 pbeWithSHAAnd40BitRC4",
        "1.2.840.113549.1.12.1.3" => {
            "PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC (openssl -v1 PBE-SHA1-3DES)"
        }
        "1.2.840.113549.1.12.1.4" => "PKCS#12 pbeWithSHAAnd2-KeyTripleDES-CBC",
        "1.2.840.113549.1.12.1.5" => "PKCS#12 pbeWithSHAAnd128BitRC2-CBC",
        "1.2.840.113549.1.12.1.6" => "PKCS#12 pbeWithSHAAnd40BitRC2-CBC",
        "1.2.840.113549.1.5.1" => "PBES1 pbeWithMD2AndDES-CBC",
        "1.2.840.113549.1.5.3" => "PBES1 pbeWithMD5AndDES-CBC (openssl -v1 PBE-MD5-DES)",
        "1.2.840.113549.1.5.4" => "PBES1 pbeWithMD2AndRC2-CBC",
        "1.2.840.113549.1.5.6" => "PBES1 pbeWithMD5AndRC2-CBC",
        "1.2.840.113549.1.5.10" => "PBES1 pbeWithSHA1AndDES-CBC (openssl -v1 PBE-SHA1-DES)",
        "1.2.840.113549.1.5.11" => "PBES1 pbeWithSHA1AndRC2-CBC",
        "1.2.840.113549.1.5.13" => {
            "PBES2 with a cipher or key derivation this agent does not support (for example DES-CBC or RC2)"
        }
        _ => return format!("an unknown scheme (OID {text})"),
    };
    format!("{name}, OID {text}")
}

fn describe_pbes2(path: &Path, parameters: &pbes2::Parameters) -> Result<(String, String), Error> {
    let unsupported = |scheme: String| Error::UnsupportedKeyEncryption {
        path: path.to_path_buf(),
        scheme,
    };
    let cipher = match parameters.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { .. } => "AES-128-CBC",
        pbes2::EncryptionScheme::Aes192Cbc { .. } => "AES-192-CBC",
        pbes2::EncryptionScheme::Aes256Cbc { .. } => "AES-256-CBC",
        pbes2::EncryptionScheme::Aes128Gcm { .. } => "AES-128-GCM",
        pbes2::EncryptionScheme::Aes256Gcm { .. } => "AES-256-GCM",
        pbes2::EncryptionScheme::DesEde3Cbc { .. } => "DES-EDE3-CBC",
        _ => {
            return Err(unsupported(
                "PBES2 with a cipher this agent does not support".to_string(),
            ));
        }
    }
    .to_string();
    let kdf = match &parameters.kdf {
        pbes2::Kdf::Pbkdf2(pbkdf2) => {
            if pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS {
                return Err(unsupported(format!(
                    "PBKDF2 with iterations = {}, over the limit of {MAX_PBKDF2_ITERATIONS}; re-encrypt the key with fewer (openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000)",
                    pbkdf2.iteration_count
                )));
            }
            let prf = match pbkdf2.prf {
                pbes2::Pbkdf2Prf::HmacWithSha1 => "SHA1",
                pbes2::Pbkdf2Prf::HmacWithSha224 => "SHA224",
                pbes2::Pbkdf2Prf::HmacWithSha256 => "SHA256",
                pbes2::Pbkdf2Prf::HmacWithSha384 => "SHA384",
                pbes2::Pbkdf2Prf::HmacWithSha512 => "SHA512",
                _ => "an unknown PRF",
            };
            format!("PBKDF2-HMAC-{prf} ({} iterations)", pbkdf2.iteration_count)
        }
        pbes2::Kdf::Scrypt(scrypt) => {
            let memory = 128u128
                * u128::from(scrypt.block_size)
                * (u128::from(scrypt.cost_parameter) + u128::from(scrypt.parallelization));
            if memory > MAX_SCRYPT_MEMORY_BYTES {
                return Err(unsupported(format!(
                    "scrypt needing {} MiB of memory (N={}, r={}, p={}), over the limit of {} MiB; re-encrypt the key with OpenSSL's defaults (openssl pkcs8 -topk8 -scrypt)",
                    memory >> 20,
                    scrypt.cost_parameter,
                    scrypt.block_size,
                    scrypt.parallelization,
                    MAX_SCRYPT_MEMORY_BYTES >> 20
                )));
            }
            let work = u128::from(scrypt.cost_parameter)
                * u128::from(scrypt.block_size)
                * u128::from(scrypt.parallelization);
            if work > MAX_SCRYPT_WORK {
                return Err(unsupported(format!(
                    "scrypt with work N·r·p = {work} (N={}, r={}, p={}), over the limit of {MAX_SCRYPT_WORK}; re-encrypt the key with OpenSSL's defaults (openssl pkcs8 -topk8 -scrypt)",
                    scrypt.cost_parameter, scrypt.block_size, scrypt.parallelization
                )));
            }
            format!(
                "scrypt (N={}, r={}, p={})",
                scrypt.cost_parameter, scrypt.block_size, scrypt.parallelization
            )
        }
        _ => {
            return Err(unsupported(
                "PBES2 with an unknown key derivation".to_string(),
            ));
        }
    };
    Ok((kdf, cipher))
}

fn decrypt_traditional(
    path: &Path,
    block: &PemBlock,
    passphrase: &[u8],
) -> Result<DecryptedKey, Error> {
    let encrypted = block
        .header("Proc-Type")
        .is_some_and(|value| value.replace(' ', "").eq_ignore_ascii_case("4,ENCRYPTED"));
    if !encrypted {
        return Err(Error::UnencryptedKey {
            path: path.to_path_buf(),
        });
    }
    let dek_info = block.header("DEK-Info").ok_or_else(|| Error::InvalidPem {
        path: path.to_path_buf(),
        reason: "encrypted key without a DEK-Info header".to_string(),
    })?;
    let (cipher_name, iv_hex) = dek_info.split_once(',').ok_or_else(|| Error::InvalidPem {
        path: path.to_path_buf(),
        reason: format!("DEK-Info header \"{dek_info}\" lacks the IV"),
    })?;
    let cipher = DekCipher::from_name(cipher_name.trim()).ok_or_else(|| {
        Error::UnsupportedKeyEncryption {
            path: path.to_path_buf(),
            scheme: format!(
                "the traditional form with DEK-Info cipher {}",
                cipher_name.trim()
            ),
        }
    })?;
    let plaintext = match traditional::decrypt(cipher, iv_hex, passphrase, &block.der) {
        Ok(plaintext) => plaintext,
        Err(traditional::DecryptError::BadIv) => {
            return Err(Error::InvalidPem {
                path: path.to_path_buf(),
                reason: format!(
                    "DEK-Info IV \"{}\" is not valid hex of the right length",
                    iv_hex.trim()
                ),
            });
        }
        Err(traditional::DecryptError::BadPadding) => {
            return Err(wrong_passphrase(path, passphrase));
        }
    };
    let format = KeyFormat::Traditional {
        cipher: cipher.name().to_string(),
    };
    if block.label == "RSA PRIVATE KEY" {
        if pkcs1::RsaPrivateKeyRef::from_der(&plaintext).is_err() {
            return Err(wrong_passphrase(path, passphrase));
        }
        rsa_from_pkcs1(path, &plaintext, format)
    } else {
        let ec_key = sec1::EcPrivateKey::from_der(&plaintext)
            .map_err(|_| wrong_passphrase(path, passphrase))?;
        let curve = ec_key
            .parameters
            .as_ref()
            .and_then(|parameters| (*parameters).named_curve());
        if curve.is_some() && curve != Some(OID_SECP384R1) {
            return Err(Error::UnsupportedKeyType {
                path: path.to_path_buf(),
                key_type: curve_name(curve),
            });
        }
        let secret =
            p384::SecretKey::from_sec1_der(&plaintext).map_err(|error| Error::InvalidKey {
                path: path.to_path_buf(),
                reason: format!("EC P-384 key does not decode: {error}"),
            })?;
        p384_key(path, secret, format)
    }
}

fn rsa_from_pkcs1(path: &Path, pkcs1_der: &[u8], format: KeyFormat) -> Result<DecryptedKey, Error> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::traits::PublicKeyParts;

    let invalid = |reason: String| Error::InvalidKey {
        path: path.to_path_buf(),
        reason,
    };
    // Check the size on the raw structure first: the `rsa` crate refuses small moduli with a
    // less helpful error.
    let raw = pkcs1::RsaPrivateKeyRef::from_der(pkcs1_der)
        .map_err(|error| invalid(format!("RSA key does not decode: {error}")))?;
    let bits = modulus_bits(raw.modulus.as_bytes());
    if bits < 2048 {
        return Err(Error::KeyTooSmall {
            path: path.to_path_buf(),
            bits,
        });
    }
    let key = rsa::PrivateKey::from_pkcs1_der(pkcs1_der)
        .map_err(|error| invalid(format!("RSA key is inconsistent: {error}")))?;
    let public_key_info_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|error| invalid(format!("RSA public key does not encode: {error}")))?
        .into_vec();
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|error| invalid(format!("RSA key does not encode: {error}")))?;
    Ok(DecryptedKey {
        secret: SecretKeyDer(Zeroizing::new(pkcs8.as_bytes().to_vec())),
        algorithm: KeyAlgorithm::Rsa {
            bits: key.size() * 8,
        },
        format,
        public_key_info_der,
    })
}

fn p384_key(
    path: &Path,
    secret: p384::SecretKey,
    format: KeyFormat,
) -> Result<DecryptedKey, Error> {
    use p384::pkcs8::EncodePrivateKey;
    let invalid = |reason: String| Error::InvalidKey {
        path: path.to_path_buf(),
        reason,
    };
    let public_key_info_der = secret
        .public_key()
        .to_public_key_der()
        .map_err(|error| invalid(format!("EC public key does not encode: {error}")))?
        .into_vec();
    let pkcs8 = secret
        .to_pkcs8_der()
        .map_err(|error| invalid(format!("EC key does not encode: {error}")))?;
    Ok(DecryptedKey {
        secret: SecretKeyDer(Zeroizing::new(pkcs8.as_bytes().to_vec())),
        algorithm: KeyAlgorithm::EcP384,
        format,
        public_key_info_der,
    })
}

/// Parses an unencrypted PKCS#8 key (as stored by the keystore) and derives its public key.
pub(crate) fn inspect_pkcs8(path: &Path, secret: &SecretKeyDer) -> Result<DecryptedKey, Error> {
    let info =
        PrivateKeyInfoRef::from_der(secret.pkcs8_der()).map_err(|error| Error::InvalidKey {
            path: path.to_path_buf(),
            reason: format!("stored key is not PKCS#8: {error}"),
        })?;
    let format = KeyFormat::Pkcs8Pbes2 {
        kdf: "none (re-encrypted store)".to_string(),
        cipher: "none".to_string(),
    };
    if info.algorithm.oid == OID_RSA_ENCRYPTION {
        rsa_from_pkcs1(path, info.private_key.as_bytes(), format)
    } else if info.algorithm.oid == OID_EC_PUBLIC_KEY
        && info.algorithm.parameters_oid().ok() == Some(OID_SECP384R1)
    {
        let key = p384::SecretKey::from_sec1_der(info.private_key.as_bytes()).map_err(|error| {
            Error::InvalidKey {
                path: path.to_path_buf(),
                reason: format!("EC P-384 key does not decode: {error}"),
            }
        })?;
        p384_key(path, key, format)
    } else {
        Err(Error::UnsupportedKeyType {
            path: path.to_path_buf(),
            key_type: key_type_name(&info.algorithm.oid),
        })
    }
}

fn modulus_bits(big_endian: &[u8]) -> usize {
    let trimmed: &[u8] = {
        let start = big_endian
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(big_endian.len());
        &big_endian[start..]
    };
    match trimmed.first() {
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn wrong_passphrase(path: &Path, passphrase: &[u8]) -> Error {
    let hint = if passphrase
        .last()
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
    {
        "; note: the passphrase file ends with spaces or tabs, which count as part of the passphrase"
    } else if passphrase.ends_with(b"\n") || passphrase.ends_with(b"\r") {
        "; note: the passphrase file ends with more than one line break (only one is removed)"
    } else if passphrase
        .first()
        .is_some_and(|byte| byte.is_ascii_whitespace())
    {
        "; note: the passphrase file starts with whitespace, which counts as part of the passphrase"
    } else {
        ""
    };
    Error::WrongPassphrase {
        path: path.to_path_buf(),
        hint: hint.to_string(),
    }
}

fn curve_name(curve: Option<ObjectIdentifier>) -> String {
    match curve.map(|oid| oid.to_string()).as_deref() {
        Some("1.2.840.10045.3.1.7") => "EC P-256 (prime256v1)".to_string(),
        Some("1.3.132.0.35") => "EC P-521 (secp521r1)".to_string(),
        Some("1.3.132.0.10") => "EC secp256k1".to_string(),
        Some(other) => format!("EC on curve {other}"),
        None => "EC with explicit or missing curve parameters".to_string(),
    }
}

fn key_type_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.101.112" => "Ed25519".to_string(),
        "1.3.101.113" => "Ed448".to_string(),
        "1.2.840.10040.4.1" => "DSA".to_string(),
        _ if *oid == OID_RSASSA_PSS => "RSASSA-PSS (RSA restricted to PSS)".to_string(),
        other => format!("OID {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let secret = SecretKeyDer::from_pkcs8_der(Zeroizing::new(vec![0x30, 0x42, 0x13]));
        assert_eq!(format!("{secret:?}"), "SecretKeyDer(..)");
    }

    #[test]
    fn modulus_bits_ignores_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let secret = SecretKeyDer::from_pkcs8_der(Zeroizing::new(vec![7u8; 100]));
        let pem = secret.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));
    }
}

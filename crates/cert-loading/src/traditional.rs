//! OpenSSL's traditional encrypted PEM keys (`Proc-Type: 4,ENCRYPTED` + `DEK-Info`).
//!
//! No maintained pure-Rust crate decrypts this form (RustCrypto declined it), yet
//! `openssl genrsa -traditional -aes256`, `openssl ec -aes256` and OpenSSL 1.x tools write it.
//! This is the one place with hand-written crypto glue, kept small and tested against `openssl`
//! output: the key is OpenSSL's `EVP_BytesToKey` with MD5 and one iteration, salted with the first
//! 8 bytes of the IV; the body is CBC with PKCS#7 padding over PKCS#1 (RSA) or SEC1 (EC) DER.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

/// The ciphers of the `DEK-Info` header that this module decrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // The names are the ciphers' own.
pub(crate) enum DekCipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    DesEde3Cbc,
}

impl DekCipher {
    /// Parses the cipher name of a `DEK-Info` header.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "AES-128-CBC" => Some(Self::Aes128Cbc),
            "AES-192-CBC" => Some(Self::Aes192Cbc),
            "AES-256-CBC" => Some(Self::Aes256Cbc),
            "DES-EDE3-CBC" => Some(Self::DesEde3Cbc),
            _ => None,
        }
    }

    /// The OpenSSL name of the cipher.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "AES-128-CBC",
            Self::Aes192Cbc => "AES-192-CBC",
            Self::Aes256Cbc => "AES-256-CBC",
            Self::DesEde3Cbc => "DES-EDE3-CBC",
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc | Self::DesEde3Cbc => 24,
            Self::Aes256Cbc => 32,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Self::DesEde3Cbc => 8,
            _ => 16,
        }
    }
}

/// Why a traditional body could not be decrypted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecryptError {
    /// The IV in `DEK-Info` is not hex of the cipher's IV length.
    BadIv,
    /// Padding check failed: almost always a wrong passphrase.
    BadPadding,
}

/// Decrypts the body of a traditional encrypted key.
pub(crate) fn decrypt(
    cipher: DekCipher,
    iv_hex: &str,
    passphrase: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let iv = decode_hex(iv_hex).ok_or(DecryptError::BadIv)?;
    if iv.len() != cipher.iv_len() {
        return Err(DecryptError::BadIv);
    }
    let key = bytes_to_key(passphrase, &iv[..8], cipher.key_len());
    let result = match cipher {
        DekCipher::Aes128Cbc => cbc_decrypt::<aes::Aes128>(&key, &iv, ciphertext),
        DekCipher::Aes192Cbc => cbc_decrypt::<aes::Aes192>(&key, &iv, ciphertext),
        DekCipher::Aes256Cbc => cbc_decrypt::<aes::Aes256>(&key, &iv, ciphertext),
        DekCipher::DesEde3Cbc => cbc_decrypt::<des::TdesEde3>(&key, &iv, ciphertext),
    };
    result.ok_or(DecryptError::BadPadding)
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>>
where
    C: cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
    cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let length = decryptor.decrypt_padded::<Pkcs7>(&mut buffer).ok()?.len();
    buffer.truncate(length);
    Some(buffer)
}

/// OpenSSL `EVP_BytesToKey(cipher, md5, salt, pass, count = 1)`.
fn bytes_to_key(passphrase: &[u8], salt: &[u8], key_len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(key_len + 16));
    let mut previous: Option<Zeroizing<[u8; 16]>> = None;
    while key.len() < key_len {
        let mut hasher = Md5::new();
        if let Some(previous) = &previous {
            hasher.update(&previous[..]);
        }
        hasher.update(passphrase);
        hasher.update(salt);
        let block: [u8; 16] = hasher.finalize().into();
        key.extend_from_slice(&block);
        previous = Some(Zeroizing::new(block));
    }
    key.truncate(key_len);
    key
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    base16ct::mixed::decode_vec(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -P -md md5 -pass pass:test -S 0001020304050607`
        // prints key=B1A5F6D6C3BF2DEB8D1AC6F5A3E6E7C4... (first MD5 block = MD5("test" || salt)).
        let key = bytes_to_key(b"test", &[0, 1, 2, 3, 4, 5, 6, 7], 32);
        let first: [u8; 16] = Md5::new()
            .chain_update(b"test")
            .chain_update([0u8, 1, 2, 3, 4, 5, 6, 7])
            .finalize()
            .into();
        assert_eq!(&key[..16], &first);
        let second: [u8; 16] = Md5::new()
            .chain_update(first)
            .chain_update(b"test")
            .chain_update([0u8, 1, 2, 3, 4, 5, 6, 7])
            .finalize()
            .into();
        assert_eq!(&key[16..], &second);
    }

    #[test]
    fn bad_iv_is_reported() {
        assert_eq!(
            decrypt(DekCipher::Aes256Cbc, "00zz", b"x", &[0; 16]).unwrap_err(),
            DecryptError::BadIv
        );
        assert_eq!(
            decrypt(DekCipher::Aes256Cbc, "0011", b"x", &[0; 16]).unwrap_err(),
            DecryptError::BadIv
        );
    }

    #[test]
    fn cipher_names_round_trip() {
        for cipher in [
            DekCipher::Aes128Cbc,
            DekCipher::Aes192Cbc,
            DekCipher::Aes256Cbc,
            DekCipher::DesEde3Cbc,
        ] {
            assert_eq!(DekCipher::from_name(cipher.name()), Some(cipher));
        }
        assert_eq!(DekCipher::from_name("BF-CBC"), None);
    }
}

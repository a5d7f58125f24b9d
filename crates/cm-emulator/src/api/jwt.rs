//! The bearer tokens: real JWTs (RFC 7519), ES256-signed (ECDSA P-256, RFC 7518) with `ring`.
//!
//! Clients decode the payload to schedule their refresh, so the token carries the registered
//! claims `iss`, `sub`, `iat`, `nbf`, `exp`, `jti`, plus CM-style `account` and
//! `preferred_username` and, for agents, `client_id` (the names beyond the registered ones are
//! invented; see `docs/protocol.md`). The key pair is made at start: bearers, like the sessions
//! behind them, do not outlive the emulator process. Its public key is published
//! (`EmulatorDetails::jwt_public_key`) so that clients and tests can verify tokens.

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};

/// The `iss` claim.
pub(crate) const ISSUER: &str = "kylo";

/// The claims of an emulator JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    /// `local|admin` for the administrator, `client|<client id>` for an agent.
    pub(crate) sub: String,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    /// The session id: a random UUID.
    pub(crate) jti: String,
    /// The account the subject belongs to (`kylo:kylo:admin:accounts:kylo`).
    pub(crate) account: String,
    pub(crate) preferred_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
}

/// The signing key pair.
pub(crate) struct JwtKey {
    pair: EcdsaKeyPair,
    public: Vec<u8>,
    random: SystemRandom,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("JwtKey(..)")
    }
}

/// The fixed header of every token: `{"alg":"ES256","typ":"JWT"}`.
const HEADER: &str = r#"{"alg":"ES256","typ":"JWT"}"#;

/// Why a bearer was refused (the message of the 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtError {
    Malformed,
    BadSignature,
    Expired,
}

impl JwtError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            JwtError::Malformed => "invalid bearer token: not a JWT",
            JwtError::BadSignature => "invalid bearer token: bad signature",
            JwtError::Expired => "bearer token expired",
        }
    }
}

impl JwtKey {
    /// A fresh random key pair.
    ///
    /// # Panics
    /// When the operating system's random source fails, which a server cannot recover from.
    pub(crate) fn generate() -> Self {
        let random = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
            .expect("the operating system random source failed");
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .expect("a freshly generated P-256 key parses");
        let public = pair.public_key().as_ref().to_vec();
        JwtKey {
            pair,
            public,
            random,
        }
    }

    /// The public key: an uncompressed SEC1 point (`04 ‖ x ‖ y`, 65 bytes).
    pub(crate) fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// `header.payload.signature`, each part base64url without padding.
    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(HEADER.as_bytes()),
            Base64UrlUnpadded::encode_string(&payload)
        );
        // ECDSA signing fails only when the random source does.
        let signature = self
            .pair
            .sign(&self.random, signing_input.as_bytes())
            .map(|signature| signature.as_ref().to_vec())
            .unwrap_or_default();
        format!(
            "{signing_input}.{}",
            Base64UrlUnpadded::encode_string(&signature)
        )
    }

    /// The claims of a token signed by this key and not expired at `now` (Unix seconds).
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let signature =
            Base64UrlUnpadded::decode_vec(signature).map_err(|_| JwtError::Malformed)?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;
        let header = Base64UrlUnpadded::decode_vec(header).map_err(|_| JwtError::Malformed)?;
        if header != HEADER.as_bytes() {
            return Err(JwtError::Malformed);
        }
        let payload = Base64UrlUnpadded::decode_vec(payload).map_err(|_| JwtError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: ISSUER.to_owned(),
            sub: "local|admin".to_owned(),
            iat: 100,
            nbf: 100,
            exp,
            jti: "j1".to_owned(),
            account: "a".to_owned(),
            preferred_username: "admin".to_owned(),
            client_id: None,
        }
    }

    #[test]
    fn signs_and_verifies() {
        let key = JwtKey::generate();
        let token = key.sign(&claims(400));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(key.verify(&token, 399).unwrap(), claims(400));
        assert_eq!(key.verify(&token, 400), Err(JwtError::Expired));
        assert_eq!(
            JwtKey::generate().verify(&token, 0),
            Err(JwtError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'A');
        assert!(key.verify(&tampered, 0).is_err());
        assert_eq!(key.verify("abc", 0), Err(JwtError::Malformed));
        assert_eq!(key.verify("a.b.c.d", 0), Err(JwtError::Malformed));
    }
}

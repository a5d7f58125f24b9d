//! The bearer tokens: real JWTs (RFC 7519), ES256-signed (ECDSA P-256, RFC 7518), encoded and
//! verified by `jsonwebtoken`; the key pair is made by `ring`.
//!
//! Clients decode the payload to schedule their refresh, so the token carries the registered
//! claims `iss`, `sub`, `iat`, `nbf`, `exp`, `jti`, plus CM-style `account` and
//! `preferred_username` and, for agents, `client_id` (the names beyond the registered ones are
//! invented; see `docs/protocol.md`). The key pair is made at start: bearers, like the sessions
//! behind them, do not outlive the emulator process. Its public key is published
//! (`EmulatorDetails::jwt_public_key`) so that clients and tests can verify tokens. Expiry is
//! judged against the emulator's clock (a parameter), not by `jsonwebtoken`'s system clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
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
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("JwtKey(..)")
    }
}

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
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            // `jsonwebtoken` takes the public key as its uncompressed SEC1 point.
            decoding: DecodingKey::from_ec_der(&public),
            public,
        }
    }

    /// The public key: an uncompressed SEC1 point (`04 ‖ x ‖ y`, 65 bytes).
    pub(crate) fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// `header.payload.signature`, each part base64url without padding; the header is
    /// `{"typ":"JWT","alg":"ES256"}`.
    pub(crate) fn sign(&self, claims: &Claims) -> String {
        // Signing fails only when the random source does.
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims of a token signed by this key and not expired at `now` (Unix seconds).
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut validation = Validation::new(Algorithm::ES256);
        // Expiry against the emulator's clock, below; nothing else is required of the claims.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::BadSignature,
                _ => JwtError::Malformed,
            })?
            .claims;
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

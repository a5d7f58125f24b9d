//! Authentication: `POST /v1/auth/tokens` (password, refresh-token and client-credential
//! grants), bearer verification, and the retirement rule of a renewed client's previous
//! certificate.

use super::jwt::{Claims, ISSUER};
use super::wire::{LoginRequest, LoginResponse};
use super::*;
use crate::state::{CLIENTS, Client, RefreshToken, Session, Subject};
use crate::util::{random_token, uuid_v4};

impl Api {
    /// The session behind the request's bearer: a JWT signed by this emulator, not expired,
    /// whose session still exists (deleted clients and dropped sessions are refused).
    pub(super) fn subject(&self, state: &State, request: &ApiRequest) -> Result<Subject, ApiError> {
        self.subject_of(state, request.authorization.as_deref())
    }

    /// As [`Api::subject`], from the `Authorization` header's value.
    pub(super) fn subject_of(
        &self,
        state: &State,
        authorization: Option<&str>,
    ) -> Result<Subject, ApiError> {
        let header = authorization.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        let now = self.now_seconds();
        let claims = self
            .jwt_key
            .verify(token, now)
            .map_err(|error| ApiError::unauthorized(error.message()))?;
        match state.sessions.get(&claims.jti) {
            Some(session) if session.expires_at > now => Ok(session.subject.clone()),
            Some(_) => Err(ApiError::unauthorized("bearer token expired")),
            None => Err(ApiError::unauthorized(
                "bearer token revoked (its client was deleted, or the session was dropped)",
            )),
        }
    }

    /// A client session: (client index, fingerprint of the certificate used to log in).
    /// The client must still exist.
    pub(super) fn require_client(
        &self,
        state: &State,
        request: &ApiRequest,
    ) -> Result<(usize, String), ApiError> {
        match self.subject(state, request)? {
            Subject::Admin => Err(ApiError::forbidden(
                "this endpoint needs a client bearer (client_credential grant)",
            )),
            Subject::Client {
                client_id,
                certificate_fingerprint,
            } => {
                let index = state
                    .clients
                    .iter()
                    .position(|client| client.id == client_id)
                    .ok_or_else(|| ApiError::unauthorized("Invalid Client"))?;
                Ok((index, certificate_fingerprint))
            }
        }
    }

    /// As [`Api::require_client`], and the TLS client certificate of this request must be the
    /// one the bearer was issued for (a bearer is bound to its certificate).
    pub(super) fn require_bound_client(
        &self,
        state: &State,
        request: &ApiRequest,
    ) -> Result<usize, ApiError> {
        let (index, login_fingerprint) = self.require_client(state, request)?;
        let presented = request.tls_fingerprint()?;
        if !constant_time_eq(presented.as_bytes(), login_fingerprint.as_bytes()) {
            return Err(ApiError::unauthorized(
                "the bearer was issued for another TLS client certificate",
            ));
        }
        Ok(index)
    }

    /// The retirement rule for this client: the configured one, except that `at-expiry` falls
    /// back to `on-first-login` for a previous certificate whose `notAfter` was not recorded
    /// (renewed by an emulator version that did not store it).
    pub(super) fn retirement_for(&self, client: &Client) -> RetireOldCertificate {
        match self.retire_old_certificate {
            RetireOldCertificate::AtExpiry if client.previous_cert_not_after.is_none() => {
                RetireOldCertificate::OnFirstLogin
            }
            mode => mode,
        }
    }

    /// Whether the client's previous certificate may log in now (any fingerprint).
    pub(super) fn previous_certificate_usable(&self, client: &Client) -> bool {
        client.previous_cert_accepted
            && match self.retirement_for(client) {
                RetireOldCertificate::OnRenew => false,
                RetireOldCertificate::OnFirstLogin => true,
                RetireOldCertificate::AtExpiry => client
                    .previous_cert_not_after
                    .is_some_and(|not_after| self.now_seconds() <= not_after),
            }
    }

    /// Whether `fingerprint` is the client's previous certificate and may still log in.
    pub(super) fn previous_certificate_logs_in(&self, client: &Client, fingerprint: &str) -> bool {
        client.previous_cert_fingerprint.as_deref() == Some(fingerprint)
            && self.previous_certificate_usable(client)
    }

    /// A signed JWT for a new session (the oldest session is dropped beyond the cap).
    fn new_session(&self, state: &mut State, subject: Subject) -> String {
        let now = self.now_seconds();
        state.sessions.retain(|session| session.expires_at > now);
        let expires_at = now + TOKEN_DURATION_SECONDS;
        let (sub, preferred_username, client_id) = match &subject {
            Subject::Admin => ("local|admin".to_owned(), "admin".to_owned(), None),
            Subject::Client { client_id, .. } => (
                format!("client|{client_id}"),
                client_id.clone(),
                Some(client_id.clone()),
            ),
        };
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub,
            iat: now,
            nbf: now,
            exp: expires_at,
            jti: uuid_v4(),
            account: crate::state::ACCOUNT.to_owned(),
            preferred_username,
            client_id,
        };
        state.sessions.insert(
            claims.jti.clone(),
            Session {
                subject,
                expires_at,
            },
        );
        self.jwt_key.sign(&claims)
    }

    /// `POST /v1/auth/tokens/`: JSON (also encoded twice) or form-encoded.
    pub(super) fn login(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let form = request.content_type.as_deref() == Some("application/x-www-form-urlencoded")
            || (request.content_type.is_none()
                && request
                    .body
                    .iter()
                    .find(|byte| !byte.is_ascii_whitespace())
                    .is_some_and(|first| !matches!(first, b'{' | b'"' | b'[')));
        let looks_like_json = request
            .body
            .iter()
            .find(|byte| !byte.is_ascii_whitespace())
            .is_some_and(|first| *first == b'{');
        let body: LoginRequest = if form && looks_like_json {
            // `curl -d '{...}'` without `-H 'Content-Type: application/json'` sends this.
            return Err(ApiError::bad_request(
                "request body: this is JSON sent as application/x-www-form-urlencoded; send it with \
                 Content-Type: application/json (curl: -H 'Content-Type: application/json')",
            ));
        } else if form {
            LoginRequest::from_form(&request.body)?
        } else {
            wire::parse(&request.body)?
        };
        match body.grant_type.as_deref().unwrap_or("password") {
            "password" => self.password_grant(&body),
            "refresh_token" => self.refresh_grant(&body),
            "client_credential" => self.client_credential_grant(request, &body),
            other => {
                let shown: String = other.chars().take(40).collect();
                Err(ApiError::bad_request(format!(
                    "field `grant_type`: unsupported grant type {shown:?} (expected \"password\", \"refresh_token\" or \"client_credential\")"
                )))
            }
        }
    }

    /// The password policy's lockout for the admin: refused while locked out (whatever the
    /// password); a failure counts and may lock the account for the policy's next duration; a
    /// success starts the count again. With no thresholds (CM's default) nothing is ever locked.
    fn admin_login_attempt(&self, password_matches: bool) -> Result<(), ApiError> {
        let now = self.now_seconds();
        let mut state = self.lock();
        if let Some(until) = state.admin_lockout.until.filter(|until| *until > now) {
            return Err(ApiError::unauthorized(format!(
                "user \"admin\" is locked out after failed logins until {} (the password \
                 policy's failed_logins_lockout_thresholds)",
                crate::util::rfc3339(until)
            )));
        }
        if password_matches {
            state.admin_lockout = crate::state::Lockout::default();
            return Ok(());
        }
        let failures = state.admin_lockout.failures.saturating_add(1);
        let thresholds = &state.password_policy.failed_logins_lockout_thresholds;
        let minutes = usize::try_from(failures - 1)
            .ok()
            .and_then(|index| thresholds.get(index).or(thresholds.last()))
            .copied()
            .unwrap_or(0);
        state.admin_lockout.failures = failures;
        state.admin_lockout.until = (minutes > 0).then(|| {
            now.saturating_add(i64::try_from(minutes.saturating_mul(60)).unwrap_or(i64::MAX))
        });
        Ok(())
    }

    fn password_policy_json(state: &State) -> Value {
        let policy = &state.password_policy;
        serde_json::json!({
            "policy_name": "global",
            "failed_logins_lockout_thresholds": policy.failed_logins_lockout_thresholds,
            "updatedAt": policy.updated_at.map(crate::util::rfc3339_micros),
        })
    }

    /// `GET /v1/usermgmt/pwdpolicies/global`.
    pub(super) fn get_password_policy(
        &self,
        _admin: Admin,
        name: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        the_only("password policy", name, "global")?;
        respond(200, Self::password_policy_json(&state))
    }

    /// `PATCH /v1/usermgmt/pwdpolicies/global` (Terraform's `ciphertrust_password_policy`):
    /// `failed_logins_lockout_thresholds` is kept and applied; the other fields of the policy
    /// are accepted and ignored.
    pub(super) fn patch_password_policy(
        &self,
        _admin: Admin,
        request: &ApiRequest,
        name: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        the_only("password policy", name, "global")?;
        let body: wire::PatchPasswordPolicy = wire::parse(&request.body)?;
        if let Some(thresholds) = body.failed_logins_lockout_thresholds {
            state.password_policy.failed_logins_lockout_thresholds = thresholds;
        }
        state.password_policy.updated_at = Some(self.now_seconds());
        state.save_password_policy().map_err(ApiError::storage)?;
        respond(200, Self::password_policy_json(&state))
    }

    fn password_grant(&self, body: &LoginRequest) -> Result<ApiResponse, ApiError> {
        let username = body
            .username
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing field `username`"))?;
        let password = body
            .password
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing field `password`"))?;
        let password_matches =
            constant_time_eq(password.as_bytes(), self.admin_password.as_bytes());
        if username == "admin" {
            self.admin_login_attempt(password_matches)?;
        }
        if username != "admin" || !password_matches {
            return Err(ApiError::unauthorized("Invalid username or password"));
        }
        // One domain, `root` (empty means the default); one connection, `local_account`.
        for (field, value, allowed) in [
            ("domain", &body.domain, ["", "root"]),
            ("auth_domain", &body.auth_domain, ["", "root"]),
            ("connection", &body.connection, ["", "local_account"]),
        ] {
            if let Some(value) = value.as_deref().filter(|value| !allowed.contains(value)) {
                return Err(ApiError::unauthorized(format!(
                    "field `{field}`: {value:?} does not exist on this manager (it has only {:?})",
                    allowed[1]
                )));
            }
        }
        let mut state = self.lock();
        let jwt = self.new_session(&mut state, Subject::Admin);
        let now = self.now_seconds();
        let refresh = RefreshToken {
            id: uuid_v4(),
            subject: Subject::Admin,
            expires_at: body
                .refresh_token_lifetime
                .filter(|minutes| *minutes > 0)
                .and_then(|minutes| i64::try_from(minutes.saturating_mul(60)).ok())
                .map(|seconds| now.saturating_add(seconds)),
        };
        let refresh_token = random_token();
        let refresh_token_id = refresh.id.clone();
        state.refresh_tokens.insert(refresh_token.clone(), refresh);
        respond_with(
            200,
            &LoginResponse {
                jwt,
                duration: TOKEN_DURATION_SECONDS,
                token_type: "Bearer",
                client_id: self.auth_client_id.clone(),
                refresh_token: Some(refresh_token),
                refresh_token_id: Some(refresh_token_id),
            },
        )
    }

    fn refresh_grant(&self, body: &LoginRequest) -> Result<ApiResponse, ApiError> {
        let presented = body
            .refresh_token
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing field `refresh_token`"))?;
        let mut state = self.lock();
        let now = self.now_seconds();
        let entry = state
            .refresh_tokens
            .get(presented)
            .filter(|entry| entry.expires_at.is_none_or(|expires_at| now < expires_at))
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("Invalid refresh token"))?;
        let jwt = self.new_session(&mut state, entry.subject.clone());
        let (refresh_token, refresh_token_id) = if body.renew_refresh_token == Some(true) {
            state.refresh_tokens.remove(presented);
            let renewed = RefreshToken {
                id: uuid_v4(),
                ..entry
            };
            let token = random_token();
            let id = renewed.id.clone();
            state.refresh_tokens.insert(token.clone(), renewed);
            (token, id)
        } else {
            (presented.to_owned(), entry.id)
        };
        respond_with(
            200,
            &LoginResponse {
                jwt,
                duration: TOKEN_DURATION_SECONDS,
                token_type: "Bearer",
                client_id: self.auth_client_id.clone(),
                refresh_token: Some(refresh_token),
                refresh_token_id: Some(refresh_token_id),
            },
        )
    }

    fn client_credential_grant(
        &self,
        request: &ApiRequest,
        body: &LoginRequest,
    ) -> Result<ApiResponse, ApiError> {
        let client_id = body
            .client_id
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing field `client_id`"))?;
        let fingerprint = request.tls_fingerprint()?;
        let mut state = self.lock();
        let client = state
            .clients
            .iter_mut()
            .find(|client| client.id == client_id)
            .ok_or_else(|| ApiError::unauthorized("Invalid Client"))?;
        if client.cert_fingerprint == fingerprint {
            // The new certificate has logged in: the previous one is retired, unless it lives
            // on until its own expiry (`at-expiry`, not yet expired).
            let keep_previous = self.retirement_for(client) == RetireOldCertificate::AtExpiry
                && self.previous_certificate_usable(client);
            if client.previous_cert_accepted && !keep_previous {
                client.previous_cert_accepted = false;
                let client = client.clone();
                state
                    .store
                    .put(CLIENTS, &client.id, &client)
                    .map_err(ApiError::storage)?;
            }
        } else if !self.previous_certificate_logs_in(client, &fingerprint) {
            return Err(ApiError::unauthorized(
                "Invalid Client: the TLS client certificate is not this client's certificate",
            ));
        }
        let subject = Subject::Client {
            client_id: client_id.to_owned(),
            certificate_fingerprint: fingerprint,
        };
        let jwt = self.new_session(&mut state, subject);
        respond_with(
            200,
            &LoginResponse {
                jwt,
                duration: TOKEN_DURATION_SECONDS,
                token_type: "Bearer",
                client_id: client_id.to_owned(),
                refresh_token: None,
                refresh_token_id: None,
            },
        )
    }
}

//! End-user authentication (DESIGN.md §10): `Authorization: Bearer <JWT>`.
//!
//! A token's `sub` is the user id; `roles` containing `admin` may act for any user
//! and `service` marks service-to-service callers (print-service calling the
//! management API's `/lookup`). Keys: HS256 with `AUTH_JWT_SECRET`, or RS256/ES256
//! with the PEM in `AUTH_JWT_PUBLIC_KEY`; `exp` is required, `iss`/`aud` checked when
//! configured, 30 s of clock leeway. Nothing is ever open by accident: with no key a
//! service refuses to start unless `AUTH_DISABLED=true` says so explicitly.

use std::future::{ready, Ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ApiError;

const LEEWAY_SECS: u64 = 30;

/// Authentication settings, shared by every service that has end-user routes.
#[derive(Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// HS256 secret for end-user and service tokens.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    pub auth_jwt_secret: Option<String>,
    /// PEM public key (RSA or EC) for RS256/ES256 tokens, instead of a secret.
    #[arg(long, env = "AUTH_JWT_PUBLIC_KEY", hide_env_values = true)]
    pub auth_jwt_public_key: Option<String>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "AUTH_JWT_ISSUER")]
    pub auth_jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "AUTH_JWT_AUDIENCE")]
    pub auth_jwt_audience: Option<String>,
    /// Serve without authentication (development only; logged as a warning).
    #[arg(long, env = "AUTH_DISABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub auth_disabled: bool,
}

impl AuthArgs {
    /// Explicitly no authentication.
    pub fn disabled() -> Self {
        Self {
            auth_disabled: true,
            ..Self::default()
        }
    }

    /// HS256 tokens signed with `secret`.
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            auth_jwt_secret: Some(secret.into()),
            ..Self::default()
        }
    }
}

/// The claims pixpress reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Authentication settings a service refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("AUTH_JWT_PUBLIC_KEY is not an RSA or EC public key in PEM")]
    BadPublicKey,
    #[error("set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, not both")]
    BothKeys,
    #[error(
        "no authentication configured: set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY \
         (or AUTH_DISABLED=true for development)"
    )]
    NotConfigured,
}

/// Checks bearer tokens (or, explicitly disabled, lets everyone through).
pub struct Authenticator {
    verifier: Option<(DecodingKey, Validation)>,
}

impl Authenticator {
    /// Fails (naming the variables) when nothing is configured and auth is not
    /// explicitly disabled, or when a key does not parse.
    pub fn from_args(args: &AuthArgs) -> Result<Self, AuthConfigError> {
        let (key, algorithms) = match (&args.auth_jwt_secret, &args.auth_jwt_public_key) {
            (Some(secret), None) if !secret.is_empty() => (
                DecodingKey::from_secret(secret.as_bytes()),
                vec![Algorithm::HS256],
            ),
            (None, Some(pem)) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                    (key, vec![Algorithm::RS256])
                } else {
                    let key = DecodingKey::from_ec_pem(pem.as_bytes())
                        .map_err(|_| AuthConfigError::BadPublicKey)?;
                    (key, vec![Algorithm::ES256])
                }
            }
            (Some(_), Some(_)) => return Err(AuthConfigError::BothKeys),
            _ if args.auth_disabled => {
                log::warn!("AUTH_DISABLED=true: end-user routes accept requests without a token");
                return Ok(Self { verifier: None });
            }
            _ => return Err(AuthConfigError::NotConfigured),
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = LEEWAY_SECS;
        // A configured issuer or audience must also be present in the token.
        let mut required = vec!["exp", "sub"];
        required.extend(args.auth_jwt_issuer.as_ref().map(|_| "iss"));
        required.extend(args.auth_jwt_audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &args.auth_jwt_issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &args.auth_jwt_audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            verifier: Some((key, validation)),
        })
    }

    /// The caller behind an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let Some((key, validation)) = &self.verifier else {
            return Ok(Caller::unrestricted());
        };
        let unauthorized = |detail: &str| {
            ApiError::new("unauthorized", StatusCode::UNAUTHORIZED, detail.to_owned())
                .bearer_challenge()
        };
        let header = authorization.ok_or_else(|| unauthorized("a bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            // The reason helps operators; the token itself is never logged.
            log::info!("refused a bearer token: {e}");
            unauthorized("the bearer token is invalid or expired")
        })?;
        Ok(Caller {
            user_id: data.claims.sub.parse().ok().filter(|id: &i64| *id > 0),
            subject: data.claims.sub,
            roles: data.claims.roles,
            unrestricted: false,
        })
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user, when `sub` is a positive integer.
    pub user_id: Option<i64>,
    pub subject: String,
    pub roles: Vec<String>,
    /// Authentication is disabled: everyone may do everything.
    unrestricted: bool,
}

impl Caller {
    fn unrestricted() -> Self {
        Self {
            user_id: None,
            subject: "anonymous".into(),
            roles: Vec::new(),
            unrestricted: true,
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.unrestricted || self.roles.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    /// May this caller act on `user_id`'s behalf (themselves, or an admin)?
    pub fn may_act_for(&self, user_id: i64) -> bool {
        self.is_admin() || self.user_id == Some(user_id)
    }

    /// The user whose data a non-admin caller is limited to (`None`: any user).
    pub fn restricted_to(&self) -> Option<i64> {
        if self.is_admin() {
            None
        } else {
            // A token without a numeric subject sees nobody's data.
            Some(self.user_id.unwrap_or(0))
        }
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(auth) = req.app_data::<web::Data<Authenticator>>() else {
            log::error!("a route asks for a Caller but no Authenticator is registered");
            return ready(Err(ApiError::internal().into()));
        };
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        ready(auth.authenticate(header).map_err(Into::into))
    }
}

/// Signs an HS256 token for `subject` with `roles`, valid for `ttl` (tests, the
/// local stack and the `pixpress-token` command).
pub fn mint(secret: &str, subject: &str, roles: &[&str], ttl: Duration) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|now| (now + ttl).as_secs())
        .unwrap_or(0);
    sign(
        secret,
        &Claims {
            sub: subject.to_owned(),
            exp,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            iss: None,
            aud: None,
        },
    )
}

/// Signs `claims` with HS256.
pub fn sign(secret: &str, claims: &Claims) -> String {
    // Encoding a struct of strings with an HMAC key cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret";

    fn auth() -> Authenticator {
        Authenticator::from_args(&AuthArgs::with_secret(SECRET)).unwrap()
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_valid_token_names_the_user_and_roles() {
        let token = mint(SECRET, "42", &["admin"], Duration::from_secs(60));
        let caller = auth().authenticate(Some(&bearer(&token))).unwrap();
        assert_eq!(caller.user_id, Some(42));
        assert!(caller.is_admin() && caller.may_act_for(7));
    }

    #[test]
    fn a_user_acts_only_for_themselves() {
        let token = mint(SECRET, "7", &[], Duration::from_secs(60));
        let caller = auth().authenticate(Some(&bearer(&token))).unwrap();
        assert!(caller.may_act_for(7));
        assert!(!caller.may_act_for(8));
        assert_eq!(caller.restricted_to(), Some(7));
    }

    #[test]
    fn missing_malformed_expired_and_foreign_tokens_are_401_with_a_challenge() {
        let expired = {
            let claims = Claims {
                sub: "1".into(),
                exp: 1_000,
                roles: vec![],
                iss: None,
                aud: None,
            };
            jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        };
        let foreign = mint("another-secret", "1", &[], Duration::from_secs(60));
        for header in [
            None,
            Some("Basic abc".to_owned()),
            Some(bearer("not.a.jwt")),
            Some(bearer(&expired)),
            Some(bearer(&foreign)),
        ] {
            let err = auth().authenticate(header.as_deref()).unwrap_err();
            assert_eq!(err.problem().status, 401, "{header:?}");
        }
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut args = AuthArgs::with_secret(SECRET);
        args.auth_jwt_issuer = Some("pixpress".into());
        let auth = Authenticator::from_args(&args).unwrap();
        let token = mint(SECRET, "1", &[], Duration::from_secs(60));
        assert!(
            auth.authenticate(Some(&bearer(&token))).is_err(),
            "no iss claim"
        );
    }

    #[test]
    fn nothing_configured_refuses_to_start_unless_disabled_explicitly() {
        let err = Authenticator::from_args(&AuthArgs::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("AUTH_JWT_SECRET"));
        let open = Authenticator::from_args(&AuthArgs::disabled()).unwrap();
        assert!(open.authenticate(None).unwrap().may_act_for(99));
    }
}

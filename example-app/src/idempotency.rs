//! `Idempotency-Key` on the requests that log a meal (`POST /meals`, `POST /meals/upload`): a
//! client that lost the answer to such a request (a dropped connection, a replica killed, a
//! load balancer reloading) sends it again with the same key and gets the meal the first one
//! logged, with `Idempotent-Replayed: true`, instead of a second meal.
//!
//! The key is stored on the meal row it created, in the same `INSERT`, under a unique index on
//! (user, key): a replica killed after the commit cannot lose it, and two copies of one
//! request racing on two replicas cannot both insert (the second hits the index and replays the
//! first). A key reused with a different request is refused (422 `idempotency_key_reused`), as
//! the IETF draft on the header asks: the request is fingerprinted (SHA-256 of its fields as
//! sent) and the fingerprint stored beside the key.
//!
//! A key lives as long as its meal: once the meal is deleted the key is free again. `DELETE`
//! needs no key (a second one answers 404), nor does `PATCH /users/me`, which sets values
//! rather than changing them by a delta, so sending it twice leaves what sending it once does.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The response header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 64;

/// The request's `Idempotency-Key`, when it sent one: 1 to 64 characters from `A-Z a-z 0-9`
/// and `- _ . :` (a UUID fits), optionally in double quotes (the draft's structured-field
/// string). Anything else is a 422 `validation_failed`.
///
/// ```
/// use calories_app::idempotency::IdempotencyKey;
///
/// let key = IdempotencyKey::parse("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").unwrap();
/// assert_eq!(key.as_str(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
/// assert!(IdempotencyKey::parse("").is_err());
/// assert!(IdempotencyKey::parse("a key with spaces").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value.
    ///
    /// # Errors
    /// 422 `validation_failed` naming what is wrong.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let raw = raw.trim();
        let key = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(allowed) {
            return Err(ApiError::validation(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters from A-Z, a-z, 0-9 and \
                 - _ . : (a UUID fits)"
            )));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The extractor: `Option<IdempotencyKey>` in a handler's arguments.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Err(ApiError::validation(
                "the Idempotency-Key header is missing",
            ));
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::validation("Idempotency-Key must be ASCII"))?;
        Self::parse(value)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        if parts.headers.contains_key(HEADER) {
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A request's key and the fingerprint of what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    /// The client's key.
    pub key: IdempotencyKey,
    /// SHA-256 (hex) of the request's fields.
    pub fingerprint: String,
}

impl Idempotent {
    /// `key` with the fingerprint of `fields`: each field as the client sent it, in a fixed
    /// order (a defaulted field as its absence, so that a retry is not told apart by a default
    /// such as "now").
    ///
    /// ```
    /// use calories_app::idempotency::{IdempotencyKey, Idempotent};
    ///
    /// let key = IdempotencyKey::parse("k1").unwrap();
    /// let a = Idempotent::new(key.clone(), &[Some("Oats"), Some("350"), None]);
    /// let b = Idempotent::new(key.clone(), &[Some("Oats"), Some("350"), None]);
    /// let c = Idempotent::new(key, &[Some("Oats"), Some("351"), None]);
    /// assert_eq!(a, b);
    /// assert_ne!(a.fingerprint, c.fingerprint);
    /// ```
    #[must_use]
    pub fn new<S: AsRef<str>>(key: IdempotencyKey, fields: &[Option<S>]) -> Self {
        let mut hash = Sha256::new();
        for field in fields {
            // A length prefix per field: ("ab", "c") and ("a", "bc") differ; absent is 'n'.
            match field {
                Some(value) => {
                    let value = value.as_ref();
                    hash.update(b"s");
                    hash.update((value.len() as u64).to_le_bytes());
                    hash.update(value.as_bytes());
                }
                None => hash.update(b"n"),
            }
        }
        Self {
            key,
            fingerprint: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The answer to a key that was already used: its meal when `stored` (the fingerprint kept
    /// with it) is this request's, else 422 `idempotency_key_reused`.
    ///
    /// # Errors
    /// 422 `idempotency_key_reused` when the key came with a different request.
    pub fn check_replay(&self, stored: Option<&str>) -> Result<(), ApiError> {
        if stored == Some(self.fingerprint.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request: use a new key for a \
                 new request",
            ))
        }
    }
}

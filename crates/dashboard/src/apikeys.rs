//! API keys: how machine clients (a payment switch, an ETL job, a case system) authenticate to
//! `/api/v1/…`, separately from auditors' logins.
//!
//! A key reads `aegis_<prefix>_<secret>`. The prefix (12 hex digits) is public: it finds the
//! row and names the key in lists. The secret (64 hex digits, 256 random bits) is printed once
//! when the key is created; the database keeps only its SHA-256 (a fast hash is right for a
//! random secret of this length: there is nothing to guess), compared in constant time. Keys are
//! created and revoked from the command line only, and both are written to the audit log.

use std::fmt;

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::audit;
use crate::error::{AppError, AppResult};
use crate::session::{constant_time_eq, random_token, sha256_hex};
use crate::state::AppState;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// `POST /api/v1/payments` (with decisions).
    Ingest,
    /// `GET /api/v1/alerts`, `GET /api/v1/control…`.
    Read,
    /// `POST /api/v1/verdicts`, `POST /api/v1/control/draws`.
    Verdicts,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Verdicts];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Verdicts => "verdicts",
        }
    }

    fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const KEY_PREFIX: &str = "aegis_";
const PREFIX_HEX: usize = 12;
const SECRET_HEX: usize = 64;

/// A live key that authenticated a request.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub key_id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The disabled user its verdicts are recorded for (`api:<name>`).
    pub user_id: i64,
}

impl ApiClient {
    /// Refuses (403) a request this key's scopes do not cover.
    pub fn require(&self, scope: Scope) -> AppResult<()> {
        if self.scopes.contains(&scope) {
            return Ok(());
        }
        Err(AppError::Forbidden(format!(
            "this API key may not {}: its scopes are {}; create a key with --scope {scope}",
            match scope {
                Scope::Ingest => "send payments",
                Scope::Read => "read alerts",
                Scope::Verdicts => "record verdicts",
            },
            join_scopes(&self.scopes)
        )))
    }

    /// The name verdicts and audit entries made with this key carry.
    pub fn actor(&self) -> String {
        format!("api:{}", self.name)
    }
}

fn join_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|scope| scope.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_scopes(text: &str) -> Vec<Scope> {
    text.split(',').filter_map(Scope::parse).collect()
}

/// Checks a key name: what `apikey add` accepts.
pub fn validate_name(name: &str) -> AppResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(AppError::BadRequest(format!(
            "key name {name:?}: use 1 to 32 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Creates a key and returns its text, which is shown once and never stored.
pub fn create(sql: &mut dyn Sql, name: &str, scopes: &[Scope], now: i64) -> AppResult<String> {
    validate_name(name)?;
    if scopes.is_empty() {
        return Err(AppError::BadRequest(
            "a key needs at least one --scope (ingest, read, verdicts)".into(),
        ));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort_by_key(|scope| Scope::ALL.iter().position(|s| s == scope));
    scopes.dedup();
    let taken = sql
        .query_int(
            "SELECT count(*) FROM api_keys WHERE name = ?1 AND revoked_at IS NULL",
            values![name],
        )?
        .unwrap_or(0)
        > 0;
    if taken {
        return Err(AppError::BadRequest(format!(
            "a live key is already named {name:?}: revoke it first (`dashboard apikey revoke {name}`) or pick another name"
        )));
    }
    let user_id = crate::users::system_user(sql, &format!("api:{name}"), now)?;
    let prefix = random_token()[..PREFIX_HEX].to_string();
    let secret = random_token();
    debug_assert_eq!(secret.len(), SECRET_HEX);
    sql.execute(
        "INSERT INTO api_keys (name, prefix, secret_hash, scopes, user_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        values![name, prefix.as_str(), sha256_hex(&secret), join_scopes(&scopes), user_id, now],
    )?;
    audit::record(
        sql,
        now,
        Some("cli"),
        "apikey_created",
        &format!("{name} ({prefix}), scopes {}", join_scopes(&scopes)),
    )?;
    Ok(format!("{KEY_PREFIX}{prefix}_{secret}"))
}

/// Revokes the live key named `name`; its next request gets 401.
pub fn revoke(sql: &mut dyn Sql, name: &str, now: i64) -> AppResult<()> {
    let prefix: Option<String> = sql.value(
        "UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL RETURNING prefix",
        values![name, now],
    )?;
    let Some(prefix) = prefix else {
        return Err(AppError::BadRequest(format!(
            "no live key is named {name:?}: `dashboard apikey list` shows them"
        )));
    };
    audit::record(
        sql,
        now,
        Some("cli"),
        "apikey_revoked",
        &format!("{name} ({prefix})"),
    )?;
    Ok(())
}

/// One key as `apikey list` shows it.
#[derive(Debug, Clone)]
pub struct KeySummary {
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub uses: i64,
    pub last_used_at: Option<i64>,
}

/// Every key, live ones first, newest first.
pub fn list(sql: &mut dyn Sql) -> AppResult<Vec<KeySummary>> {
    Ok(sql.rows(
        "SELECT name, prefix, scopes, created_at, revoked_at, uses, last_used_at FROM api_keys \
         ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, created_at DESC",
        &[],
        |row| {
            Ok(KeySummary {
                name: row.at(0)?,
                prefix: row.at(1)?,
                scopes: row.at(2)?,
                created_at: row.at(3)?,
                revoked_at: row.at(4)?,
                uses: row.at(5)?,
                last_used_at: row.at(6)?,
            })
        },
    )?)
}

/// The live key `text` names, if its secret matches.
pub fn authenticate(sql: &mut dyn Sql, text: &str) -> AppResult<Option<ApiClient>> {
    let Some((prefix, secret)) = text
        .strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    if prefix.len() != PREFIX_HEX || secret.len() != SECRET_HEX {
        return Ok(None);
    }
    let row: Option<(i64, String, String, String, i64)> = sql.row(
        "SELECT key_id, name, secret_hash, scopes, user_id FROM api_keys \
         WHERE prefix = ?1 AND revoked_at IS NULL",
        values![prefix],
        |row| Ok((row.at(0)?, row.at(1)?, row.at(2)?, row.at(3)?, row.at(4)?)),
    )?;
    let Some((key_id, name, secret_hash, scopes, user_id)) = row else {
        return Ok(None);
    };
    if !constant_time_eq(&sha256_hex(secret), &secret_hash) {
        return Ok(None);
    }
    Ok(Some(ApiClient {
        key_id,
        name,
        scopes: parse_scopes(&scopes),
        user_id,
    }))
}

/// Counts one use of a key; called inside the request's own write where it has one.
pub fn count_use(sql: &mut dyn Sql, key_id: i64, now: i64) -> AppResult<()> {
    sql.execute(
        "UPDATE api_keys SET uses = uses + 1, last_used_at = ?2 WHERE key_id = ?1",
        values![key_id, now],
    )?;
    Ok(())
}

/// The refusal of a request without a valid key: 401, a challenge, and no detail.
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "error": "unauthorized" })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            // The scheme's name is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
            .and_then(|value| value.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_string());
        let Some(token) = token else {
            return Err(Unauthorized.into_response());
        };
        match state.read(move |conn| authenticate(conn, &token)).await {
            Ok(Some(client)) => Ok(client),
            Ok(None) => Err(Unauthorized.into_response()),
            Err(error) => Err(crate::error::ApiError(error).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::Database;

    #[test]
    fn a_key_works_until_it_is_revoked_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("keys.db").into()).unwrap();
        let key = db
            .write(|sql| create(sql, "switch", &[Scope::Ingest, Scope::Read], 1))
            .unwrap();
        let works = |key: &str| db.read(|sql| authenticate(sql, key)).unwrap();
        let client = works(&key).expect("the key works");
        assert_eq!(client.scopes, [Scope::Ingest, Scope::Read]);
        assert!(client.require(Scope::Verdicts).is_err());
        let secret = key.rsplit('_').next().unwrap();
        let stored = db
            .read(|sql| {
                Ok(sql.query_int(
                    "SELECT count(*) FROM api_keys WHERE secret_hash = ?1 OR secret_hash = ?2",
                    values![secret, key.as_str()],
                )?)
            })
            .unwrap();
        assert_eq!(stored, Some(0), "the secret itself is never stored");
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push(if key.ends_with('0') { '1' } else { '0' });
        assert!(works(&wrong).is_none());
        assert!(
            db.write(|sql| create(sql, "switch", &[Scope::Read], 2))
                .is_err()
        );
        db.write(|sql| revoke(sql, "switch", 3)).unwrap();
        assert!(works(&key).is_none());
        let again = db
            .write(|sql| create(sql, "switch", &[Scope::Read], 4))
            .unwrap();
        assert!(works(&again).is_some());
        let actions: Vec<String> = db
            .read(|sql| Ok(sql.column("SELECT action FROM audit_log ORDER BY audit_id", &[])?))
            .unwrap();
        assert_eq!(
            actions,
            ["apikey_created", "apikey_revoked", "apikey_created"]
        );
    }
}

//! API tokens and roles. A token is `wg_` + 64 hex digits; only its SHA-256 is stored. Requests
//! carry it as `Authorization: Bearer …` (or `api_key=…`, as Open311 clients do); none means public.

use super::AppState;
use super::error::ApiError;
use crate::incident::Case;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Roles, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Planner,
    Dispatcher,
    GridWorker,
    Viewer,
    Public,
}

impl Role {
    pub const NAMES: &'static [&'static str] =
        &["admin", "planner", "dispatcher", "grid_worker", "viewer"];
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Planner => "planner",
            Role::Dispatcher => "dispatcher",
            Role::GridWorker => "grid_worker",
            Role::Viewer => "viewer",
            Role::Public => "public",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "planner" => Ok(Role::Planner),
            "dispatcher" => Ok(Role::Dispatcher),
            "grid_worker" => Ok(Role::GridWorker),
            "viewer" => Ok(Role::Viewer),
            o => Err(format!(
                "unknown role {o:?}: expected admin, planner, dispatcher, grid_worker or viewer"
            )),
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    pub role: Role,
    /// A community, street or grid code that limits what the token reaches.
    pub scope: Option<String>,
    /// For the audit log.
    pub who: String,
}

impl Principal {
    /// What this caller may see of the layers (the schema's redaction).
    #[must_use]
    pub fn access(&self) -> crate::model::schema::Access {
        crate::model::schema::Access {
            households: self.sees_households(),
            incidents: self.reads_incidents(),
            personal: self.sees_reporters(),
        }
    }
    /// What this caller may see wherever a place is: a token scoped to a street, community or
    /// grid sees household counts only inside its scope, so for filters, sorting, tiles and
    /// every feature outside the scope it sees none.
    #[must_use]
    pub fn access_everywhere(&self) -> crate::model::schema::Access {
        let mut a = self.access();
        if self.scope.is_some() {
            a.households = false;
        }
        a
    }
    /// What this caller may see of one feature, from its properties (`code`, `grid`,
    /// `community`, `street` name where it is).
    #[must_use]
    pub fn access_to(
        &self,
        props: &serde_json::Map<String, serde_json::Value>,
    ) -> crate::model::schema::Access {
        match &self.scope {
            None => self.access(),
            Some(s) => {
                let inside = ["code", "grid", "community", "street"]
                    .iter()
                    .any(|k| props.get(*k).and_then(serde_json::Value::as_str) == Some(s));
                if inside {
                    self.access()
                } else {
                    self.access_everywhere()
                }
            }
        }
    }
    /// Household counts and weights.
    #[must_use]
    pub fn sees_households(&self) -> bool {
        self.role != Role::Public
    }
    /// Incidents at all.
    #[must_use]
    pub fn reads_incidents(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Dispatcher | Role::GridWorker)
    }
    /// Reporters' contact details.
    #[must_use]
    pub fn sees_reporters(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Dispatcher)
    }
    /// Aggregates (statistics).
    #[must_use]
    pub fn reads_stats(&self) -> bool {
        self.role != Role::Public
    }
    /// Plans: read.
    #[must_use]
    pub fn reads_plans(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Planner | Role::Viewer)
    }
    /// Plans: make and publish.
    #[must_use]
    pub fn plans(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Planner)
    }
    /// A case lies within the token's scope.
    #[must_use]
    pub fn covers(&self, c: &Case) -> bool {
        match &self.scope {
            None => true,
            Some(s) => [&c.grid, &c.community, &c.street]
                .iter()
                .any(|x| x.as_deref() == Some(s.as_str())),
        }
    }
    /// 401 for the public, 403 for a token without the right.
    pub fn require(&self, ok: bool, what: &str) -> Result<(), ApiError> {
        if ok {
            Ok(())
        } else if self.role == Role::Public {
            Err(ApiError::unauthorized(format!(
                "{what} needs a token (Authorization: Bearer …)"
            )))
        } else {
            Err(ApiError::forbidden(format!(
                "{what} is not allowed for the {} role",
                self.role.name()
            )))
        }
    }
}

/// SHA-256 hex of a token secret.
#[must_use]
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token secret.
#[must_use]
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "wg_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn token_of(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION)
        && let Ok(v) = h.to_str()
    {
        // the scheme is case-insensitive (RFC 9110 §11.1): Bearer, bearer, BEARER
        let v = v.trim();
        let t = match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest,
            _ => v,
        };
        return Some(t.trim().to_string());
    }
    parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "api_key")
            .map(|(_, v)| v.to_string())
    })
}

/// The principal a token secret names; none (or empty) is the public.
///
/// # Errors
/// 401 for an unknown or revoked token.
pub(super) async fn principal_for(
    state: &AppState,
    secret: Option<&str>,
) -> Result<Principal, ApiError> {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Ok(Principal {
            role: Role::Public,
            scope: None,
            who: "public".into(),
        });
    };
    let h = hash(secret);
    let t = match state.store.token_by_hash(&h).await? {
        Some(t) if t.revoked_at.is_none() => t,
        found => {
            let why = match &found {
                Some(t) => format!("revoked token {}", t.id),
                None => "unknown token".to_string(),
            };
            failed(state, &h, &why).await?;
            return Err(ApiError::unauthorized(if found.is_some() {
                "the token has been revoked"
            } else {
                "unknown token"
            }));
        }
    };
    let role: Role = t.role.parse().map_err(ApiError::internal)?;
    Ok(Principal {
        role,
        scope: t.scope,
        who: format!("token:{}:{}", t.id, t.label),
    })
}

/// A failed authentication: counted against the client's limit and written to the audit log
/// with the client's address and a prefix of the presented secret's hash (never the secret).
/// Over the limit, the client is told to wait (429) and nothing more is written, so failures
/// cannot flood the log; valid tokens from the same address are not affected.
async fn failed(state: &AppState, hash: &str, why: &str) -> Result<(), ApiError> {
    let client = crate::store::context::client().unwrap_or_else(|| "unknown".into());
    state
        .limits
        .failed_auth
        .take(&client)
        .map_err(|w| ApiError::too_many("failed authentications", w))?;
    let target = format!("token sha256:{}", hash.get(..12).unwrap_or(hash));
    if let Err(e) = state
        .store
        .audit("anonymous", "auth_failed", &target, why)
        .await
    {
        tracing::warn!("auditing a failed authentication: {e}");
    }
    Ok(())
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        principal_for(state, token_of(parts).as_deref()).await
    }
}

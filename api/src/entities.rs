//! The entity API (docs/ENTITIES.md): CRUD, keyset cursors, filters on indexed
//! fields, all-or-nothing transactions, per-entity policies. Every committed write is
//! published to the change hub after the store answers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use pylon_shard::Auth;
use pylon_storage::entity::{EntityError, Guard, limits};
use pylon_storage::visible::{self, ReadError};
use pylon_storage::{ChangeKind, Row, WriteOp};
use pylon_sync::Feeds;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::extract::JsonBody;
use crate::policies::{self, Caller, Policies};

/// The entity side of the server (store, policies, change feeds), or 503.
pub(crate) fn entities(state: &AppState) -> Result<&Arc<Feeds>, ApiError> {
    state.entities.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EntitiesUnavailable,
            "this server runs without an entity store",
        )
    })
}

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::Entity(e) => ApiError::from(e),
        e @ ReadError::TooBroad => {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::QueryTooBroad, e.to_string())
                .with_hint("filter on an indexed field the read policy names, or page with /cursor")
        }
        // `ReadError` is non-exhaustive: a reason added later is a server fault until mapped.
        e => ApiError::internal(&e),
    }
}

/// The write check of one operation: the caller's policy on the row before and after.
fn guard(policies: &Arc<Policies>, entity: &str, kind: ChangeKind, caller: Option<&Auth>) -> Guard {
    let (policies, entity, caller) =
        (Arc::clone(policies), entity.to_owned(), policies::caller(caller));
    Arc::new(move |before: Option<&Row>, after: Option<&Row>| {
        policies.check_write(&entity, kind, &caller, before, after)
    })
}

/// Query parameters: `limit`, `offset`, `after`, `token`; anything else is a filter.
struct ListQuery {
    limit: u32,
    offset: u64,
    after: Option<String>,
    token: Option<String>,
    filters: Vec<(String, String)>,
}

fn list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: limits::DEFAULT_PAGE,
        offset: 0,
        after: None,
        token: None,
        filters: Vec::new(),
    };
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*key {
            "limit" => {
                let max = u64::from(limits::MAX_PAGE);
                let limit = crate::query::clamped_limit("limit", Some(&value), 0, max)?;
                q.limit = u32::try_from(limit).unwrap_or(limits::MAX_PAGE);
            }
            "offset" => q.offset = crate::query::whole_number("offset", &value)?,
            "after" => q.after = Some(value.into_owned()),
            "token" => q.token = Some(value.into_owned()),
            _ => q.filters.push((key.into_owned(), value.into_owned())),
        }
    }
    Ok(q)
}

/// A read request: the store, the parsed query and the caller as policies see it.
async fn read_request<'s>(
    state: &'s AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Result<(&'s Arc<Feeds>, ListQuery, Caller), ApiError> {
    let ents = entities(state)?;
    let q = list_query(raw)?;
    let caller = auth::http_caller(state, headers, q.token.as_deref()).await?;
    Ok((ents, q, policies::caller(caller.as_ref())))
}

/// `GET /api/entities/:entity?limit=&offset=&<field>=<value>`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (ents, q, caller) = read_request(&state, raw.as_deref(), &headers).await?;
    let page = visible::list(
        ents.store(),
        ents.policies(),
        &entity,
        &caller,
        q.filters,
        q.limit,
        q.offset,
    )
    .await
    .map_err(read_error)?;
    Ok(Json(
        json!({ "data": page.rows, "count": page.count, "offset": q.offset, "limit": q.limit }),
    ))
}

/// `GET /api/entities/:entity/cursor?after=<id>&limit=N`.
pub(crate) async fn cursor(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (ents, q, caller) = read_request(&state, raw.as_deref(), &headers).await?;
    let page = visible::cursor(
        ents.store(),
        ents.policies(),
        &entity,
        &caller,
        q.after,
        q.filters,
        q.limit,
    )
    .await
    .map_err(read_error)?;
    Ok(Json(
        json!({ "data": page.rows, "next_cursor": page.next_cursor, "has_more": page.has_more }),
    ))
}

/// `GET /api/entities/:entity/:id`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Row>, ApiError> {
    let ents = entities(&state)?;
    let caller = auth::http_caller(&state, &headers, None).await?;
    let row = ents.store().get(&entity, &id).await.map_err(ApiError::from)?;
    if !ents.policies().can_read(&entity, &policies::caller(caller.as_ref()), &row) {
        // A row the caller may not read answers like a missing one: ids cannot be probed.
        return Err(EntityError::NotFound { entity, id }.into());
    }
    Ok(Json(row))
}

fn object(body: Value) -> Result<Row, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid_json("expected a JSON object of fields")),
    }
}

async fn write_one(
    state: &AppState,
    headers: &HeaderMap,
    kind: ChangeKind,
    entity: String,
    id: Option<String>,
    data: Row,
) -> Result<String, ApiError> {
    let ents = entities(state)?;
    let caller = auth::http_caller(state, headers, None).await?;
    let op = WriteOp {
        kind,
        guard: Some(guard(ents.policies(), &entity, kind, caller.as_ref())),
        entity,
        id,
        data,
    };
    let result = ents.store().write(vec![op]).await.map_err(|e| ApiError::from(e.error))?;
    let id = result.ids.first().cloned().unwrap_or_default();
    ents.publish(result.changes);
    Ok(id)
}

/// `POST /api/entities/:entity` -> 201 `{"id"}`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let data = object(body)?;
    let id = write_one(&state, &headers, ChangeKind::Insert, entity, None, data).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

/// `PATCH /api/entities/:entity/:id` -> `{"updated":true}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let data = object(body)?;
    write_one(&state, &headers, ChangeKind::Update, entity, Some(id), data).await?;
    Ok(Json(json!({ "updated": true })))
}

/// `DELETE /api/entities/:entity/:id` -> `{"deleted":true}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    write_one(&state, &headers, ChangeKind::Delete, entity, Some(id), Row::new()).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// One operation of `POST /api/transact`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactOp {
    op: String,
    entity: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    data: Option<Row>,
}

/// `POST /api/transact`: an array of operations, all or nothing.
pub(crate) async fn transact(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(ops): JsonBody<Vec<TransactOp>>,
) -> Result<Json<Value>, ApiError> {
    let ents = entities(&state)?;
    let caller = auth::http_caller(&state, &headers, None).await?;
    if ops.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "a transaction needs at least one operation",
        ));
    }
    let mut batch = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let Some(kind) = ChangeKind::parse(&op.op) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("operation {i}: op must be insert, update or delete"),
            )
            .with_detail("operation", json!(i)));
        };
        batch.push(WriteOp {
            kind,
            guard: Some(guard(ents.policies(), &op.entity, kind, caller.as_ref())),
            entity: op.entity,
            id: op.id,
            data: op.data.unwrap_or_default(),
        });
    }
    let result = ents.store().write(batch).await.map_err(ApiError::from)?;
    let ids = result.ids.clone();
    ents.publish(result.changes);
    Ok(Json(json!({ "committed": true, "ids": ids })))
}

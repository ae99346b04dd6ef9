//! Operations endpoints: `GET /health`, `GET /readyz`, `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::metrics::{self, Sources};

/// `GET /health`: `{"status":"ok","version":…,"uptime_seconds":N}`.
pub(crate) async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": state.version,
        "uptime_seconds": state.started.elapsed().as_secs(),
    }))
}

/// `GET /readyz`: 200 when storage, the tick threads and the cluster bus are up, 503
/// naming the failing parts otherwise (`storage`, `tick_threads`, `cluster_bus`). A
/// server that is shutting down is not ready. The bus's state is read from flags its
/// tasks keep: this never waits on the bus.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "shutting_down"})))
            .into_response();
    }
    let storage_ok = state.sessions.ping().await.is_ok();
    let storage_ok = storage_ok
        && match &state.entities {
            Some(ents) => ents.store().ping().await.is_ok(),
            None => true,
        };
    let pool_ok = !state.matches.pool().metrics().is_empty();
    let bus_ok = crate::cluster::ready(&state.bus);
    let mut failing = Vec::new();
    if !storage_ok {
        failing.push("storage");
    }
    if !pool_ok {
        failing.push("tick_threads");
    }
    if !bus_ok {
        failing.push("cluster_bus");
    }
    let checks = json!({
        "storage": if storage_ok { "ok" } else { "failing" },
        "tick_threads": if pool_ok { "ok" } else { "failing" },
        "cluster_bus": if bus_ok { "ok" } else { "failing" },
    });
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready", "checks": checks}))).into_response()
    } else {
        let body = json!({
            "status": "not_ready",
            "failing": failing,
            "checks": checks,
            "error": {"code": crate::error::ErrorCode::NotReady, "message": format!("failing: {}", failing.join(", "))},
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let threads = state.matches.pool().metrics();
    let by_game = state.matches.running_by_game();
    let subscribers = state
        .matches
        .list()
        .iter()
        .filter(|m| m.handle.status().is_running())
        .map(|m| u64::from(m.handle.status().subscribers()))
        .sum();
    let mut body = metrics::render(
        &state.metrics,
        &Sources {
            threads: &threads,
            matches_by_game: &by_game,
            subscribers,
            uptime_secs: state.started.elapsed().as_secs(),
        },
    );
    crate::cluster::render(&mut body, &state);
    if let Some(mm) = &state.matchmaking {
        mm.render_metrics(&mut body);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

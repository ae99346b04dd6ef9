//! `GET /api/regions`: every configured region, `[{"region","url","ws_url"}]`, for
//! clients that probe latencies and pick one (docs/REGIONS.md).
//!
//! `url` is the region's base URL from `PYLON_REGIONS`; `ws_url` its shard socket base
//! URL (`PYLON_REGION_WS_URLS`, else the URL with `ws`/`wss` and `/shard`). This
//! process's own region is always listed: when `PYLON_REGIONS` does not name it, with
//! URLs made from the request's `Host` (and `X-Forwarded-Proto`), the address the client
//! just reached. Entries naming a single process (`eu_2`) are not listed.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use crate::AppState;
use crate::config::ws_url_of;

/// One region as listed.
#[derive(Debug, Serialize)]
pub(crate) struct RegionInfo {
    region: String,
    url: String,
    ws_url: String,
}

/// `GET /api/regions` (no auth: the URLs are public).
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Json<Vec<RegionInfo>> {
    let regions = &state.config.regions;
    let mut listed: Vec<RegionInfo> = regions
        .listed()
        .into_iter()
        .map(|(region, url, ws_url)| RegionInfo { region, url, ws_url })
        .collect();
    let local = &regions.local;
    if !listed.iter().any(|r| &r.region == local)
        && let Some(url) = request_url(&headers)
    {
        let ws_url = regions.ws_url(local).unwrap_or_else(|| ws_url_of(&url));
        listed.insert(0, RegionInfo { region: local.clone(), url, ws_url });
    }
    Json(listed)
}

/// The base URL a request reached (`Host`, `X-Forwarded-Proto`), if it names a host.
fn request_url(headers: &HeaderMap) -> Option<String> {
    let host = headers.get("host").and_then(|h| h.to_str().ok())?;
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    Some(format!("{}://{host}", if https { "https" } else { "http" }))
}

/// The shard socket base URL of `region` as `GET /api/regions` lists it: configured
/// (`PYLON_REGION_WS_URLS`, or derived from `PYLON_REGIONS`), else, for this process's
/// own region, derived from the URL the request reached (`headers`: its `Host` and
/// `X-Forwarded-Proto`, which name the main port).
pub(crate) fn socket_url(
    regions: &crate::Regions,
    region: &str,
    headers: Option<&HeaderMap>,
) -> Option<String> {
    if let Some(url) = regions.ws_url(region) {
        return Some(url);
    }
    (region == regions.local).then(|| request_url(headers?)).flatten().map(|u| ws_url_of(&u))
}

/// Every route that names a match (`/api/shards/<id>` and everything under it: info,
/// input, connect, stop, replay, and whatever is added there later) answers a match of
/// another region or process with 307 to its owner, path and query kept (a 307 keeps the
/// method and body, so an input is re-sent as it was). Ids with this process's prefix,
/// or with no known prefix, go on to their handler. Shard sockets are refused with 4421
/// instead (`subscription::prepare`): a browser cannot read a redirect on an upgrade.
/// Matchmaker tickets (`/api/matchmaker/tickets/<id>…`) are routed the same way by the
/// region their id starts with: a ticket lives in its region's queue.
pub(crate) async fn match_owner(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::{IntoResponse, Redirect};
    let path = req.uri().path();
    let regions = &state.config.regions;
    let first = |rest: &str| rest.split('/').next().unwrap_or(rest).to_owned();
    let owner = match path.strip_prefix("/api/shards/") {
        Some(rest) => regions.elsewhere(&first(rest)),
        None => path
            .strip_prefix("/api/matchmaker/tickets/")
            .map(first)
            .and_then(|id| pylon_sync::matchmaker::TicketId::from(id).region().map(str::to_owned))
            .filter(|region| *region != regions.local)
            .and_then(|region| regions.urls.iter().find(|(n, _)| *n == region))
            .map(|(_, url)| url.as_str()),
    };
    match owner {
        Some(base) => {
            let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
            let to = format!("{}{path}{query}", base.trim_end_matches('/'));
            Redirect::temporary(&to).into_response()
        }
        None => next.run(req).await,
    }
}

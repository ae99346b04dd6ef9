//! The pages the server serves itself, on the main port: the playable demo (`GET /demo`),
//! the ops dashboard (`GET /dashboard`), their scripts, styles and license notices
//! (`GET /static/<file>`), and in dev mode only the start page (`GET /`) that links them,
//! the ops endpoints and the docs.
//!
//! The files are built from the TypeScript under `web/` (esbuild: `web/build.mjs`,
//! `web/README.md`) into `api/web/`, which is committed and embedded here at compile time,
//! inside this crate so that it packages with it: building the server needs no Node, and
//! CI checks that `api/web/` is exactly the build of `web/`. They are served byte for byte
//! as built (nothing from the server is ever inserted) and hold no secret: the demo signs
//! in as a guest; the dashboard asks for the admin token and keeps it in the tab's
//! sessionStorage.
//!
//! Caching: pages are `no-cache` with an `ETag` (a browser revalidates and gets 304). Pages
//! name their assets `/static/<file>?v=<hash>` (FNV-1a 64 of the file, written by the
//! build); a request whose `v` is the file's hash is `immutable` for a year (a rebuilt file
//! has another hash, hence another URL), any other is `no-cache` with an `ETag`. Every
//! answer carries `X-Content-Type-Options: nosniff`; pages also carry a
//! Content-Security-Policy (scripts and styles from this origin only, no framing) and
//! `Referrer-Policy: no-referrer`.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! embedded {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../web/", $name)),
        }
    };
}

/// Every file of `api/web/` (the test `every_built_file_is_embedded` keeps the two equal).
static ASSETS: [Asset; 10] = [
    embedded!("index.html", HTML),
    embedded!("demo.html", HTML),
    embedded!("dashboard.html", HTML),
    embedded!("base.css", CSS),
    embedded!("index.css", CSS),
    embedded!("demo.css", CSS),
    embedded!("demo.js", JS),
    embedded!("dashboard.css", CSS),
    embedded!("dashboard.js", JS),
    embedded!("THIRD-PARTY-NOTICES.txt", TEXT),
];

/// The hash of each file of [`ASSETS`], in order: 16 hex digits, the `v` of its URL and
/// its `ETag`.
static HASHES: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| format!("{:016x}", fnv1a64(a.body))).collect());

/// FNV-1a, 64 bits (the build script computes the same).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The demo connects to the shard socket port (another origin: `ws:`), may fall back to
/// SSE on a region's URL and probes regions' `/health` (`http:`, `https:`).
const CSP_DEMO: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss: http: https:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";
/// The dashboard holds the admin token: it may talk to its own origin only.
const CSP_DASHBOARD: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";
/// The start page has no script at all.
const CSP_INDEX: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of this module, merged into the main router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/demo", get(demo))
        .route("/demo/", get(demo))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/", get(dashboard))
        .route("/static/{file}", get(file))
}

/// `GET /`: the start page in dev mode; outside dev mode the route does not exist.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    index_response(state.config.dev_mode, &headers)
}

fn index_response(dev_mode: bool, headers: &HeaderMap) -> Response {
    if !dev_mode {
        return ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
            .into_response();
    }
    page("index.html", CSP_INDEX, headers)
}

/// `GET /demo`.
async fn demo(headers: HeaderMap) -> Response {
    page("demo.html", CSP_DEMO, &headers)
}

/// `GET /dashboard`.
async fn dashboard(headers: HeaderMap) -> Response {
    page("dashboard.html", CSP_DASHBOARD, &headers)
}

/// `GET /static/<file>`: scripts, styles and the notices (not the pages: they are served
/// only with their headers, at their own paths).
async fn file(Path(name): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    static_response(&name, query.as_deref(), &headers)
}

fn static_response(name: &str, query: Option<&str>, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name && a.content_type != HTML) else {
        return ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such file")
            .into_response();
    };
    let hash = HASHES.get(index).map_or("", String::as_str);
    let versioned = query
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "v" && v == hash));
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "no-cache" };
    respond(index, cache, None, headers)
}

fn page(name: &str, csp: &'static str, headers: &HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(index) => respond(index, "no-cache", Some(csp), headers),
        None => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "page missing")
                .into_response()
        }
    }
}

/// The file `index` of [`ASSETS`] (or 304 when the request's `If-None-Match` names it).
fn respond(
    index: usize,
    cache: &'static str,
    csp: Option<&'static str>,
    req: &HeaderMap,
) -> Response {
    let (Some(asset), Some(hash)) = (ASSETS.get(index), HASHES.get(index)) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "file missing",
        )
        .into_response();
    };
    let etag = format!("\"{hash}\"");
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| etag_matches(list, &etag));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = response.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(csp) = csp {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, `*` matches anything).
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    /// The same function as the build script's (known FNV-1a 64 values).
    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Every `/static/<file>?v=<hash>` a page names is embedded, with that hash: a page
    /// never points at a file the binary lacks or at a stale version of one.
    #[test]
    fn pages_name_embedded_files_with_their_hashes() {
        let mut seen = 0;
        for page in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let text = std::str::from_utf8(page.body).unwrap();
            for part in text.split("/static/").skip(1) {
                let url: String = part.chars().take_while(|c| *c != '"').collect();
                let (name, v) = url.split_once("?v=").unwrap_or((&url, ""));
                let index = ASSETS.iter().position(|a| a.name == name);
                assert!(
                    index.is_some(),
                    "{} names /static/{name}, which is not embedded",
                    page.name
                );
                if !v.is_empty() {
                    assert_eq!(v, HASHES[index.unwrap()], "{} names a stale {name}", page.name);
                    seen += 1;
                }
            }
        }
        assert!(seen >= 8, "only {seen} versioned references found");
    }

    /// Versioned asset URLs are immutable, others revalidate; types and nosniff are set;
    /// the body is the file as built.
    #[tokio::test]
    async fn assets_are_cached_by_version() {
        let i = ASSETS.iter().position(|a| a.name == "demo.js").unwrap();
        let v = format!("v={}", HASHES[i]);
        let r = static_response("demo.js", Some(&v), &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, header::CONTENT_TYPE), JS);
        assert_eq!(header(&r, header::CACHE_CONTROL), "public, max-age=31536000, immutable");
        assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(body(r).await, ASSETS[i].body);

        let r = static_response("demo.js", Some("v=0000000000000000"), &HeaderMap::new());
        assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
        let r = static_response("demo.js", None, &HeaderMap::new());
        assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header(&static_response("base.css", None, &HeaderMap::new()), header::CONTENT_TYPE),
            CSS
        );
    }

    /// A matching `If-None-Match` gets 304 without a body; another gets the file.
    #[tokio::test]
    async fn etags_revalidate() {
        let r = page("demo.html", CSP_DEMO, &HeaderMap::new());
        let etag = header(&r, header::ETAG).to_owned();
        assert!(etag.len() == 18 && etag.starts_with('"'), "{etag}");
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{etag}")).unwrap(),
        );
        let r = page("demo.html", CSP_DEMO, &h);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&r, header::ETAG), etag);
        assert!(body(r).await.is_empty());
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(page("demo.html", CSP_DEMO, &h).status(), StatusCode::OK);
    }

    /// Pages carry their policy and are never served from `/static/`; unknown files 404.
    #[tokio::test]
    async fn pages_have_their_headers() {
        let r = page("dashboard.html", CSP_DASHBOARD, &HeaderMap::new());
        assert_eq!(header(&r, header::CONTENT_TYPE), HTML);
        assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
        assert!(header(&r, header::CONTENT_SECURITY_POLICY).contains("connect-src 'self';"));
        assert_eq!(header(&r, header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(header(&r, header::REFERRER_POLICY), "no-referrer");
        assert_eq!(
            static_response("demo.html", None, &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            static_response("../Cargo.toml", None, &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
        let text =
            String::from_utf8(body(page("demo.html", CSP_DEMO, &HeaderMap::new())).await).unwrap();
        assert!(text.contains("<canvas id=\"arena\""));
    }

    /// The list above names every file the build wrote, and no other.
    #[test]
    fn every_built_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut built: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        built.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(built, embedded);
    }

    /// `GET /` exists in dev mode only.
    #[test]
    fn the_start_page_is_for_dev_mode() {
        assert_eq!(index_response(true, &HeaderMap::new()).status(), StatusCode::OK);
        assert_eq!(index_response(false, &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}

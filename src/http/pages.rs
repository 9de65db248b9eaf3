//! The pages and their assets, embedded in the binary at build time so one binary is the
//! whole product: `cargo run` serves them, with no front-end build step and no files to
//! deploy beside the binary.
//!
//! Assets live under `/assets/{version}/{file}`, where `version` is a hash of every embedded
//! asset: a new build gets new URLs, so a browser (or a CDN in front of a launch with millions
//! of viewers) may keep an asset for a year, while the pages themselves are revalidated on
//! every load (a cheap 304 thanks to their ETag). ES modules import each other by relative
//! path, so only the pages need the version written into them.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::cors;
use crate::campaign::is_campaign_id;
use crate::error::ApiError;

/// One embedded file under `web/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        asset!($name, $type, $name)
    };
    ($name:literal, $type:expr, $path:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file a page may load. Pages themselves are not listed: they are served at their
/// own routes with the version written in.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("common.js", JS),
    asset!("i18n.js", JS),
    asset!("chart.js", JS),
    asset!("landing.js", JS),
    asset!("viewer.js", JS),
    asset!("ops.js", JS),
    asset!("ops-channels.js", JS),
    asset!("ops-milestones.js", JS),
    // The SDK, an npm package of its own under web/sdk/: our pages import it from here.
    asset!("livetally.js", JS, "sdk/livetally.js"),
    asset!("strings.js", JS, "sdk/strings.js"),
    asset!("livetally-widget.js", JS, "embed/livetally-widget.js"),
    asset!("ops-signups.js", JS),
    asset!("ops-webhooks.js", JS),
    asset!("ops-orgs.js", JS),
    asset!("signup-form.js", JS),
];

/// The SDK under its stable URL, for pages on any origin (`/sdk/v1/livetally.js`).
const SDK: &str = "livetally.js";
/// The viewer strings the SDK package carries (`/sdk/v1/strings.js`), which the widget imports.
const STRINGS: &str = "strings.js";
/// The `<livetally-widget>` module under its stable URL (`/embed/v1.js`), which imports the
/// SDK relative to itself (`../sdk/v1/livetally.js`), so both come from one node.
const WIDGET: &str = "livetally-widget.js";

const LANDING: &str = include_str!("../../web/index.html");
const VIEWER: &str = include_str!("../../web/viewer.html");
const OPS: &str = include_str!("../../web/ops.html");

/// Where the pages say `/assets/{{v}}/...`.
const VERSION_MARK: &str = "{{v}}";

/// Versioned assets never change under their URL.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Pages and unversioned asset URLs: keep, but ask the node each time (ETag makes it a 304).
const CACHE_REVALIDATE: &str = "no-cache";
/// The SDK's and the widget's stable URLs, loaded by brands' pages at a launch's peak: five
/// minutes lets browsers and CDNs absorb a million reloads, yet a deploy reaches every page
/// within five minutes; then the ETag makes revalidation a 304. `v1` in the URLs is the
/// compatibility promise: a build only serves modules there that keep their API.
const CACHE_MODULE: &str = "public, max-age=300";

/// The viewer page embeds the campaign's stream (any http(s) video or player) and talks to
/// its own origin only. `ws:`/`wss:` are named because older Safari does not let `'self'`
/// cover WebSockets.
const CSP_VIEWER: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src http: https: blob:; frame-src http: https:; connect-src 'self' ws: wss:; object-src 'none'; \
    base-uri 'none'; form-action 'self'";
/// The dashboard and the landing page embed nothing and must not be framed (clickjacking an
/// "End campaign" button).
const CSP_STRICT: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// FNV-1a over the names and bytes of every asset: stable across runs and nodes of one
/// build, which is what a versioned URL behind a load balancer needs.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for a in ASSETS {
        h = fnv1a(h, a.name.as_bytes());
        h = fnv1a(h, &[0]);
        h = fnv1a(h, a.body);
    }
    for page in [LANDING, VIEWER, OPS] {
        h = fnv1a(h, page.as_bytes());
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
});

/// A page with the asset version written in, and its ETag.
struct Page {
    body: String,
    etag: String,
    csp: &'static str,
}

fn page(name: &str, source: &str, csp: &'static str) -> Page {
    Page {
        body: source.replace(VERSION_MARK, &VERSION),
        etag: format!("\"{name}-{}\"", *VERSION),
        csp,
    }
}

static LANDING_PAGE: LazyLock<Page> = LazyLock::new(|| page("landing", LANDING, CSP_STRICT));
static VIEWER_PAGE: LazyLock<Page> = LazyLock::new(|| page("viewer", VIEWER, CSP_VIEWER));
static OPS_PAGE: LazyLock<Page> = LazyLock::new(|| page("ops", OPS, CSP_STRICT));

/// The version in today's asset URLs (`/assets/{version}/...`).
pub fn asset_version() -> &'static str {
    &VERSION
}

/// True when the request's `If-None-Match` names `etag`.
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn serve_page(req: &HttpRequest, p: &'static Page) -> HttpResponse {
    let fresh = not_modified(req, &p.etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, p.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, CACHE_REVALIDATE))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("content-security-policy", p.csp));
    if fresh {
        return res.finish();
    }
    res.content_type("text/html; charset=utf-8").body(p.body.as_str())
}

fn serve_asset(req: &HttpRequest, name: &str, cache: &'static str) -> Result<HttpResponse, ApiError> {
    let a = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or(ApiError::NotFound("asset"))?;
    let etag = format!("\"{}\"", *VERSION);
    let fresh = not_modified(req, &etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("x-content-type-options", "nosniff"));
    if fresh {
        return Ok(res.finish());
    }
    Ok(res.content_type(a.content_type).body(a.body))
}

/// The page routes: `/`, `/c/{id}`, `/ops`, their assets, the SDK and the widget.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(landing))
        .route("/sdk/v1/livetally.js", cors::public(web::get().to(sdk)))
        .route("/sdk/v1/strings.js", cors::public(web::get().to(sdk_strings)))
        .route("/embed/v1.js", cors::public(web::get().to(widget)))
        .route("/c/{id}", web::get().to(viewer))
        .route("/ops", web::get().to(ops))
        .route("/assets/{version}/{file}", web::get().to(versioned_asset))
        .route("/assets/{file}", web::get().to(asset));
}

pub async fn landing(req: HttpRequest) -> HttpResponse {
    serve_page(&req, &LANDING_PAGE)
}

/// `GET /c/{id}`: the page itself reads the id from its URL.
pub async fn viewer(req: HttpRequest, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !is_campaign_id(&id) {
        return Err(ApiError::NotFound("campaign"));
    }
    Ok(serve_page(&req, &VIEWER_PAGE))
}

pub async fn ops(req: HttpRequest) -> HttpResponse {
    serve_page(&req, &OPS_PAGE)
}

/// `GET /assets/{version}/{file}`: immutable when the version is this build's. A page from
/// another build (a rolling deploy) still gets the file, but one that must not be cached
/// under that URL.
pub async fn versioned_asset(req: HttpRequest, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (version, file) = path.into_inner();
    let cache = if version == *VERSION {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    };
    serve_asset(&req, &file, cache)
}

/// `GET /sdk/v1/livetally.js`: the JS SDK for pages on any origin (CORS as the public
/// routes, so `<script type="module">` and `import()` from another origin may load it).
pub async fn sdk(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve_asset(&req, SDK, CACHE_MODULE)
}

/// `GET /sdk/v1/strings.js`: the viewer strings, for the widget beside the SDK (CORS likewise).
pub async fn sdk_strings(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve_asset(&req, STRINGS, CACHE_MODULE)
}

/// `GET /embed/v1.js`: the widget for pages on any origin, CORS like the SDK it imports.
pub async fn widget(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve_asset(&req, WIDGET, CACHE_MODULE)
}

/// `GET /assets/{file}`: the current file, revalidated on every use.
pub async fn asset(req: HttpRequest, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve_asset(&req, &file, CACHE_REVALIDATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as web_test, App};

    #[actix_web::test]
    async fn pages_link_versioned_assets_that_exist() {
        let app = web_test::init_service(App::new().configure(routes)).await;
        for path in ["/", "/c/launch-2026", "/ops"] {
            let res = web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), CACHE_REVALIDATE);
            assert!(res.headers().contains_key("content-security-policy"));
            let body = String::from_utf8(web_test::read_body(res).await.to_vec()).unwrap();
            assert!(!body.contains(VERSION_MARK), "{path}");
            let prefix = format!("/assets/{}/", asset_version());
            let mut linked = 0;
            for part in body.split(&prefix).skip(1) {
                let file = part.split('"').next().unwrap();
                assert!(ASSETS.iter().any(|a| a.name == file), "{path} links missing {file}");
                linked += 1;
            }
            assert!(linked >= 3, "{path}");
        }
    }

    #[actix_web::test]
    async fn assets_have_types_caching_and_etags() {
        let app = web_test::init_service(App::new().configure(routes)).await;
        let uri = format!("/assets/{}/viewer.js", asset_version());
        let res = web_test::call_service(&app, web_test::TestRequest::get().uri(&uri).to_request()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), JS);
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), CACHE_IMMUTABLE);
        let etag = res.headers().get(header::ETAG).unwrap().clone();
        let again = web_test::TestRequest::get()
            .uri(&uri)
            .insert_header((header::IF_NONE_MATCH, etag))
            .to_request();
        assert_eq!(web_test::call_service(&app, again).await.status(), 304);

        let old = web_test::TestRequest::get().uri("/assets/0000/app.css").to_request();
        let res = web_test::call_service(&app, old).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), CACHE_REVALIDATE);

        for missing in ["/assets/nope.js", "/assets/x/../Cargo.toml", "/c/Not_An_Id"] {
            let res = web_test::call_service(&app, web_test::TestRequest::get().uri(missing).to_request()).await;
            assert_eq!(res.status(), 404, "{missing}");
        }
    }

    #[actix_web::test]
    async fn the_sdk_has_a_stable_url_and_is_the_asset_our_pages_import() {
        let app = web_test::init_service(App::new().configure(routes)).await;
        let res = web_test::call_service(
            &app,
            web_test::TestRequest::get().uri("/sdk/v1/livetally.js").to_request(),
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), JS);
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), CACHE_MODULE);
        assert!(res.headers().contains_key(header::ETAG));
        let body = web_test::read_body(res).await;
        assert_eq!(&body[..], include_bytes!("../../web/sdk/livetally.js"));
        assert!(std::str::from_utf8(&body).unwrap().contains("export function connect("));
        let uri = format!("/assets/{}/livetally.js", asset_version());
        let res = web_test::call_service(&app, web_test::TestRequest::get().uri(&uri).to_request()).await;
        assert_eq!(web_test::read_body(res).await, body);
    }

    #[actix_web::test]
    async fn the_widget_has_a_stable_url_and_imports_the_sdk_beside_it() {
        let app = web_test::init_service(App::new().configure(routes)).await;
        let get = |uri: &str| web_test::TestRequest::get().uri(uri).to_request();
        let res = web_test::call_service(&app, get("/embed/v1.js")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), JS);
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), CACHE_MODULE);
        let body = web_test::read_body(res).await;
        assert_eq!(&body[..], include_bytes!("../../web/embed/livetally-widget.js"));
        // `/embed/v1.js` + `../sdk/v1/livetally.js` is the SDK's stable URL, which exports
        // what the widget imports.
        let src = std::str::from_utf8(&body).unwrap();
        for line in src.lines().filter(|l| l.contains(" from '../sdk/v1/")) {
            let file = line.split("'../sdk/v1/").nth(1).unwrap().trim_end_matches("';");
            let res = web_test::call_service(&app, get(&format!("/sdk/v1/{file}"))).await;
            assert_eq!(res.status(), 200, "the widget imports /sdk/v1/{file}");
        }
        let import = src
            .lines()
            .find(|l| l.ends_with(" from '../sdk/v1/livetally.js';"))
            .expect("the widget imports ../sdk/v1/livetally.js");
        let names = import.split('{').nth(1).unwrap().split('}').next().unwrap();
        let sdk = web_test::call_service(&app, get("/sdk/v1/livetally.js")).await;
        let sdk = String::from_utf8(web_test::read_body(sdk).await.to_vec()).unwrap();
        for name in names.split(',').map(str::trim) {
            assert!(
                sdk.contains(&format!("export function {name}(")),
                "the SDK lacks {name}"
            );
        }
    }

    #[test]
    fn every_module_import_is_embedded() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let src = std::str::from_utf8(a.body).unwrap();
            for line in src.lines().filter(|l| l.contains(" from './")) {
                let file = line.split("from './").nth(1).unwrap().split('\'').next().unwrap();
                assert!(
                    ASSETS.iter().any(|x| x.name == file),
                    "{} imports missing {file}",
                    a.name
                );
            }
        }
    }
}

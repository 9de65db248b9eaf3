//! Step one: the viewer socket. [`handshake::accept`] takes the upgrade request from
//! actix-http, [`admission`] checks everything that can be refused with an HTTP status
//! before the upgrade and admits the socket (connection limit, session claim in the store,
//! viewer count), then [`connection::run`] serves it over the [`transport`] seam, with
//! [`policy`] deciding what it tolerates.

pub mod admission;
pub mod connection;
#[cfg(test)]
mod direct_tests;
pub mod handshake;
pub mod policy;
mod stats_source;
#[cfg(test)]
mod testing;
pub mod transport;

use actix_web::{web, HttpRequest};
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use admission::{reject_reason, Admission};
use connection::SocketEnv;

/// Everything the socket layer touches: admission, what each socket task needs, and the
/// tracker that shutdown waits on.
pub struct Sockets {
    pub admission: Admission,
    pub env: std::sync::Arc<SocketEnv>,
    /// Socket tasks, awaited at shutdown before the last flush.
    pub tracker: TaskTracker,
}

/// `GET /ws/v1/campaigns/{id}` without upgrade headers (a WebSocket upgrade never gets
/// here: actix-http hands it to [`handshake::accept`]). Answers what the upgrade would be
/// refused with (429 with `Retry-After` while the client's last upgrade was refused for
/// its connect budget), else 400; it never counts anyone and spends nothing. CORS headers
/// come with it (`http`), so the SDK can read why its upgrade failed.
pub async fn not_upgraded(
    req: HttpRequest,
    path: web::Path<String>,
    sockets: web::Data<Sockets>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let admission = &sockets.admission;
    let peer = req.peer_addr().map(|a| a.ip());
    let client = admission.trusted_proxies.client(peer, req.headers());
    let edge_region = admission.edge_region(peer, req.headers());
    let checked = admission
        .check(
            &path,
            req.query_string(),
            req.headers().get("origin"),
            edge_region,
            client,
        )
        .await;
    // An operator is exempt from the connect budget, as from the socket limit.
    let refused = |operator| {
        if operator {
            Ok(())
        } else {
            admission.connect_refused(&client)
        }
    };
    match checked.and_then(|c| refused(c.is_operator())) {
        Err(e) => {
            admission.metrics.rejected(reject_reason(&e));
            Err(e)
        }
        Ok(_) => {
            admission.metrics.rejected("not_websocket");
            Err(not_websocket())
        }
    }
}

fn not_websocket() -> ApiError {
    ApiError::BadRequest {
        field: None,
        message: "expected a WebSocket upgrade request".into(),
    }
}

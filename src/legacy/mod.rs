//! Translation of legacy (`Sora_20161101.*`) calls.
//!
//! Every call runs the same named phases: [`parse`] (read and parse the body) → [`validate`]
//! (typed request) → order/store → upstream call → map reply; the last three live in one file per
//! operation ([`start`], [`stop`], [`started`], [`archiving`]). Any failure becomes the legacy
//! `{"error_type"}` answer through [`crate::error::legacy_error_response`].

pub mod archiving;
pub mod parse;
pub mod session_request;
pub mod sessions;
pub mod start;
pub mod started;
pub mod stop;
pub mod validate;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::Value;

use crate::app::App;
use crate::body::{Body, BoxError, json_bytes_response};
use crate::error::{ShimError, legacy_error_response};
use crate::mappings::LegacyOp;
use crate::routing::ReplyOrigin;
use validate::LegacyCall;

/// Answers one translated call (the router put its [`LegacyOp`] in the request's extensions).
///
/// The phases run in their own task: if the client goes away or the request deadline fires, a
/// Start still finishes (or withdraws) its order instead of stopping half-way.
pub async fn answer<B>(app: Arc<App>, request: Request<B>) -> Response<Body>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let work = tokio::spawn({
        let app = Arc::clone(&app);
        async move { translate(&app, request).await }
    });
    let outcome = work.await.unwrap_or_else(|error| {
        let reason = if error.is_panic() { "the handler panicked" } else { "the handler was cancelled" };
        Err(ShimError::Internal(reason.into()))
    });
    let mut response = match outcome {
        Ok(reply) => json_bytes_response(StatusCode::OK, reply),
        Err(error) => legacy_error_response(&error, &app.mappings.errors),
    };
    response.extensions_mut().insert(ReplyOrigin::Translated);
    response
}

/// Runs the phases for one call and returns the legacy reply body, serialised.
pub async fn translate<B>(app: &Arc<App>, request: Request<B>) -> Result<Bytes, ShimError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let op = *parts
        .extensions
        .get::<LegacyOp>()
        .ok_or_else(|| ShimError::Internal("translated request without an operation".into()))?;

    // Phase 1: parse. List calls ignore their body, but it is still read (within the limit): a
    // reply sent over an unread body can be cut off by the connection's reset.
    let bytes = parse::read_body(body, app.config.limits.max_body_bytes).await?;
    let json =
        if LegacyCall::takes_body(op) { parse::parse_json(&bytes)? } else { Value::Object(serde_json::Map::new()) };

    // Phase 2: validate.
    let call = LegacyCall::from_json(op, json, &app.config.legacy)?;

    // Phases 3–5: order/store → upstream call → map reply.
    let reply = match call {
        LegacyCall::Start(start) => start::start(app, start, &parts.headers).await,
        LegacyCall::Stop { channel_id } => stop::stop(app, channel_id, &parts.headers).await,
        LegacyCall::GetStarted { channel_id } => started::get_started(app, channel_id).await,
        // The one reply that can be long: serialised from the orders without a JSON tree.
        LegacyCall::ListStarted => return started::list_started(app).await,
        LegacyCall::ListArchiving => archiving::list_archiving(app, &parts.headers).await,
    }?;
    Ok(Bytes::from(serde_json::to_vec(&reply).expect("a JSON value always serialises")))
}

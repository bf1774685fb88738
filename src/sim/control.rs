//! The control plane under `/sim/`: connect and disconnect clients, inspect the state and the
//! request journal, and set fault rules. JSON in, JSON out, errors 400 `{"error_type"}`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::api::channel_id_in;
use super::emulator::{Emulator, lock};
use super::faults::FaultRule;
use super::journal::JournalFilter;
use super::reply::{self, bad_request, parse_object};
use super::state::{ConnectRequest, Role};
use super::views;
use crate::body::Body;

/// Answers one `/sim/...` request.
pub async fn handle(emulator: &Arc<Emulator>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let known_methods: &[Method] = match path {
        "/sim/connect" | "/sim/disconnect" => &[Method::POST],
        "/sim/state" | "/sim/requests" => &[Method::GET],
        "/sim/faults" => &[Method::GET, Method::POST, Method::DELETE],
        "/sim/webhooks" => &[Method::GET, Method::POST],
        _ => return reply::error(StatusCode::NOT_FOUND, "NOT-FOUND"),
    };
    if !known_methods.contains(&parts.method) {
        return reply::error(StatusCode::METHOD_NOT_ALLOWED, "METHOD-NOT-ALLOWED");
    }
    let bytes = match reply::read_body(body).await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let fields = match parse_object(&bytes) {
        Ok(fields) => fields,
        Err(error_type) if parts.method == Method::POST => return bad_request(error_type),
        Err(_) => Map::new(),
    };
    let answer = match (&parts.method, path) {
        (&Method::POST, "/sim/connect") => connect(emulator, &fields).await,
        (&Method::POST, "/sim/disconnect") => disconnect(emulator, &fields),
        (&Method::GET, "/sim/state") => Ok(emulator.view(|state| {
            json!({
                "sessions": views::sessions(state),
                "connections": views::connections(state),
                "recordings": views::recordings(state),
                "legacy_orders": views::legacy_orders(state),
            })
        })),
        (&Method::GET, "/sim/requests") => {
            JournalFilter::from_query(parts.uri.query()).map(|filter| lock(&emulator.journal).to_json(&filter))
        }
        (&Method::GET, "/sim/faults") => Ok(lock(&emulator.faults).to_json()),
        (&Method::POST, "/sim/faults") => add_fault(emulator, &fields),
        (&Method::GET, "/sim/webhooks") => Ok(webhooks_json(emulator)),
        (&Method::POST, "/sim/webhooks") => set_webhooks(emulator, &fields),
        _ => Ok(json!({ "cleared": lock(&emulator.faults).clear() })),
    };
    match answer {
        Ok(value) => reply::ok(&value),
        Err(error_type) => bad_request(error_type),
    }
}

async fn connect(emulator: &Arc<Emulator>, fields: &Map<String, Value>) -> Result<Value, &'static str> {
    let request = connect_request(fields)?;
    let joined = emulator.connect(request).await.map_err(|error| {
        tracing::error!(%error, "connect task failed");
        "INTERNAL-ERROR"
    })?;
    Ok(json!({
        "channel_id": joined.channel_id,
        "connection_id": joined.connection_id,
        "session_id": joined.session_id,
        "client_id": joined.client_id,
    }))
}

fn disconnect(emulator: &Emulator, fields: &Map<String, Value>) -> Result<Value, &'static str> {
    let connection_id = fields.get("connection_id").and_then(Value::as_str).ok_or("INVALID-CONNECTION-ID")?;
    let left =
        emulator.mutate(|state, now| state.disconnect(connection_id, now)).map_err(|_| "CONNECTION-NOT-FOUND")?;
    Ok(json!({
        "connection_id": left.connection_id,
        "session_id": left.session_id,
        "session_destroyed": left.session_destroyed,
    }))
}

fn add_fault(emulator: &Emulator, fields: &Map<String, Value>) -> Result<Value, &'static str> {
    let rule = FaultRule::from_fields(fields)?;
    let mut faults = lock(&emulator.faults);
    faults.add(rule);
    Ok(json!({ "faults": faults.to_json() }))
}

/// Reads a `/sim/connect` body, filling in Sora's defaults.
fn connect_request(fields: &Map<String, Value>) -> Result<ConnectRequest, &'static str> {
    let channel_id = channel_id_in(fields)?;
    let role = match fields.get("role") {
        None => Role::SendRecv,
        Some(value) => value.as_str().and_then(Role::parse).ok_or("INVALID-ROLE")?,
    };
    let audio = media(fields.get("audio"), json!({"codec_type": "OPUS"})).ok_or("INVALID-AUDIO")?;
    let video =
        media(fields.get("video"), json!({"codec_type": "VP9", "bit_rate": 1000, "vp9_params": {"profile_id": 0}}))
            .ok_or("INVALID-VIDEO")?;
    let client_id = optional_id(fields.get("client_id"), "INVALID-CLIENT-ID")?;
    let bundle_id = optional_id(fields.get("bundle_id"), "INVALID-BUNDLE-ID")?;
    Ok(ConnectRequest { channel_id, role, audio, video, client_id, bundle_id })
}

/// `audio` / `video`: absent or `true` → the default, `false` → `false`, an object → itself.
fn media(value: Option<&Value>, default: Value) -> Option<Value> {
    match value {
        None | Some(Value::Bool(true)) => Some(default),
        Some(Value::Bool(false)) => Some(Value::Bool(false)),
        Some(Value::Object(settings)) => Some(Value::Object(settings.clone())),
        Some(_) => None,
    }
}

/// An optional non-empty string id; `error_type` when it is there but wrong.
fn optional_id(value: Option<&Value>, error_type: &'static str) -> Result<Option<String>, &'static str> {
    match value {
        None => Ok(None),
        Some(Value::String(id)) if !id.is_empty() => Ok(Some(id.clone())),
        Some(_) => Err(error_type),
    }
}

/// The webhook URLs in force.
fn webhooks_json(emulator: &Emulator) -> Value {
    let urls = emulator.webhooks.urls();
    json!({ "session_webhook_url": urls.session, "event_webhook_url": urls.event, "basic_auth": urls.basic_auth.is_some() })
}

/// `POST /sim/webhooks {"session_webhook_url"?: URL|null, "event_webhook_url"?: URL|null,
/// "basic_auth"?: "user:password"|null}`: replaces what is given (null removes it), leaves the rest.
fn set_webhooks(emulator: &Emulator, fields: &Map<String, Value>) -> Result<Value, &'static str> {
    let mut urls = emulator.webhooks.urls();
    for (key, slot) in [("session_webhook_url", &mut urls.session), ("event_webhook_url", &mut urls.event)] {
        match fields.get(key) {
            None => {}
            Some(Value::Null) => *slot = None,
            Some(Value::String(url)) if url.parse::<http::Uri>().is_ok_and(|uri| uri.scheme_str() == Some("http")) => {
                *slot = Some(url.clone());
            }
            Some(_) => return Err("INVALID-WEBHOOK-URL"),
        }
    }
    match fields.get("basic_auth") {
        None => {}
        Some(Value::Null) => urls.basic_auth = None,
        Some(Value::String(pair)) if pair.contains(':') => urls.basic_auth = Some(pair.clone()),
        Some(_) => return Err("INVALID-BASIC-AUTH"),
    }
    emulator.webhooks.set_urls(urls);
    Ok(webhooks_json(emulator))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<ConnectRequest, &'static str> {
        connect_request(value.as_object().expect("test input is an object"))
    }

    #[test]
    fn connect_defaults_follow_sora() {
        let request = parse(json!({"channel_id": "c"})).expect("valid");
        assert_eq!(request.role, Role::SendRecv);
        assert_eq!(request.audio, json!({"codec_type": "OPUS"}));
        assert_eq!(request.video, json!({"codec_type": "VP9", "bit_rate": 1000, "vp9_params": {"profile_id": 0}}));
        assert_eq!(request.client_id, None);
    }

    #[test]
    fn connect_takes_explicit_values() {
        let request = parse(json!({
            "channel_id": "c", "role": "recvonly", "audio": false, "video": {"codec_type": "AV1"}, "client_id": "me"
        }))
        .expect("valid");
        assert_eq!(request.role, Role::RecvOnly);
        assert_eq!(request.audio, json!(false));
        assert_eq!(request.video, json!({"codec_type": "AV1"}));
        assert_eq!(request.client_id.as_deref(), Some("me"));
    }

    #[test]
    fn connect_names_the_bad_field() {
        assert_eq!(parse(json!({})).err(), Some("INVALID-CHANNEL-ID"));
        assert_eq!(parse(json!({"channel_id": ""})).err(), Some("INVALID-CHANNEL-ID"));
        assert_eq!(parse(json!({"channel_id": "c", "role": "both"})).err(), Some("INVALID-ROLE"));
        assert_eq!(parse(json!({"channel_id": "c", "audio": 1})).err(), Some("INVALID-AUDIO"));
        assert_eq!(parse(json!({"channel_id": "c", "video": "VP8"})).err(), Some("INVALID-VIDEO"));
        assert_eq!(parse(json!({"channel_id": "c", "client_id": 7})).err(), Some("INVALID-CLIENT-ID"));
    }
}

//! The emulated Sora API: `POST /` (any non-`/sim/` path) with the target in `x-sora-target`.
//!
//! Every request is journaled first, then fault rules apply, then the target is handled. The
//! legacy targets (`Sora_20161101.*`) exist only in legacy mode.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::emulator::{Emulator, lock};
use super::faults::FaultAnswer;
use super::journal::JournalEntry;
use super::legacy;
use super::options::RecordingOptions;
use super::reply::{self, bad_request, parse_object};
use super::state::{RecordingIds, StateError};
use super::views;
use crate::body::{Body, full};

/// The header that names the API operation.
pub const TARGET_HEADER: &str = "x-sora-target";

const START_RECORDING: &str = "Sora_20231220.StartRecording";
const STOP_RECORDING: &str = "Sora_20231220.StopRecording";
const LIST_SESSIONS: &str = "Sora_20231220.ListSessions";
const GET_SESSION: &str = "Sora_20231220.GetSession";
const LIST_CONNECTIONS: &str = "Sora_20201013.ListConnections";
const GET_STATS_REPORT: &str = "Sora_20171010.GetStatsReport";

/// Answers one API request.
pub async fn handle(emulator: &Emulator, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let target = parts.headers.get(TARGET_HEADER).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let (bytes, unreadable) = match reply::read_body(body).await {
        Ok(bytes) => (bytes, None),
        Err(answer) => (Bytes::new(), Some(answer)),
    };
    lock(&emulator.journal).record(JournalEntry::from_request(&parts, target.clone(), &bytes));
    let fault = lock(&emulator.faults).take_match(target.as_deref());
    if let Some(fault) = fault {
        tokio::time::sleep(fault.latency).await;
        match fault.answer {
            FaultAnswer::Handle => {}
            FaultAnswer::Drop => return Response::new(reply::severed()),
            FaultAnswer::Reply { status, body } => return raw_json(status, body),
        }
    }
    if let Some(answer) = unreadable {
        return answer;
    }
    if parts.method != Method::POST {
        return reply::error(StatusCode::METHOD_NOT_ALLOWED, "METHOD-NOT-ALLOWED");
    }
    match answer_target(emulator, target.as_deref().unwrap_or_default(), &bytes) {
        Ok(value) => reply::ok(&value),
        Err(error_type) => bad_request(&error_type),
    }
}

/// The JSON answer for `target`, or the `error_type` to refuse it with.
fn answer_target(emulator: &Emulator, target: &str, body: &[u8]) -> Result<Value, String> {
    if emulator.options.legacy
        && let Some(answer) = legacy::answer_target(emulator, target, body)
    {
        return answer.map_err(String::from);
    }
    match target {
        START_RECORDING => start_recording(emulator, body),
        STOP_RECORDING => {
            let channel_id = channel_id_of(body)?;
            let ids = emulator
                .mutate(|state, now| state.stop_recording(&channel_id, now))
                .map_err(|error| error_type(emulator, error))?;
            Ok(ids_json(&ids))
        }
        LIST_SESSIONS => Ok(emulator.view(views::sessions)),
        GET_SESSION => {
            let channel_id = channel_id_of(body)?;
            emulator
                .view(|state| state.active_session(&channel_id).map(|session| views::session(state, session)))
                .ok_or_else(|| error_type(emulator, StateError::NoSession))
        }
        LIST_CONNECTIONS => Ok(emulator.view(views::connections)),
        GET_STATS_REPORT => Ok(stats_report()),
        _ => Err("UNKNOWN-TARGET".into()),
    }
}

fn start_recording(emulator: &Emulator, body: &[u8]) -> Result<Value, String> {
    let fields = parse_object(body)?;
    let channel_id = channel_id_in(&fields)?;
    let options = RecordingOptions::from_fields(&fields, "metadata")?;
    let mut answer = Map::new();
    options.echo_into(&mut answer, "metadata");
    let ids = emulator
        .mutate(|state, now| state.start_recording(&channel_id, options, now))
        .map_err(|error| error_type(emulator, error))?;
    if let Value::Object(ids) = ids_json(&ids) {
        answer.extend(ids);
    }
    Ok(Value::Object(answer))
}

/// The `error_type` Sora answers a refused operation with.
fn error_type(emulator: &Emulator, error: StateError) -> String {
    match error {
        StateError::NoSession => emulator.options.no_session_error.clone(),
        StateError::AlreadyRecording => "STARTED-RECORDING".into(),
        StateError::NotRecording => "NOT-STARTED-RECORDING".into(),
        StateError::UnknownConnection => "CONNECTION-NOT-FOUND".into(),
    }
}

fn channel_id_of(body: &[u8]) -> Result<String, String> {
    Ok(channel_id_in(&parse_object(body)?)?)
}

/// A required, non-empty string `channel_id`.
pub fn channel_id_in(fields: &Map<String, Value>) -> Result<String, &'static str> {
    match fields.get("channel_id") {
        Some(Value::String(channel_id)) if !channel_id.is_empty() => Ok(channel_id.clone()),
        _ => Err("INVALID-CHANNEL-ID"),
    }
}

fn ids_json(ids: &RecordingIds) -> Value {
    json!({"channel_id": ids.channel_id, "session_id": ids.session_id, "recording_id": ids.recording_id})
}

/// A fixed report, byte-identical on every call.
fn stats_report() -> Value {
    json!([{
        "type": "sora",
        "version": "sim",
        "label": "sora-sim",
        "node_name": "sora-sim@127.0.0.1",
    }])
}

/// `status` with `body` as given, labelled JSON.
fn raw_json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

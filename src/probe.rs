//! `sora-legacy-shim probe`: checks a real Sora against what `mappings/upstream.toml` assumes,
//! before any traffic is switched.
//!
//! A short, harmless sequence on a throwaway channel that must have no session: list sessions,
//! list connections, start recording (must fail: no session), stop recording (must fail: no
//! session or not recording), and an unknown target (must be a Sora-style error). Every answer is
//! compared with the mappings and printed as a table with the key to change when they differ.

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::mappings::{Mappings, UpstreamErrorClass};
use crate::upstream::{Upstream, UpstreamReply};

/// One compared assumption.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub assumption: String,
    pub expected: String,
    pub observed: String,
    pub ok: bool,
    /// The mapping key to correct when `ok` is false.
    pub key: String,
}

/// Why the probe could not run its sequence.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the upstream did not answer: {0}")]
    Unreachable(String),
    #[error(
        "channel {0:?} has a session on the upstream; the probe only uses an idle channel (pick another with --channel)"
    )]
    ChannelInUse(String),
}

fn describe(reply: &UpstreamReply) -> String {
    match reply.error_type() {
        Some(name) => format!("{} {{\"error_type\":\"{name}\"}}", reply.status.as_u16()),
        None => format!("{} {}", reply.status.as_u16(), reply.excerpt().chars().take(60).collect::<String>()),
    }
}

fn is_json_array(reply: &UpstreamReply) -> bool {
    reply.status == StatusCode::OK && reply.json().is_ok_and(|value| value.is_array())
}

/// Runs the sequence against `upstream` on `channel`.
pub async fn run(upstream: &Upstream, mappings: &Mappings, channel: &str) -> Result<Vec<Check>, ProbeError> {
    let targets = &mappings.upstream.targets;
    let list_body = &mappings.upstream.list_request_body;
    let headers = HeaderMap::new();
    let call = |label: &'static str, target: String, body: Value| {
        let headers = headers.clone();
        async move {
            upstream
                .call_json(label, &target, &body, &headers)
                .await
                .map_err(|error| ProbeError::Unreachable(error.to_string()))
        }
    };
    let mut checks = Vec::new();

    let sessions = call("list_sessions", targets.list_sessions.clone(), list_body.clone()).await?;
    checks.push(Check {
        assumption: format!("{} answers a JSON array", targets.list_sessions),
        expected: "200 [...]".into(),
        observed: if is_json_array(&sessions) { "200 [...]".into() } else { describe(&sessions) },
        ok: is_json_array(&sessions),
        key: "upstream.toml: targets.list_sessions".into(),
    });
    let in_use = sessions
        .json()
        .ok()
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|session| session.get("channel_id").and_then(Value::as_str) == Some(channel));
    if in_use {
        return Err(ProbeError::ChannelInUse(channel.to_owned()));
    }

    let connections = call("list_connections", targets.list_connections.clone(), list_body.clone()).await?;
    checks.push(Check {
        assumption: format!("{} answers a JSON array", targets.list_connections),
        expected: "200 [...]".into(),
        observed: if is_json_array(&connections) { "200 [...]".into() } else { describe(&connections) },
        ok: is_json_array(&connections),
        key: "upstream.toml: targets.list_connections".into(),
    });

    let classify = |reply: &UpstreamReply| reply.error_type().and_then(|name| mappings.upstream.classify(&name));
    let start = call("start_recording", targets.start_recording.clone(), json!({"channel_id": channel})).await?;
    if start.status == StatusCode::OK {
        // Should never happen on an idle channel; undo it at once.
        let _ = call("stop_recording", targets.stop_recording.clone(), json!({"channel_id": channel})).await;
    }
    checks.push(Check {
        assumption: "Start on a channel without a session fails with a no-session error".into(),
        expected: "400 error_type in error_classes.no_session".into(),
        observed: describe(&start),
        ok: start.status == StatusCode::BAD_REQUEST && classify(&start) == Some(UpstreamErrorClass::NoSession),
        key: "upstream.toml: error_classes.no_session".into(),
    });

    let stop = call("stop_recording", targets.stop_recording.clone(), json!({"channel_id": channel})).await?;
    let stop_class = classify(&stop);
    checks.push(Check {
        assumption: "Stop on a channel without a session fails with a no-session or not-recording error".into(),
        expected: "400 error_type in error_classes.no_session or .not_recording".into(),
        observed: describe(&stop),
        ok: stop.status == StatusCode::BAD_REQUEST
            && matches!(stop_class, Some(UpstreamErrorClass::NoSession | UpstreamErrorClass::NotRecording)),
        key: "upstream.toml: error_classes.no_session / .not_recording".into(),
    });

    let unknown = call("probe", "Sora_20231220.ShimProbeUnknownTarget".into(), json!({})).await?;
    checks.push(Check {
        assumption: "errors are 400 {\"error_type\": ...}".into(),
        expected: "400 {\"error_type\":...}".into(),
        observed: describe(&unknown),
        ok: unknown.status == StatusCode::BAD_REQUEST && unknown.error_type().is_some(),
        key: "(shape of errors; not configurable)".into(),
    });
    Ok(checks)
}

/// The checks as a plain-text table.
pub fn table(checks: &[Check]) -> String {
    let headers = ["assumption", "expected", "observed", "result", "mapping key (file: key)"];
    let rows: Vec<[String; 5]> = checks
        .iter()
        .map(|check| {
            let result = if check.ok { "OK" } else { "DIFFERENT" };
            [check.assumption.clone(), check.expected.clone(), check.observed.clone(), result.into(), check.key.clone()]
        })
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|column| rows.iter().map(|row| row[column].len()).chain([headers[column].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: [&str; 5]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers), widths.iter().map(|width| "-".repeat(*width)).collect::<Vec<_>>().join("-|-")];
    for row in &rows {
        out.push(line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_marks_differences() {
        let checks = [
            Check { assumption: "a".into(), expected: "x".into(), observed: "x".into(), ok: true, key: "k1".into() },
            Check {
                assumption: "longer".into(),
                expected: "y".into(),
                observed: "z".into(),
                ok: false,
                key: "k2".into(),
            },
        ];
        let text = table(&checks);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("a          | x        | x        | OK "), "{text}");
        assert!(lines[3].contains("| DIFFERENT | k2"), "{text}");
    }
}

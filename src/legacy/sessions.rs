//! The upstream's sessions as the shim reads them (`ListSessions`), and the one rule that says
//! whether a session's running recording is the one a leg of the shim switched on.

use std::collections::HashMap;

use http::HeaderMap;
use serde_json::Value;

use super::archiving::{array_reply, unix_seconds};
use crate::app::App;
use crate::error::ShimError;
use crate::store::Leg;

/// One listed session.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSession {
    pub channel_id: String,
    /// The upstream id of the recording running now, `Some("")` when it records without saying.
    pub recording: Option<String>,
    /// When that recording began (Unix seconds), when the upstream says.
    pub recording_started: Option<i64>,
}

/// Every session the upstream lists now, by session id.
pub async fn live_sessions(app: &App) -> Result<HashMap<String, LiveSession>, ShimError> {
    let upstream = &app.mappings.upstream;
    let reply = app
        .upstream
        .call_json("list_sessions", &upstream.targets.list_sessions, &upstream.list_request_body, &HeaderMap::new())
        .await?;
    Ok(array_reply(app, &upstream.targets.list_sessions, reply)?
        .iter()
        .filter_map(|session| {
            let session_id = session.get("session_id")?.as_str()?.to_owned();
            let channel_id = session.get("channel_id")?.as_str()?.to_owned();
            let recording = session.get("recording").filter(|value| value.is_object());
            let recording_started =
                recording.and_then(|recording| recording.get("start_timestamp")).and_then(unix_seconds);
            let recording = recording
                .map(|recording| recording.get("recording_id").and_then(Value::as_str).unwrap_or_default().to_owned());
            Some((session_id, LiveSession { channel_id, recording, recording_started }))
        })
        .collect())
}

/// Whether the recording running in `session` (the leg's session) is the one the shim switched
/// on for `leg`: the same upstream id when both are known; when the leg's is not (a session
/// webhook answer), one that began no earlier than the second before the leg. A recording with
/// another id (a native one begun since) is never the leg's.
pub fn leg_owns(leg: &Leg, session: &LiveSession) -> bool {
    match (&leg.upstream_recording_id, &session.recording) {
        (_, None) => false,
        (Some(started), Some(running)) if !running.is_empty() => started == running,
        (Some(_), Some(_)) => true,
        (None, Some(_)) => session.recording_started.is_none_or(|began| began >= leg.started_at - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(upstream: Option<&str>) -> Leg {
        Leg {
            recording_id: "A".into(),
            session_id: "S".into(),
            upstream_recording_id: upstream.map(str::to_owned),
            started_at: 1_000,
            ended_at: None,
        }
    }

    fn session(recording: Option<&str>, started: Option<i64>) -> LiveSession {
        LiveSession { channel_id: "c".into(), recording: recording.map(str::to_owned), recording_started: started }
    }

    #[test]
    fn a_known_id_must_match() {
        assert!(leg_owns(&leg(Some("U1")), &session(Some("U1"), Some(1_000))));
        assert!(!leg_owns(&leg(Some("U1")), &session(Some("U2"), Some(1_000))), "a native recording begun since");
        assert!(leg_owns(&leg(Some("U1")), &session(Some(""), None)), "the upstream does not say");
        assert!(!leg_owns(&leg(Some("U1")), &session(None, None)), "nothing records");
    }

    #[test]
    fn an_unknown_id_goes_by_time() {
        assert!(leg_owns(&leg(None), &session(Some("U1"), Some(1_000))));
        assert!(leg_owns(&leg(None), &session(Some("U1"), Some(999))), "the second before the leg");
        assert!(!leg_owns(&leg(None), &session(Some("U1"), Some(998))), "running since before the webhook");
        assert!(leg_owns(&leg(None), &session(Some("U1"), None)));
    }
}

//! The emulated Sora's state: sessions, connections and recordings, as a pure state machine.
//!
//! No I/O and no clock of its own: every mutating operation takes `now` (Unix milliseconds),
//! first applies whatever became due by then (recording expiry, session linger) and queues the
//! webhooks it implies as [`Effect`]s, which the caller drains with [`SimState::take_effects`].
//!
//! A new session starts *pending*: it holds its first connection but is invisible to the API
//! until [`SimState::activate_session`] is called (after the `session.created` webhook answered).
//!
//! Legacy recording orders (the `legacy` submodule) make every session of their channel record.

use std::collections::BTreeMap;

use serde_json::Value;
use ulid::Ulid;

use super::clock::Millis;
use super::legacy::order::LegacyOrder;
use super::options::RecordingOptions;

mod legacy;

pub use legacy::LegacyOrderError;

/// A connection's media direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    SendRecv,
    SendOnly,
    RecvOnly,
}

impl Role {
    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
        }
    }

    /// Whether this connection's media ends up in a recording.
    pub fn sends_media(self) -> bool {
        !matches!(self, Self::RecvOnly)
    }
}

/// Why a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Stopped,
    Expired,
    SessionDestroyed,
}

impl EndReason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Expired => "expired",
            Self::SessionDestroyed => "session-destroyed",
        }
    }
}

/// Who switched a recording on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartedBy {
    Api,
    SessionWebhook,
    /// A standing legacy order (`Sora_20161101.StartRecording`).
    Legacy,
}

impl StartedBy {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::SessionWebhook => "session-webhook",
            Self::Legacy => "legacy",
        }
    }
}

/// Why an operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("no session on the channel")]
    NoSession,
    #[error("the session is already recording")]
    AlreadyRecording,
    #[error("the session is not recording")]
    NotRecording,
    #[error("no such connection")]
    UnknownConnection,
}

/// A client joining a channel.
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    pub channel_id: String,
    pub role: Role,
    pub audio: Value,
    pub video: Value,
    pub client_id: Option<String>,
    pub bundle_id: Option<String>,
}

/// The result of [`SimState::connect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub channel_id: String,
    pub connection_id: String,
    pub session_id: String,
    pub client_id: String,
    /// True when this connection created the session, which is still pending.
    pub session_created: bool,
}

/// The result of [`SimState::disconnect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Left {
    pub connection_id: String,
    pub session_id: String,
    pub session_destroyed: bool,
}

/// Identifies one recording of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingIds {
    pub channel_id: String,
    pub session_id: String,
    pub recording_id: String,
}

/// A connection whose media went into a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSource {
    pub connection_id: String,
    pub client_id: String,
}

/// A recording, live or ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub recording_id: String,
    pub channel_id: String,
    pub session_id: String,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub end_reason: Option<EndReason>,
    pub options: RecordingOptions,
    pub started_by: StartedBy,
    /// The legacy order's `recording_id` when a legacy order started the recording.
    pub legacy_recording_id: Option<String>,
    /// Sending connections that were in the session while it recorded, in join order.
    pub archives: Vec<ArchiveSource>,
}

impl Recording {
    /// When the recording stops by itself, if it has an `expire_time`.
    pub fn expires_at(&self) -> Option<Millis> {
        self.options.expire_time.map(|seconds| self.started_at + seconds * 1000)
    }
}

/// A session: exists while a channel has connections (plus the linger time).
#[derive(Clone, Debug)]
pub struct Session {
    pub session_id: String,
    pub channel_id: String,
    pub created_at: Millis,
    /// False until the `session.created` webhook has been answered.
    pub active: bool,
    /// Set while the session has no connections and waits for a rejoin.
    pub linger_until: Option<Millis>,
    /// Index into the recordings list while the session records.
    recording: Option<usize>,
}

/// One connected client.
#[derive(Clone, Debug)]
pub struct Connection {
    pub connection_id: String,
    pub client_id: String,
    pub bundle_id: String,
    pub channel_id: String,
    pub session_id: String,
    pub role: Role,
    pub audio: Value,
    pub video: Value,
    pub created_at: Millis,
    /// Global join order, for stable listings.
    join_order: u64,
}

/// A webhook the state change implies.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    RecordingEnded(Recording),
    SessionDestroyed { channel_id: String, session_id: String },
}

/// Everything the emulator knows.
#[derive(Debug)]
pub struct SimState {
    /// By channel id.
    sessions: BTreeMap<String, Session>,
    /// By connection id.
    connections: BTreeMap<String, Connection>,
    /// Every recording ever made, in start order.
    recordings: Vec<Recording>,
    /// Standing legacy orders, by channel id.
    legacy_orders: BTreeMap<String, LegacyOrder>,
    session_linger: Millis,
    next_join_order: u64,
    effects: Vec<Effect>,
}

impl SimState {
    /// An empty state; sessions outlive their last connection by `session_linger`.
    pub fn new(session_linger: Millis) -> Self {
        Self {
            sessions: BTreeMap::new(),
            connections: BTreeMap::new(),
            recordings: Vec::new(),
            legacy_orders: BTreeMap::new(),
            session_linger,
            next_join_order: 0,
            effects: Vec::new(),
        }
    }

    /// The webhooks queued since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Applies everything due by `now`: legacy orders past their deadline, recordings past their
    /// `expire_time`, sessions past their linger.
    pub fn advance(&mut self, now: Millis) {
        self.expire_legacy_orders(now);
        let due_expiries: Vec<(String, Millis)> = self
            .sessions
            .values()
            .filter_map(|session| {
                let expires_at = self.recordings[session.recording?].expires_at()?;
                // A session that lingered out first ends the recording as destroyed, not expired.
                let horizon = session.linger_until.map_or(now, |linger_until| linger_until.min(now));
                (expires_at <= horizon).then(|| (session.channel_id.clone(), expires_at))
            })
            .collect();
        for (channel_id, expires_at) in due_expiries {
            self.end_recording(&channel_id, EndReason::Expired, expires_at);
        }
        let lingered_out: Vec<(String, Millis)> = self
            .sessions
            .values()
            .filter_map(|session| {
                let linger_until = session.linger_until?;
                (linger_until <= now).then(|| (session.channel_id.clone(), linger_until))
            })
            .collect();
        for (channel_id, linger_until) in lingered_out {
            self.destroy_session(&channel_id, linger_until);
        }
    }

    /// Connects a client, joining the channel's session or creating a pending one.
    pub fn connect(&mut self, request: ConnectRequest, now: Millis) -> Joined {
        self.advance(now);
        let connection_id = Ulid::generate().to_string();
        let client_id = request.client_id.unwrap_or_else(|| connection_id.clone());
        let bundle_id = request.bundle_id.unwrap_or_else(|| connection_id.clone());
        let session_created = !self.sessions.contains_key(&request.channel_id);
        let session = self.sessions.entry(request.channel_id.clone()).or_insert_with(|| Session {
            session_id: Ulid::generate().to_string(),
            channel_id: request.channel_id.clone(),
            created_at: now,
            active: false,
            linger_until: None,
            recording: None,
        });
        session.linger_until = None;
        let session_id = session.session_id.clone();
        if let Some(index) = session.recording.filter(|_| request.role.sends_media()) {
            let source = ArchiveSource { connection_id: connection_id.clone(), client_id: client_id.clone() };
            self.recordings[index].archives.push(source);
        }
        let join_order = self.next_join_order;
        self.next_join_order += 1;
        self.connections.insert(
            connection_id.clone(),
            Connection {
                connection_id: connection_id.clone(),
                client_id: client_id.clone(),
                bundle_id,
                channel_id: request.channel_id.clone(),
                session_id: session_id.clone(),
                role: request.role,
                audio: request.audio,
                video: request.video,
                created_at: now,
                join_order,
            },
        );
        Joined { channel_id: request.channel_id, connection_id, session_id, client_id, session_created }
    }

    /// Makes a pending session visible, recording at once when `recording` is given, else when
    /// the channel has a standing legacy order.
    ///
    /// Returns the recording started, if any. A session that no longer exists is an error.
    pub fn activate_session(
        &mut self,
        session_id: &str,
        recording: Option<RecordingOptions>,
        now: Millis,
    ) -> Result<Option<RecordingIds>, StateError> {
        self.advance(now);
        let session =
            self.sessions.values_mut().find(|session| session.session_id == session_id).ok_or(StateError::NoSession)?;
        session.active = true;
        let channel_id = session.channel_id.clone();
        match recording {
            Some(options) => self.begin_recording(&channel_id, options, StartedBy::SessionWebhook, None, now).map(Some),
            None => Ok(self.record_for_legacy_order(&channel_id, now)),
        }
    }

    /// Disconnects a client; the last one out destroys the session now or after the linger time.
    pub fn disconnect(&mut self, connection_id: &str, now: Millis) -> Result<Left, StateError> {
        self.advance(now);
        let connection = self.connections.remove(connection_id).ok_or(StateError::UnknownConnection)?;
        let session_empty = self.connection_count(&connection.session_id) == 0;
        let mut session_destroyed = false;
        if session_empty {
            if self.session_linger == 0 {
                self.destroy_session(&connection.channel_id, now);
                session_destroyed = true;
            } else if let Some(session) = self.sessions.get_mut(&connection.channel_id) {
                session.linger_until = Some(now + self.session_linger);
            }
        }
        Ok(Left { connection_id: connection.connection_id, session_id: connection.session_id, session_destroyed })
    }

    /// `StartRecording` on the channel's active session.
    pub fn start_recording(
        &mut self,
        channel_id: &str,
        options: RecordingOptions,
        now: Millis,
    ) -> Result<RecordingIds, StateError> {
        self.advance(now);
        self.begin_recording(channel_id, options, StartedBy::Api, None, now)
    }

    /// `StopRecording` on the channel's active session.
    pub fn stop_recording(&mut self, channel_id: &str, now: Millis) -> Result<RecordingIds, StateError> {
        self.advance(now);
        let session = self.active_session(channel_id).ok_or(StateError::NoSession)?;
        if session.recording.is_none() {
            return Err(StateError::NotRecording);
        }
        self.end_recording(channel_id, EndReason::Stopped, now).ok_or(StateError::NotRecording)
    }

    /// Active sessions, sorted by channel id.
    pub fn active_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().filter(|session| session.active)
    }

    /// The channel's session, if it is active.
    pub fn active_session(&self, channel_id: &str) -> Option<&Session> {
        self.sessions.get(channel_id).filter(|session| session.active)
    }

    /// Connections of active sessions, sorted by channel id, then join order.
    pub fn active_connections(&self) -> Vec<&Connection> {
        let mut connections: Vec<&Connection> = self
            .connections
            .values()
            .filter(|connection| self.active_session(&connection.channel_id).is_some())
            .collect();
        connections
            .sort_by(|left, right| (&left.channel_id, left.join_order).cmp(&(&right.channel_id, right.join_order)));
        connections
    }

    /// How many clients are connected to the session.
    pub fn connection_count(&self, session_id: &str) -> usize {
        self.connections.values().filter(|connection| connection.session_id == session_id).count()
    }

    /// The session's live recording.
    pub fn live_recording(&self, session: &Session) -> Option<&Recording> {
        session.recording.map(|index| &self.recordings[index])
    }

    /// Every recording ever made, in start order.
    pub fn recordings(&self) -> &[Recording] {
        &self.recordings
    }

    fn begin_recording(
        &mut self,
        channel_id: &str,
        options: RecordingOptions,
        started_by: StartedBy,
        legacy_recording_id: Option<String>,
        now: Millis,
    ) -> Result<RecordingIds, StateError> {
        let session = self.sessions.get(channel_id).filter(|session| session.active).ok_or(StateError::NoSession)?;
        if session.recording.is_some() {
            return Err(StateError::AlreadyRecording);
        }
        let session_id = session.session_id.clone();
        let mut sending: Vec<&Connection> = self
            .connections
            .values()
            .filter(|connection| connection.session_id == session_id && connection.role.sends_media())
            .collect();
        sending.sort_by_key(|connection| connection.join_order);
        let archives = sending
            .into_iter()
            .map(|connection| ArchiveSource {
                connection_id: connection.connection_id.clone(),
                client_id: connection.client_id.clone(),
            })
            .collect();
        let recording = Recording {
            recording_id: Ulid::generate().to_string(),
            channel_id: channel_id.to_owned(),
            session_id: session_id.clone(),
            started_at: now,
            ended_at: None,
            end_reason: None,
            options,
            started_by,
            legacy_recording_id,
            archives,
        };
        let ids = RecordingIds {
            channel_id: channel_id.to_owned(),
            session_id,
            recording_id: recording.recording_id.clone(),
        };
        self.recordings.push(recording);
        let index = self.recordings.len() - 1;
        if let Some(session) = self.sessions.get_mut(channel_id) {
            session.recording = Some(index);
        }
        Ok(ids)
    }

    /// Ends the channel's live recording, if any, and queues its webhooks.
    fn end_recording(&mut self, channel_id: &str, reason: EndReason, at: Millis) -> Option<RecordingIds> {
        let index = self.sessions.get_mut(channel_id)?.recording.take()?;
        let recording = &mut self.recordings[index];
        recording.ended_at = Some(at);
        recording.end_reason = Some(reason);
        let ids = RecordingIds {
            channel_id: recording.channel_id.clone(),
            session_id: recording.session_id.clone(),
            recording_id: recording.recording_id.clone(),
        };
        self.effects.push(Effect::RecordingEnded(recording.clone()));
        Some(ids)
    }

    fn destroy_session(&mut self, channel_id: &str, at: Millis) {
        self.end_recording(channel_id, EndReason::SessionDestroyed, at);
        if let Some(session) = self.sessions.remove(channel_id) {
            self.effects
                .push(Effect::SessionDestroyed { channel_id: session.channel_id, session_id: session.session_id });
        }
    }
}

#[cfg(test)]
mod tests;

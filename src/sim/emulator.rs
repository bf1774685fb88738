//! The shared emulator handle: state, journal, fault rules and webhooks, used by every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::SimOptions;
use super::clock::{self, Millis};
use super::faults::FaultRules;
use super::journal::{JOURNAL_CAPACITY, Journal};
use super::payloads;
use super::state::{ConnectRequest, Joined, SimState};
use super::webhooks::Webhooks;

/// Everything a request handler needs.
pub struct Emulator {
    pub options: SimOptions,
    pub journal: Mutex<Journal>,
    pub faults: Mutex<FaultRules>,
    state: Mutex<SimState>,
    pub(super) webhooks: Webhooks,
    /// Serialises connects per channel, so a second client waits while the first one's
    /// `session.created` webhook is in flight. One small entry per channel ever seen.
    channel_gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Emulator {
    pub fn new(options: SimOptions, webhooks: Webhooks) -> Self {
        let linger = u64::try_from(options.session_linger.as_millis()).unwrap_or(u64::MAX);
        Self {
            options,
            journal: Mutex::new(Journal::new(JOURNAL_CAPACITY)),
            faults: Mutex::new(FaultRules::default()),
            state: Mutex::new(SimState::new(linger)),
            webhooks,
            channel_gates: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `operation` on the state at the current time, then queues the webhooks it caused.
    ///
    /// The queueing happens under the state lock so webhooks keep the order of the changes.
    pub fn mutate<T>(&self, operation: impl FnOnce(&mut SimState, Millis) -> T) -> T {
        let mut state = lock(&self.state);
        let now = clock::now_millis();
        let result = operation(&mut state, now);
        let effects = state.take_effects();
        if !effects.is_empty() {
            self.webhooks.queue_effects(effects, now);
        }
        result
    }

    /// Renders the state after applying whatever became due (expiry, linger).
    pub fn view<T>(&self, render: impl FnOnce(&SimState) -> T) -> T {
        self.mutate(|state, now| {
            state.advance(now);
            render(state)
        })
    }

    /// Applies whatever became due; called by the background ticker.
    pub fn tick(&self) {
        self.mutate(SimState::advance);
    }

    /// Connects a client. A new session is announced with `session.created` (when configured)
    /// and becomes visible only after the reply, recording if the reply asks for it.
    ///
    /// Runs as its own task so a caller that hangs up cannot leave a session half-created.
    pub async fn connect(self: &Arc<Self>, request: ConnectRequest) -> Result<Joined, tokio::task::JoinError> {
        let emulator = Arc::clone(self);
        tokio::spawn(async move { emulator.connect_in_turn(request).await }).await
    }

    async fn connect_in_turn(&self, request: ConnectRequest) -> Joined {
        let gate = self.channel_gate(&request.channel_id);
        let _turn = gate.lock().await;
        let announce = self.webhooks.has_session_webhook();
        let (joined, joined_at) = self.mutate(|state, now| {
            let joined = state.connect(request, now);
            if joined.session_created && !announce {
                log_activation(&joined, state.activate_session(&joined.session_id, None, now));
            }
            (joined, now)
        });
        if joined.session_created && announce {
            let payload =
                payloads::session_created(&joined.channel_id, &joined.session_id, joined_at, clock::now_millis());
            let reply = self.webhooks.send_session_created(&payload).await;
            let recording = reply.and_then(|(status, body)| {
                payloads::requested_recording(status, &body)
                    .inspect_err(|error_type| {
                        tracing::warn!(%error_type, session_id = %joined.session_id, "session.created reply has bad recording options; not recording");
                    })
                    .ok()
                    .flatten()
            });
            self.mutate(|state, now| {
                log_activation(&joined, state.activate_session(&joined.session_id, recording, now));
            });
        }
        joined
    }

    fn channel_gate(&self, channel_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.channel_gates).entry(channel_id.to_owned()).or_default())
    }
}

fn log_activation(joined: &Joined, outcome: Result<Option<super::state::RecordingIds>, super::state::StateError>) {
    match outcome {
        Ok(Some(ids)) => {
            tracing::info!(session_id = %ids.session_id, recording_id = %ids.recording_id, "session created, recording")
        }
        Ok(None) => tracing::info!(session_id = %joined.session_id, channel_id = %joined.channel_id, "session created"),
        Err(error) => tracing::warn!(session_id = %joined.session_id, %error, "session could not be activated"),
    }
}

/// Locks `mutex`, carrying on after a panic elsewhere: the data is plain state, never half-written
/// across an await.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

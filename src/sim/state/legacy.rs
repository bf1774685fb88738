//! Legacy recording orders in the state machine: at most one standing order per channel, and
//! while it stands every session of the channel records, one session recording after another,
//! all tagged with the order's legacy `recording_id`.
//!
//! A session records for its order when the order is placed (if the session exists and is not
//! recording yet) and when the session is activated. Stop and expiry end the order and its live
//! session recording at once; a session destroyed while the order stands just ends its recording.

use super::{EndReason, RecordingIds, SimState, StartedBy};
use crate::sim::clock::Millis;
use crate::sim::legacy::order::LegacyOrder;
use crate::sim::legacy::request::LegacyStart;

/// Why a legacy order operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LegacyOrderError {
    #[error("the channel already has a standing legacy order")]
    AlreadyOrdered,
    #[error("the channel has no standing legacy order")]
    NotOrdered,
}

impl LegacyOrderError {
    /// The `error_type` legacy Sora answered with.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::AlreadyOrdered => "STARTED-RECORDING",
            Self::NotOrdered => "NOT-STARTED-RECORDING",
        }
    }
}

impl SimState {
    /// Legacy `StartRecording`: places the order and records the channel's session, if any, at once.
    pub fn start_legacy_order(&mut self, request: LegacyStart, now: Millis) -> Result<LegacyOrder, LegacyOrderError> {
        self.advance(now);
        if self.legacy_orders.contains_key(&request.channel_id) {
            return Err(LegacyOrderError::AlreadyOrdered);
        }
        let order = LegacyOrder::new(request, now);
        self.legacy_orders.insert(order.channel_id.clone(), order.clone());
        self.record_for_legacy_order(&order.channel_id, now);
        Ok(order)
    }

    /// Legacy `StopRecording`: withdraws the order and ends its live session recording.
    pub fn stop_legacy_order(&mut self, channel_id: &str, now: Millis) -> Result<LegacyOrder, LegacyOrderError> {
        self.advance(now);
        let order = self.legacy_orders.remove(channel_id).ok_or(LegacyOrderError::NotOrdered)?;
        self.end_legacy_recording(&order, EndReason::Stopped, now);
        Ok(order)
    }

    /// The channel's standing order, as of the last [`SimState::advance`].
    pub fn legacy_order(&self, channel_id: &str) -> Option<&LegacyOrder> {
        self.legacy_orders.get(channel_id)
    }

    /// Every standing order, sorted by channel id.
    pub fn legacy_orders(&self) -> impl Iterator<Item = &LegacyOrder> {
        self.legacy_orders.values()
    }

    /// Starts a recording for the channel's order in its active session, unless there is no order,
    /// no active session, or the session records already.
    pub(super) fn record_for_legacy_order(&mut self, channel_id: &str, now: Millis) -> Option<RecordingIds> {
        let order = self.legacy_orders.get(channel_id)?;
        let options = order.session_options(now);
        let legacy_recording_id = Some(order.recording_id.clone());
        self.begin_recording(channel_id, options, StartedBy::Legacy, legacy_recording_id, now).ok()
    }

    /// Drops the orders whose deadline passed by `now`, ending their recordings as expired at the
    /// deadline, unless the session lingered out before (the linger then ends it as destroyed).
    pub(super) fn expire_legacy_orders(&mut self, now: Millis) {
        let due: Vec<(String, Millis)> = self
            .legacy_orders
            .values()
            .filter_map(|order| {
                order.deadline().filter(|deadline| *deadline <= now).map(|d| (order.channel_id.clone(), d))
            })
            .collect();
        for (channel_id, deadline) in due {
            let Some(order) = self.legacy_orders.remove(&channel_id) else { continue };
            let lingered_out_first = self
                .sessions
                .get(&channel_id)
                .and_then(|session| session.linger_until)
                .is_some_and(|linger_until| linger_until < deadline);
            if !lingered_out_first {
                self.end_legacy_recording(&order, EndReason::Expired, deadline);
            }
        }
    }

    /// Ends the channel's live recording if it belongs to `order`.
    fn end_legacy_recording(&mut self, order: &LegacyOrder, reason: EndReason, at: Millis) {
        let belongs_to_order = self
            .sessions
            .get(&order.channel_id)
            .and_then(|session| self.live_recording(session))
            .is_some_and(|recording| recording.legacy_recording_id.as_deref() == Some(order.recording_id.as_str()));
        if belongs_to_order {
            self.end_recording(&order.channel_id, reason, at);
        }
    }
}

#[cfg(test)]
mod tests;

//! The legacy recording API (`Sora_20161101.*`) with legacy Sora's own semantics, served only in
//! `--legacy` mode so the emulator can act as an oracle for the shim.
//!
//! A StartRecording leaves a standing [`order::LegacyOrder`] on its channel, whether or not anyone
//! is connected; the state machine then records every session of the channel until the order is
//! stopped or expires. Replies have legacy Sora's shapes; errors are 400 `{"error_type":"NAME"}`.

pub mod archiving;
pub mod order;
pub mod request;

use serde_json::Value;

use crate::sim::emulator::Emulator;
use crate::sim::state::LegacyOrderError;
use order::LegacyOrder;
use request::{LegacyStart, channel_id_of};

const START_RECORDING: &str = "Sora_20161101.StartRecording";
const STOP_RECORDING: &str = "Sora_20161101.StopRecording";
const GET_STARTED_RECORDING: &str = "Sora_20161101.GetStartedRecording";
const LIST_STARTED_RECORDING: &str = "Sora_20161101.ListStartedRecording";
const LIST_ARCHIVING: &str = "Sora_20161101.ListArchiving";

/// The answer to `target` when it is a legacy target: the JSON reply or the `error_type`.
/// The two list targets ignore their body.
pub fn answer_target(emulator: &Emulator, target: &str, body: &[u8]) -> Option<Result<Value, &'static str>> {
    let answer = match target {
        START_RECORDING => start_recording(emulator, body),
        STOP_RECORDING => stop_recording(emulator, body),
        GET_STARTED_RECORDING => get_started_recording(emulator, body),
        LIST_STARTED_RECORDING => {
            Ok(emulator.view(|state| state.legacy_orders().map(LegacyOrder::started_reply).collect()))
        }
        LIST_ARCHIVING => Ok(emulator.mutate(|state, now| {
            state.advance(now);
            archiving::entries(state, now)
        })),
        _ => return None,
    };
    Some(answer)
}

fn start_recording(emulator: &Emulator, body: &[u8]) -> Result<Value, &'static str> {
    let request = LegacyStart::parse(body)?;
    let order =
        emulator.mutate(|state, now| state.start_legacy_order(request, now)).map_err(LegacyOrderError::error_type)?;
    tracing::info!(channel_id = %order.channel_id, recording_id = %order.recording_id, expire_time = order.expire_time, "legacy recording ordered");
    Ok(order.start_reply())
}

fn stop_recording(emulator: &Emulator, body: &[u8]) -> Result<Value, &'static str> {
    let channel_id = channel_id_of(body)?;
    let order = emulator
        .mutate(|state, now| state.stop_legacy_order(&channel_id, now))
        .map_err(LegacyOrderError::error_type)?;
    tracing::info!(channel_id = %order.channel_id, recording_id = %order.recording_id, "legacy recording stopped");
    Ok(serde_json::json!({ "channel_id": order.channel_id }))
}

fn get_started_recording(emulator: &Emulator, body: &[u8]) -> Result<Value, &'static str> {
    let channel_id = channel_id_of(body)?;
    emulator
        .view(|state| state.legacy_order(&channel_id).map(LegacyOrder::started_reply))
        .ok_or(LegacyOrderError::NotOrdered.error_type())
}

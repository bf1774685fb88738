//! GetStartedRecording and ListStartedRecording: answered from the store alone.

use serde_json::{Value, json};

use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::store::Order;

/// The legacy shape of an active order (the seed's six keys).
pub fn order_json(order: &Order) -> Value {
    json!({
        "channel_id": order.channel_id,
        "created_at": order.created_at,
        "expire_time": order.expire_time,
        "expired_at": order.expired_at,
        "recording_id": order.recording_id,
        "split_only": order.split_only,
    })
}

pub async fn get_started(app: &App, channel_id: String) -> Result<Value, ShimError> {
    match app.store.active_order(&channel_id, now_secs()).await? {
        Some(order) => Ok(order_json(&order)),
        None => Err(ShimError::NotStartedRecording(channel_id)),
    }
}

pub async fn list_started(app: &App) -> Result<Value, ShimError> {
    let orders = app.store.active_orders(now_secs()).await?;
    Ok(Value::Array(orders.iter().map(order_json).collect()))
}

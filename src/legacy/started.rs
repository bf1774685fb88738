//! GetStartedRecording and ListStartedRecording: answered from the store alone.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::app::{App, now_secs};
use crate::error::ShimError;
use crate::store::Order;

/// The legacy shape of an active order: the seed's six keys, declared in sorted order so the
/// serialised object has sorted keys like every other reply.
#[derive(Serialize)]
struct StartedView<'a> {
    channel_id: &'a str,
    created_at: i64,
    expire_time: i64,
    expired_at: i64,
    recording_id: &'a str,
    split_only: bool,
}

impl<'a> From<&'a Order> for StartedView<'a> {
    fn from(order: &'a Order) -> Self {
        Self {
            channel_id: &order.channel_id,
            created_at: order.created_at,
            expire_time: order.expire_time,
            expired_at: order.expired_at,
            recording_id: &order.recording_id,
            split_only: order.split_only,
        }
    }
}

/// The legacy shape of an active order as a JSON value.
pub fn order_json(order: &Order) -> Value {
    serde_json::to_value(StartedView::from(order)).expect("six plain fields always serialise")
}

pub async fn get_started(app: &App, channel_id: String) -> Result<Value, ShimError> {
    match app.store.active_order(&channel_id, now_secs()).await? {
        Some(order) => Ok(order_json(&order)),
        None => Err(ShimError::NotStartedRecording(channel_id)),
    }
}

/// Every active order, sorted by `channel_id`, serialised straight from the rows: no JSON tree
/// is built, so a long list costs the orders and the bytes, nothing more.
pub async fn list_started(app: &App) -> Result<Bytes, ShimError> {
    let orders = app.store.active_orders(now_secs()).await?;
    let views: Vec<StartedView<'_>> = orders.iter().map(StartedView::from).collect();
    let bytes = serde_json::to_vec(&views).map_err(|error| ShimError::Internal(error.to_string()))?;
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(channel_id: &str) -> Order {
        Order {
            recording_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            channel_id: channel_id.into(),
            created_at: 1_000,
            expire_time: 60,
            expired_at: 1_060,
            split_duration: Some(30),
            split_only: false,
            metadata: Some(serde_json::json!({"room": "r1"})),
        }
    }

    #[test]
    fn the_view_has_the_six_legacy_keys_sorted_and_no_options_or_metadata() {
        let text = serde_json::to_string(&StartedView::from(&order("sora"))).unwrap();
        assert_eq!(
            text,
            r#"{"channel_id":"sora","created_at":1000,"expire_time":60,"expired_at":1060,"recording_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","split_only":false}"#
        );
        // The value form serialises to the same bytes (serde_json's maps keep keys sorted).
        assert_eq!(serde_json::to_string(&order_json(&order("sora"))).unwrap(), text);
    }
}

//! Fault rules for tests: delay, replace or drop answers to matching API requests.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value, json};

/// What happens to a request once its delay is over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAnswer {
    /// Handle it normally (the rule only adds latency).
    Handle,
    /// Close the connection without answering.
    Drop,
    /// Answer `status` with `body` instead of handling it.
    Reply { status: StatusCode, body: String },
}

/// What the API layer must do for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultAction {
    pub latency: Duration,
    pub answer: FaultAnswer,
}

/// One rule as posted to `/sim/faults`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// `None` matches every API request (`"*"`).
    pub target: Option<String>,
    pub action: FaultAction,
    /// How many more requests the rule applies to; `None` is unlimited.
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// Reads a rule; `status` without `body` answers `{"error_type":"FAULT-INJECTED"}`, `body`
    /// without `status` answers 500, and `drop` wins over both.
    pub fn from_fields(fields: &Map<String, Value>) -> Result<Self, &'static str> {
        let target = match fields.get("target") {
            None => None,
            Some(Value::String(target)) if target == "*" => None,
            Some(Value::String(target)) if !target.is_empty() => Some(target.clone()),
            Some(_) => return Err("INVALID-TARGET"),
        };
        let latency_ms =
            fields.get("latency_ms").map(|value| value.as_u64().ok_or("INVALID-LATENCY-MS")).transpose()?;
        let status = fields
            .get("status")
            .map(|value| {
                value
                    .as_u64()
                    .and_then(|code| u16::try_from(code).ok())
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .ok_or("INVALID-STATUS")
            })
            .transpose()?;
        let body =
            fields.get("body").map(|value| value.as_str().map(str::to_owned).ok_or("INVALID-BODY")).transpose()?;
        let drop = fields.get("drop").map(|value| value.as_bool().ok_or("INVALID-DROP")).transpose()?.unwrap_or(false);
        let remaining = fields
            .get("times")
            .map(|value| value.as_u64().filter(|times| *times > 0).ok_or("INVALID-TIMES"))
            .transpose()?;
        let answer = if drop {
            FaultAnswer::Drop
        } else if status.is_some() || body.is_some() {
            FaultAnswer::Reply {
                status: status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body: body.unwrap_or_else(|| json!({"error_type": "FAULT-INJECTED"}).to_string()),
            }
        } else {
            FaultAnswer::Handle
        };
        let latency = Duration::from_millis(latency_ms.unwrap_or(0));
        Ok(Self { target, action: FaultAction { latency, answer }, remaining })
    }

    fn matches(&self, target: Option<&str>) -> bool {
        self.target.as_deref().is_none_or(|wanted| target == Some(wanted))
    }

    fn to_json(&self) -> Value {
        let (status, body, drop) = match &self.action.answer {
            FaultAnswer::Handle => (None, None, false),
            FaultAnswer::Drop => (None, None, true),
            FaultAnswer::Reply { status, body } => (Some(status.as_u16()), Some(body.clone()), false),
        };
        json!({
            "target": self.target.as_deref().unwrap_or("*"),
            "latency_ms": u64::try_from(self.action.latency.as_millis()).unwrap_or(u64::MAX),
            "status": status,
            "body": body,
            "drop": drop,
            "times": self.remaining,
        })
    }
}

/// The active rules, checked in the order they were added.
#[derive(Debug, Default)]
pub struct FaultRules {
    rules: Vec<FaultRule>,
}

impl FaultRules {
    /// Adds a rule after the existing ones.
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    /// Removes every rule and says how many there were.
    pub fn clear(&mut self) -> usize {
        std::mem::take(&mut self.rules).len()
    }

    /// The first rule matching `target` applies once: its count goes down and a used-up rule goes away.
    pub fn take_match(&mut self, target: Option<&str>) -> Option<FaultAction> {
        let index = self.rules.iter().position(|rule| rule.matches(target))?;
        let rule = &mut self.rules[index];
        let action = rule.action.clone();
        if let Some(remaining) = &mut rule.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.rules.remove(index);
            }
        }
        Some(action)
    }

    /// The rules as a JSON array, as `GET /sim/faults` shows them.
    pub fn to_json(&self) -> Value {
        self.rules.iter().map(FaultRule::to_json).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: Value) -> Result<FaultRule, &'static str> {
        FaultRule::from_fields(value.as_object().expect("test input is an object"))
    }

    #[test]
    fn an_empty_rule_matches_everything_forever_without_changing_answers() {
        let mut rules = FaultRules::default();
        rules.add(rule(json!({})).expect("valid rule"));
        for target in [None, Some("A.B")] {
            assert_eq!(
                rules.take_match(target),
                Some(FaultAction { latency: Duration::ZERO, answer: FaultAnswer::Handle })
            );
        }
    }

    #[test]
    fn a_targeted_rule_applies_only_to_its_target_and_only_so_often() {
        let mut rules = FaultRules::default();
        rules.add(rule(json!({"target": "A.B", "status": 503, "body": "{}", "times": 2})).expect("valid rule"));
        let expected = FaultAction {
            latency: Duration::ZERO,
            answer: FaultAnswer::Reply { status: StatusCode::SERVICE_UNAVAILABLE, body: "{}".into() },
        };
        assert_eq!(rules.take_match(Some("C.D")), None);
        assert_eq!(rules.take_match(None), None);
        assert_eq!(rules.take_match(Some("A.B")), Some(expected.clone()));
        assert_eq!(rules.to_json()[0]["times"], 1);
        assert_eq!(rules.take_match(Some("A.B")), Some(expected));
        assert_eq!(rules.take_match(Some("A.B")), None);
    }

    #[test]
    fn rules_apply_in_order_and_clear() {
        let mut rules = FaultRules::default();
        rules.add(rule(json!({"drop": true, "status": 500, "times": 1})).expect("valid rule"));
        rules.add(rule(json!({"latency_ms": 20})).expect("valid rule"));
        assert_eq!(rules.take_match(None).map(|action| action.answer), Some(FaultAnswer::Drop));
        assert_eq!(rules.take_match(None).map(|action| action.latency), Some(Duration::from_millis(20)));
        assert_eq!(rules.clear(), 1);
        assert_eq!(rules.take_match(None), None);
    }

    #[test]
    fn fills_in_missing_status_or_body() {
        let only_status = rule(json!({"status": 429})).expect("valid rule");
        assert_eq!(
            only_status.action.answer,
            FaultAnswer::Reply {
                status: StatusCode::TOO_MANY_REQUESTS,
                body: r#"{"error_type":"FAULT-INJECTED"}"#.into()
            }
        );
        let only_body = rule(json!({"body": "x"})).expect("valid rule");
        assert_eq!(
            only_body.action.answer,
            FaultAnswer::Reply { status: StatusCode::INTERNAL_SERVER_ERROR, body: "x".into() }
        );
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(rule(json!({"target": 1})), Err("INVALID-TARGET"));
        assert_eq!(rule(json!({"target": ""})), Err("INVALID-TARGET"));
        assert_eq!(rule(json!({"latency_ms": -1})), Err("INVALID-LATENCY-MS"));
        assert_eq!(rule(json!({"status": 99})), Err("INVALID-STATUS"));
        assert_eq!(rule(json!({"status": 70_000})), Err("INVALID-STATUS"));
        assert_eq!(rule(json!({"body": {}})), Err("INVALID-BODY"));
        assert_eq!(rule(json!({"drop": "yes"})), Err("INVALID-DROP"));
        assert_eq!(rule(json!({"times": 0})), Err("INVALID-TIMES"));
    }
}

//! The request journal: what reached the emulated Sora API, byte for byte, for tests to inspect.

use std::collections::VecDeque;

use http::request::Parts;
use serde_json::{Value, json};

/// How many requests the journal keeps; older ones are forgotten.
pub const JOURNAL_CAPACITY: usize = 10_000;

/// One API request as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub target: Option<String>,
    /// Names lower-case as hyper gives them, values lossy UTF-8.
    pub headers: Vec<(String, String)>,
    /// Lossy UTF-8 of the exact body bytes.
    pub body: String,
}

impl JournalEntry {
    /// Describes a request; `seq` is assigned by [`Journal::record`].
    pub fn from_request(parts: &Parts, target: Option<String>, body: &[u8]) -> Self {
        Self {
            seq: 0,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            target,
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    fn to_json(&self) -> Value {
        let headers: Vec<Value> = self.headers.iter().map(|(name, value)| json!([name, value])).collect();
        json!({
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "target": self.target,
            "headers": headers,
            "body": self.body,
        })
    }
}

/// Which entries `GET /sim/requests` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalFilter {
    /// Only requests with exactly this `x-sora-target`.
    pub target: Option<String>,
    /// Only requests with a larger `seq`.
    pub since: Option<u64>,
}

impl JournalFilter {
    /// Reads `target=` and `since=` from a raw query string; other parameters are ignored.
    pub fn from_query(query: Option<&str>) -> Result<Self, &'static str> {
        let mut filter = Self::default();
        for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(name).as_str() {
                "target" => filter.target = Some(percent_decode(value)),
                "since" => filter.since = Some(percent_decode(value).parse().map_err(|_| "INVALID-SINCE")?),
                _ => {}
            }
        }
        Ok(filter)
    }

    fn accepts(&self, entry: &JournalEntry) -> bool {
        self.target.as_ref().is_none_or(|target| entry.target.as_ref() == Some(target))
            && self.since.is_none_or(|since| entry.seq > since)
    }
}

/// The last [`JOURNAL_CAPACITY`] API requests.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<JournalEntry>,
    capacity: usize,
    last_seq: u64,
}

impl Journal {
    /// An empty journal keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { entries: VecDeque::new(), capacity, last_seq: 0 }
    }

    /// Appends `entry` with the next sequence number (starting at 1) and returns that number.
    pub fn record(&mut self, mut entry: JournalEntry) -> u64 {
        self.last_seq += 1;
        entry.seq = self.last_seq;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        self.last_seq
    }

    /// The matching entries, oldest first, as a JSON array.
    pub fn to_json(&self, filter: &JournalFilter) -> Value {
        self.entries.iter().filter(|entry| filter.accepts(entry)).map(JournalEntry::to_json).collect()
    }
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component; malformed escapes stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[index]) {
            (Some(byte), _) => {
                decoded.push(byte);
                index += 3;
            }
            (None, b'+') => {
                decoded.push(b' ');
                index += 1;
            }
            (None, byte) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: Option<&str>, body: &[u8]) -> JournalEntry {
        let request = http::Request::post("/api?x=1")
            .header("x-sora-target", target.unwrap_or(""))
            .header("X-Custom", "a")
            .header("x-custom", "b")
            .body(())
            .expect("valid request");
        let (parts, ()) = request.into_parts();
        JournalEntry::from_request(&parts, target.map(str::to_owned), body)
    }

    #[test]
    fn records_the_request_as_received() {
        let recorded = entry(Some("T"), b"{ \"a\" :1}\xff");
        assert_eq!(recorded.method, "POST");
        assert_eq!(recorded.path, "/api");
        assert_eq!(recorded.query.as_deref(), Some("x=1"));
        assert_eq!(recorded.body, "{ \"a\" :1}\u{fffd}");
        assert_eq!(
            recorded.headers,
            [("x-sora-target".into(), "T".into()), ("x-custom".into(), "a".into()), ("x-custom".into(), "b".into())]
        );
    }

    #[test]
    fn numbers_entries_and_forgets_the_oldest() {
        let mut journal = Journal::new(2);
        for _ in 0..3 {
            journal.record(entry(None, b""));
        }
        let seqs: Vec<u64> = journal.entries.iter().map(|entry| entry.seq).collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn filters_by_target_and_since() {
        let mut journal = Journal::new(10);
        journal.record(entry(Some("A.B"), b"1"));
        journal.record(entry(Some("C.D"), b"2"));
        journal.record(entry(Some("A.B"), b"3"));
        let filter = JournalFilter::from_query(Some("target=A.B&since=1&other")).expect("valid query");
        let bodies: Vec<Value> =
            journal.to_json(&filter).as_array().into_iter().flatten().map(|e| e["body"].clone()).collect();
        assert_eq!(bodies, [json!("3")]);
        assert_eq!(journal.to_json(&JournalFilter::default()).as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn rejects_a_bad_since() {
        assert_eq!(JournalFilter::from_query(Some("since=x")), Err("INVALID-SINCE"));
    }

    #[test]
    fn decodes_query_components() {
        assert_eq!(percent_decode("Sora_20231220.Start%52ecording"), "Sora_20231220.StartRecording");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }
}

//! Wall-clock helpers: Unix milliseconds for the state machine and RFC 3339 text for webhooks.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as milliseconds since the Unix epoch.
pub type Millis = u64;

/// The current wall-clock time.
pub fn now_millis() -> Millis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Whole Unix seconds, the unit Sora uses for `*_timestamp` fields.
pub fn unix_seconds(at: Millis) -> u64 {
    at / 1000
}

/// `at` as RFC 3339 UTC text with milliseconds, e.g. `2023-11-14T22:13:20.000Z`.
pub fn rfc3339(at: Millis) -> String {
    let seconds_of_epoch = at / 1000;
    let days = i64::try_from(seconds_of_epoch / 86_400).unwrap_or(i64::MAX);
    let second_of_day = seconds_of_epoch % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        at % 1000
    )
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day).
///
/// Counts in 400-year eras that start on 1 March, so the leap day falls at the end of a year.
fn civil_date(days_since_epoch: i64) -> (i64, i64, i64) {
    const DAYS_PER_ERA: i64 = 146_097;
    let days_since_era_zero = days_since_epoch + 719_468;
    let era = days_since_era_zero.div_euclid(DAYS_PER_ERA);
    let day_of_era = days_since_era_zero.rem_euclid(DAYS_PER_ERA);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / (DAYS_PER_ERA - 1)) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_based_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_based_month + 2) / 5 + 1;
    let month = if march_based_month < 10 { march_based_month + 3 } else { march_based_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn formats_a_known_instant_with_milliseconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn handles_leap_days() {
        // 2000-02-29T12:00:00Z and the day after.
        assert_eq!(rfc3339(951_825_600_000), "2000-02-29T12:00:00.000Z");
        assert_eq!(rfc3339(951_825_600_000 + 86_400_000), "2000-03-01T12:00:00.000Z");
        // 2024-12-31T23:59:59.999Z, the last instant of a leap year.
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn seconds_truncate() {
        assert_eq!(unix_seconds(1_999), 1);
    }
}

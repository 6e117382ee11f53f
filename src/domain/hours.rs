//! A department's online hours: weekly time ranges in a time zone, e.g.
//! `mon-fri 09:00-17:30; sat 10:00-14:00` in `Europe/Berlin`. Parsed once when saved (so a
//! mistake is refused then) and checked against an instant the caller passes, so tests can
//! use fixed instants. The time zone comes from jiff's bundled tz database: DST and offsets
//! are the zone's, not the server's.

use std::fmt;

use jiff::{Timestamp, tz::TimeZone};

const DAY: u32 = 24 * 60;
const WEEK: u32 = 7 * DAY;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Weekly ranges in a time zone. Empty ranges are not allowed: "no hours set" is `None` in
/// the department.
#[derive(Debug, Clone)]
pub struct OnlineHours {
    /// `(first day 0 = Monday, start minute, end minute)`; an end at or before the start runs
    /// over midnight into the next day.
    ranges: Vec<(u8, u32, u32)>,
    /// The text as normalised when parsed (what is stored and shown).
    text: String,
    zone: TimeZone,
    zone_name: String,
}

impl OnlineHours {
    /// Parses `hours` (see the module doc) for the IANA zone `zone` (e.g. `Europe/Berlin`,
    /// `UTC`). Errors say what is wrong, for the CLI and the back office.
    pub fn parse(hours: &str, zone: &str) -> Result<Self, String> {
        let zone_name = zone.trim();
        let tz = TimeZone::get(zone_name).map_err(|_| {
            format!("`{zone_name}` is not a time zone name like Europe/Berlin or UTC")
        })?;
        let mut ranges = Vec::new();
        let mut entries: Vec<String> = Vec::new();
        let mut pending_days: Vec<u8> = Vec::new();
        let mut pending_text: Vec<String> = Vec::new();
        for piece in hours.split([';', ',']).map(str::trim) {
            if piece.is_empty() {
                continue;
            }
            let mut words = piece.split_whitespace();
            let days_word = words.next().unwrap_or_default();
            let days = parse_days(days_word)?;
            pending_days.extend(days.iter().copied());
            pending_text.push(days_word.to_ascii_lowercase());
            let times: Vec<&str> = words.collect();
            if times.is_empty() {
                continue; // "mon, wed 09:00-12:00": the days carry over to the next piece
            }
            let mut spans = Vec::new();
            for t in &times {
                let (start, end) = parse_range(t)?;
                spans.push(format!("{}-{}", hhmm(start), hhmm(end)));
                for &day in &pending_days {
                    ranges.push((day, start, end));
                }
            }
            entries.push(format!("{} {}", pending_text.join(","), spans.join(" ")));
            pending_days.clear();
            pending_text.clear();
        }
        if !pending_days.is_empty() {
            return Err(format!(
                "`{}` has no time range (write e.g. `mon-fri 09:00-17:00`)",
                pending_text.join(",")
            ));
        }
        if ranges.is_empty() {
            return Err("no online hours given (write e.g. `mon-fri 09:00-17:00`)".into());
        }
        Ok(Self {
            ranges,
            text: entries.join("; "),
            zone: tz,
            zone_name: zone_name.to_owned(),
        })
    }

    /// Whether `at` falls within the hours, in the hours' time zone.
    pub fn is_open_at(&self, at: Timestamp) -> bool {
        let local = at.to_zoned_datetime(self.zone.clone());
        let day = u32::from(local.weekday().to_monday_zero_offset() as u8);
        let minute = local.hour() as u32 * 60 + local.minute() as u32;
        let now = day * DAY + minute;
        self.ranges.iter().any(|&(d, start, end)| {
            let from = u32::from(d) * DAY + start;
            let to = u32::from(d) * DAY + if end <= start { end + DAY } else { end };
            // A range from Sunday night into Monday wraps around the week.
            (from..to).contains(&now) || (from..to).contains(&(now + WEEK))
        })
    }

    /// The normalised ranges, e.g. `mon-fri 09:00-17:30; sat 10:00-14:00`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The time zone's name as given.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The time zone, for showing times to operators.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

impl fmt::Display for OnlineHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.zone_name)
    }
}

/// Checks a time zone name on its own (departments without hours still have one, for times
/// shown in posts).
pub fn parse_zone(zone: &str) -> Result<TimeZone, String> {
    TimeZone::get(zone.trim()).map_err(|_| {
        format!(
            "`{}` is not a time zone name like Europe/Berlin or UTC",
            zone.trim()
        )
    })
}

fn parse_day(word: &str) -> Option<u8> {
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    DAY_NAMES
        .iter()
        .position(|d| w.starts_with(d) && full_day_name(d).starts_with(&w))
        .map(|i| i as u8)
}

fn full_day_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn parse_days(word: &str) -> Result<Vec<u8>, String> {
    let w = word.to_ascii_lowercase();
    if matches!(w.as_str(), "daily" | "everyday" | "mon-sun") {
        return Ok((0..7).collect());
    }
    let bad = || {
        format!(
            "`{word}` is not a day or range of days (mon, tue, wed, thu, fri, sat, sun, e.g. `mon-fri`, or `daily`)"
        )
    };
    match w.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_day(a).ok_or_else(bad)?, parse_day(b).ok_or_else(bad)?);
            // `fri-mon` wraps over the weekend.
            let mut days = vec![a];
            let mut d = a;
            while d != b {
                d = (d + 1) % 7;
                days.push(d);
            }
            Ok(days)
        }
        None => Ok(vec![parse_day(&w).ok_or_else(bad)?]),
    }
}

fn parse_time(text: &str, is_end: bool) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if is_end => Some(DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{text}` is not a time range like 09:00-17:30");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let start = parse_time(a, false).ok_or_else(bad)?;
    let end = parse_time(b, true).ok_or_else(bad)?;
    if start == end {
        return Err(format!("`{text}` is empty: start and end are the same"));
    }
    Ok((start, end))
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        rfc3339.parse().unwrap()
    }

    #[test]
    fn weekday_hours_in_the_zone_not_in_utc() {
        let hours = OnlineHours::parse("mon-fri 09:00-17:30", "Europe/Berlin").unwrap();
        let cases = [
            // Monday 07:30 UTC is 09:30 in Berlin (summer time, UTC+2).
            ("2024-07-01T07:30:00Z", true, "Monday morning in Berlin"),
            ("2024-07-01T06:59:00Z", false, "08:59 in Berlin"),
            ("2024-07-01T15:29:00Z", true, "17:29 in Berlin"),
            ("2024-07-01T15:30:00Z", false, "17:30 in Berlin: closed"),
            // Winter: UTC+1.
            ("2024-01-08T08:00:00Z", true, "09:00 in Berlin in winter"),
            ("2024-01-08T07:59:00Z", false, "08:59 in Berlin in winter"),
            ("2024-07-06T10:00:00Z", false, "Saturday"),
        ];
        for (instant, open, why) in cases {
            assert_eq!(hours.is_open_at(at(instant)), open, "{why}");
        }
    }

    #[test]
    fn the_local_day_decides_across_the_date_line() {
        // Sunday 22:00 UTC is Monday 10:00 (NZST, UTC+12) in Auckland.
        let auckland = OnlineHours::parse("mon 09:00-17:00", "Pacific/Auckland").unwrap();
        assert!(auckland.is_open_at(at("2024-07-07T22:00:00Z")));
        let utc = OnlineHours::parse("mon 09:00-17:00", "UTC").unwrap();
        assert!(!utc.is_open_at(at("2024-07-07T22:00:00Z")));
        // Monday 15:00 UTC is already Tuesday 03:00 in Auckland.
        assert!(!auckland.is_open_at(at("2024-07-08T15:00:00Z")));
        assert!(utc.is_open_at(at("2024-07-08T15:00:00Z")));
    }

    #[test]
    fn ranges_over_midnight_and_over_the_week_end() {
        let hours = OnlineHours::parse("sun 22:00-02:00", "UTC").unwrap();
        assert!(hours.is_open_at(at("2024-07-07T23:00:00Z")), "Sunday 23:00");
        assert!(hours.is_open_at(at("2024-07-08T01:59:00Z")), "Monday 01:59");
        assert!(
            !hours.is_open_at(at("2024-07-08T02:00:00Z")),
            "Monday 02:00"
        );
        let all_day = OnlineHours::parse("daily 00:00-24:00", "UTC").unwrap();
        assert!(all_day.is_open_at(at("2024-07-07T23:59:00Z")));
    }

    #[test]
    fn several_entries_are_normalised() {
        let hours = OnlineHours::parse(
            "Mon-Fri 9:00-12:00 13:00-17:00, Saturday 10:00-14:00; mon, wed 18:00-20:00",
            "UTC",
        )
        .unwrap();
        assert_eq!(
            hours.text(),
            "mon-fri 09:00-12:00 13:00-17:00; saturday 10:00-14:00; mon,wed 18:00-20:00"
        );
        assert!(
            hours.is_open_at(at("2024-07-03T19:00:00Z")),
            "Wednesday evening"
        );
        assert!(
            !hours.is_open_at(at("2024-07-04T19:00:00Z")),
            "Thursday evening"
        );
        assert!(!hours.is_open_at(at("2024-07-01T12:30:00Z")), "lunch break");
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let cases = [
            ("mon-fri", "UTC", "no time range"),
            ("", "UTC", "no online hours"),
            ("mon-fri 9-17", "UTC", "not a time range"),
            ("mon-fri 09:00-25:00", "UTC", "not a time range"),
            ("mon-fri 09:00-09:00", "UTC", "empty"),
            ("someday 09:00-17:00", "UTC", "not a day"),
            ("mon-fri 09:00-17:00", "Mars/Olympus", "not a time zone"),
        ];
        for (hours, zone, why) in cases {
            let err = OnlineHours::parse(hours, zone).unwrap_err();
            assert!(err.contains(why), "{hours} in {zone}: {err}");
        }
    }
}

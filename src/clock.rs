//! Simulated time. Only this clock is time inside the engine: wall-clock time never reaches an output.
//!
//! Round `r` (1-based) starts at `start + (r - 1) × interval`; every action of a round is stamped
//! with the round's start (the feeling after a watch at start + `watch_hours`, as in RecAgent §1.3).

use std::fmt;
use std::str::FromStr;

use bevy_ecs::resource::Resource;
use chrono::{Duration, Months, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// Time between two rounds, as RecAgent writes it: an integer and one unit letter, `s` seconds,
/// `m` minutes, `h` hours, `d` days, `M` months, `y` years (e.g. `5h`, the default).
///
/// Months and years are calendar steps; the day is clamped to the end of a shorter month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Interval {
    /// A fixed number of seconds (`s`, `m`, `h`, `d`).
    Seconds(u64),
    /// A number of calendar months (`M`, `y` = 12 months).
    Months(u32),
}

/// Error for an `interval` string that is not `<integer><s|m|h|d|M|y>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid interval {0:?}: expected a positive integer followed by one of s, m, h, d, M, y (e.g. \"5h\")")]
pub struct IntervalError(pub String);

impl FromStr for Interval {
    type Err = IntervalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let err = || IntervalError(s.to_string());
        let unit = t.chars().last().ok_or_else(err)?;
        let n: u64 = t[..t.len() - unit.len_utf8()].parse().map_err(|_| err())?;
        if n == 0 {
            return Err(err());
        }
        Ok(match unit {
            's' => Interval::Seconds(n),
            'm' => Interval::Seconds(n * 60),
            'h' => Interval::Seconds(n * 3600),
            'd' => Interval::Seconds(n * 86_400),
            'M' => Interval::Months(u32::try_from(n).map_err(|_| err())?),
            'y' => Interval::Months(u32::try_from(n * 12).map_err(|_| err())?),
            _ => return Err(err()),
        })
    }
}

impl TryFrom<String> for Interval {
    type Error = IntervalError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Interval> for String {
    fn from(i: Interval) -> String {
        i.to_string()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Interval::Seconds(s) if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            Interval::Seconds(s) if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            Interval::Seconds(s) if s % 60 == 0 => write!(f, "{}m", s / 60),
            Interval::Seconds(s) => write!(f, "{s}s"),
            Interval::Months(m) if m % 12 == 0 => write!(f, "{}y", m / 12),
            Interval::Months(m) => write!(f, "{m}M"),
        }
    }
}

/// The simulated clock: which round is running and what time it is in the simulation.
#[derive(Resource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimClock {
    /// Start of round 1 (RecAgent: 08:00 on the start date).
    pub start: NaiveDateTime,
    /// Time between round starts.
    pub interval: Interval,
    /// The current round, 1-based; 0 before the first round runs.
    pub round: u32,
}

impl SimClock {
    /// A clock before its first round.
    pub fn new(start: NaiveDateTime, interval: Interval) -> Self {
        Self {
            start,
            interval,
            round: 0,
        }
    }

    /// Start time of round `round` (1-based; round 0 is treated as round 1).
    ///
    /// Computed from the start each time, so month clamping does not accumulate.
    pub fn round_start(&self, round: u32) -> NaiveDateTime {
        let k = round.saturating_sub(1);
        match self.interval {
            Interval::Seconds(s) => self.start + Duration::seconds((s * u64::from(k)) as i64),
            Interval::Months(m) => self
                .start
                .checked_add_months(Months::new(m.saturating_mul(k)))
                .unwrap_or(NaiveDateTime::MAX),
        }
    }

    /// Start of round `round`, or `None` when it is outside years 1..=9999.
    pub fn checked_round_start(&self, round: u32) -> Option<NaiveDateTime> {
        let k = i64::from(round.saturating_sub(1));
        let t = match self.interval {
            Interval::Seconds(s) => {
                let secs = i64::try_from(s).ok()?.checked_mul(k)?;
                self.start
                    .checked_add_signed(Duration::try_seconds(secs)?)?
            }
            Interval::Months(m) => self
                .start
                .checked_add_months(Months::new(m.checked_mul(u32::try_from(k).ok()?)?))?,
        };
        (1..=9999)
            .contains(&chrono::Datelike::year(&t))
            .then_some(t)
    }

    /// Start of the current round.
    pub fn now(&self) -> NaiveDateTime {
        self.round_start(self.round)
    }

    /// Simulated hours from the clock's start to `t` (negative before the start).
    pub fn hours_since_start(&self, t: NaiveDateTime) -> f64 {
        (t - self.start).num_seconds() as f64 / 3600.0
    }
}

/// Timestamp format of every output file: `2023-06-01 08:00:00` (chrono's
/// `%Y-%m-%d %H:%M:%S`). Every LLM prompt carries one, so the fields are written directly
/// rather than through chrono's format-string interpreter (a few % of the bridge's CPU).
pub fn format_timestamp(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    if !(0..=9999).contains(&t.year()) {
        // chrono writes a sign and more digits for these years.
        return t.format("%Y-%m-%d %H:%M:%S").to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The long form prompts use (RecAgent §1.3): `June 01, 2023, 08:00 AM`.
pub fn format_long(t: NaiveDateTime) -> String {
    t.format("%B %d, %Y, %I:%M %p").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn parses_units() {
        assert_eq!("5h".parse::<Interval>().unwrap(), Interval::Seconds(18_000));
        assert_eq!("30m".parse::<Interval>().unwrap(), Interval::Seconds(1_800));
        assert_eq!(
            "2d".parse::<Interval>().unwrap(),
            Interval::Seconds(172_800)
        );
        assert_eq!("1M".parse::<Interval>().unwrap(), Interval::Months(1));
        assert_eq!("2y".parse::<Interval>().unwrap(), Interval::Months(24));
        for bad in ["", "h", "1.5h", "5x", "0h", "-1h"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
        assert_eq!(Interval::Seconds(18_000).to_string(), "5h");
    }

    #[test]
    fn five_hour_rounds_match_recagent() {
        // RecAgent §1.3: 08:00, 13:00, 18:00, 23:00, 04:00 next day.
        let c = SimClock::new(at("2023-06-01 08:00:00"), "5h".parse().unwrap());
        let times: Vec<String> = (1..=5)
            .map(|r| format_timestamp(c.round_start(r)))
            .collect();
        assert_eq!(
            times,
            [
                "2023-06-01 08:00:00",
                "2023-06-01 13:00:00",
                "2023-06-01 18:00:00",
                "2023-06-01 23:00:00",
                "2023-06-02 04:00:00"
            ]
        );
        assert_eq!(format_long(c.round_start(4)), "June 01, 2023, 11:00 PM");
    }

    #[test]
    fn months_clamp_without_drift() {
        let c = SimClock::new(at("2023-01-31 08:00:00"), "1M".parse().unwrap());
        assert_eq!(format_timestamp(c.round_start(2)), "2023-02-28 08:00:00");
        assert_eq!(format_timestamp(c.round_start(3)), "2023-03-31 08:00:00");
        // The same text as chrono's format string, also for the years it pads or signs.
        for (y, mo, d, h, mi, se) in [
            (2023, 6, 1, 8, 0, 0),
            (999, 12, 31, 23, 59, 59),
            (-44, 3, 15, 12, 5, 9),
            (12345, 1, 2, 3, 4, 5),
        ] {
            let t = chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, se)
                .unwrap();
            assert_eq!(
                format_timestamp(t),
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            );
        }
        let t = chrono::NaiveDate::from_ymd_opt(999, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        assert_eq!(format_timestamp(t), "0999-01-02 03:04:05");
    }
}

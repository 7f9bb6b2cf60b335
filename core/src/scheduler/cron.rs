// SPDX-License-Identifier: Apache-2.0
//! Cron specifications exactly as asyncjobs accepts them (robfig/cron v3's standard parser): five
//! fields (minute, hour, day of month, month, day of week) with `*`/`?`, lists, ranges, steps and
//! month/day names; the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight`, `@hourly` and `@every <Go duration>`; an optional `CRON_TZ=<zone>` or
//! `TZ=<zone>` prefix. Without one, times are in the scheduler process's local time zone, as in Go.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, Local, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

use crate::error::{Error, ErrorKind, Result};

/// A parsed schedule: when it fires next.
///
/// # Examples
/// ```
/// use chrono::{TimeZone, Utc};
/// let every_quarter = jetjobs::CronSchedule::parse("CRON_TZ=UTC */15 9-17 * * mon-fri")?;
/// let friday_evening = Utc.with_ymd_and_hms(2026, 12, 4, 17, 50, 0).unwrap();
/// assert_eq!(
///     every_quarter.next_after(friday_evening),
///     Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap())
/// );
/// assert!(jetjobs::CronSchedule::parse("61 * * * *").is_err());
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields {
        fields: Fields,
        zone: Zone,
    },
    /// `@every`: whole seconds, at least one.
    Every(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Zone {
    Local,
    Named(chrono_tz::Tz),
}

/// One bit per allowed value; `STAR` marks a field given as `*` or `?` (day matching depends on it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidSchedule,
        format!("invalid cron schedule: {message}"),
    )
}

impl CronSchedule {
    /// Parses `spec`; fails with `InvalidSchedule` as asyncjobs' `ErrScheduleInvalid` would.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidSchedule,
                "schedule is required",
            ));
        }
        let (zone, rest) = match spec
            .strip_prefix("CRON_TZ=")
            .or_else(|| spec.strip_prefix("TZ="))
        {
            Some(with_zone) => {
                let (name, rest) = with_zone
                    .split_once(' ')
                    .ok_or_else(|| invalid(format!("missing fields after time zone: {spec}")))?;
                let zone = chrono_tz::Tz::from_str(name)
                    .map_err(|_| invalid(format!("provided bad location {name}")))?;
                (Zone::Named(zone), rest.trim())
            }
            None => (Zone::Local, spec),
        };
        if let Some(descriptor) = rest.strip_prefix('@') {
            return Self::descriptor(descriptor, zone);
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = parts.as_slice() else {
            return Err(invalid(format!(
                "expected exactly 5 fields, found {}: {rest}",
                parts.len()
            )));
        };
        Ok(Self {
            kind: Kind::Fields {
                fields: Fields {
                    minute: field(minute, &MINUTE)?,
                    hour: field(hour, &HOUR)?,
                    dom: field(dom, &DOM)?,
                    month: field(month, &MONTH)?,
                    dow: field(dow, &DOW)?,
                },
                zone,
            },
        })
    }

    fn descriptor(descriptor: &str, zone: Zone) -> Result<Self> {
        let fields = match descriptor {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            other => {
                let Some(every) = other.strip_prefix("every ") else {
                    return Err(invalid(format!("unrecognized descriptor: @{other}")));
                };
                let every = go_duration(every.trim())
                    .map_err(|e| invalid(format!("failed to parse duration @{other}: {e}")))?;
                // robfig: at least a second, whole seconds.
                let seconds = every.as_secs().max(1);
                return Ok(Self {
                    kind: Kind::Every(Duration::from_secs(seconds)),
                });
            }
        };
        let mut parsed = Self::parse(fields)?;
        if let Kind::Fields { zone: z, .. } = &mut parsed.kind {
            *z = zone;
        }
        Ok(parsed)
    }

    /// The first firing strictly after `after`, or none within five years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Every(every) => {
                let whole = after.with_nanosecond(0)?;
                Some(whole + chrono::Duration::from_std(*every).ok()?)
            }
            Kind::Fields { fields, zone } => match zone {
                Zone::Local => fields.next_after(&Local, after),
                Zone::Named(tz) => fields.next_after(tz, after),
            },
        }
    }
}

impl Fields {
    fn next_after<Z: TimeZone>(&self, zone: &Z, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(zone).naive_local();
        // The next whole minute after `after`.
        let mut t = local.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        let limit = t + chrono::Duration::days(366 * 5);
        while t < limit {
            if !bit(self.month, t.month()) {
                t = first_of_next_month(t)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !bit(self.hour, t.hour()) {
                t = t.with_minute(0)? + chrono::Duration::hours(1);
                continue;
            }
            if !bit(self.minute, t.minute()) {
                t += chrono::Duration::minutes(1);
                continue;
            }
            // A local time skipped by a DST change does not exist: robfig moves on past it too.
            if let Some(at) = zone.from_local_datetime(&t).earliest() {
                let at = at.with_timezone(&Utc);
                if at > after {
                    return Some(at);
                }
            }
            t += chrono::Duration::minutes(1);
        }
        None
    }

    /// robfig's rule: when either day field is `*` both must match, otherwise either may.
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = bit(self.dom, date.day());
        let dow = bit(self.dow, date.weekday().num_days_from_sunday());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn bit(set: u64, value: u32) -> bool {
    set & (1 << value) != 0
}

fn first_of_next_month(t: NaiveDateTime) -> Option<NaiveDateTime> {
    let (year, month) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)
}

/// One field: comma-separated ranges, each `*`, `?`, `N`, `N-M`, optionally `/step`.
fn field(expr: &str, bounds: &Bounds) -> Result<u64> {
    let mut bits = 0;
    for range in expr.split(',') {
        bits |= parse_range(range, bounds)?;
    }
    Ok(bits)
}

fn parse_range(expr: &str, bounds: &Bounds) -> Result<u64> {
    let (range, step) = match expr.split_once('/') {
        Some((range, step)) => {
            let step: u32 = step
                .parse()
                .map_err(|_| invalid(format!("failed to parse int from {step}")))?;
            (range, Some(step))
        }
        None => (expr, None),
    };
    let mut extra = 0;
    let (start, end) = if range == "*" || range == "?" {
        extra = STAR;
        (bounds.min, bounds.max)
    } else {
        match range.split_once('-') {
            Some((low, high)) => (value(low, bounds)?, value(high, bounds)?),
            None => {
                let v = value(range, bounds)?;
                // "N/step" means N to the maximum.
                (v, if step.is_some() { bounds.max } else { v })
            }
        }
    };
    let step = step.unwrap_or(1);
    if step > 1 {
        extra = 0;
    }
    if start < bounds.min {
        return Err(invalid(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        )));
    }
    if end > bounds.max {
        return Err(invalid(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        )));
    }
    if start > end {
        return Err(invalid(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(invalid(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    let mut bits = extra;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn value(expr: &str, bounds: &Bounds) -> Result<u32> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        return Ok(bounds.min + i as u32);
    }
    expr.parse()
        .map_err(|_| invalid(format!("failed to parse int from {expr}")))
}

/// Parses a duration as Go's `time.ParseDuration` does (`1h30m`, `2.5s`, `300ms`, `0`), the
/// syntax of asyncjobs' and choria's command-line flags; a negative or malformed one fails with
/// `InvalidOption` and Go's message.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// assert_eq!(jetjobs::parse_go_duration("1h30m")?, Duration::from_secs(5400));
/// assert_eq!(jetjobs::parse_go_duration("2.5s")?, Duration::from_millis(2500));
/// assert!(jetjobs::parse_go_duration("1d").is_err());
/// # Ok::<(), jetjobs::Error>(())
/// ```
pub fn parse_go_duration(text: &str) -> Result<Duration> {
    go_duration(text).map_err(|message| Error::new(ErrorKind::InvalidOption, message))
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns, us, µs, ms, s, m, h.
pub(crate) fn go_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("time: negative duration {text:?}"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut s = rest;
    while !s.is_empty() {
        let number_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        let number: f64 = s[..number_len].parse().map_err(|_| bad())?;
        s = &s[number_len..];
        let unit_len = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let nanos_per_unit = match &s[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        s = &s[unit_len..];
        total += number * nanos_per_unit;
    }
    if total > u64::MAX as f64 {
        return Err(format!("time: invalid duration {text:?}"));
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    fn next(spec: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        CronSchedule::parse(spec)
            .expect("valid spec")
            .next_after(after)
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let t = utc(2026, 12, 1, 10, 7);
        assert_eq!(
            next("CRON_TZ=UTC * * * * *", t),
            Some(utc(2026, 12, 1, 10, 8))
        );
        assert_eq!(
            next("CRON_TZ=UTC */15 * * * *", t),
            Some(utc(2026, 12, 1, 10, 15))
        );
        assert_eq!(
            next("CRON_TZ=UTC 5,50 * * * *", t),
            Some(utc(2026, 12, 1, 10, 50))
        );
        assert_eq!(
            next("CRON_TZ=UTC 0 9-17/4 * * *", t),
            Some(utc(2026, 12, 1, 13, 0))
        );
        assert_eq!(
            next("CRON_TZ=UTC 30 2 * jan,FEB *", t),
            Some(utc(2027, 1, 1, 2, 30))
        );
        // Tuesday 2026-12-01: next Saturday.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 * * sat", t),
            Some(utc(2026, 12, 5, 0, 0))
        );
        assert_eq!(
            next("CRON_TZ=UTC 0 0 29 2 *", t),
            Some(utc(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            next("CRON_TZ=UTC 10/20 * * * ?", t),
            Some(utc(2026, 12, 1, 10, 10))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_unless_one_is_a_star() {
        let t = utc(2026, 12, 1, 10, 7);
        // The 15th or any Friday: Friday the 4th comes first.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 15 * fri", t),
            Some(utc(2026, 12, 4, 0, 0))
        );
        // `*/2` is not a star: odd days or Fridays.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 */2 * fri", t),
            Some(utc(2026, 12, 3, 0, 0))
        );
        // A star day of week: only the 15th.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 15 * *", t),
            Some(utc(2026, 12, 15, 0, 0))
        );
    }

    #[test]
    fn descriptors_every_and_zones() {
        let t = utc(2026, 12, 1, 10, 7);
        assert_eq!(
            next("CRON_TZ=UTC @hourly", t),
            Some(utc(2026, 12, 1, 11, 0))
        );
        assert_eq!(next("CRON_TZ=UTC @daily", t), Some(utc(2026, 12, 2, 0, 0)));
        assert_eq!(next("CRON_TZ=UTC @weekly", t), Some(utc(2026, 12, 6, 0, 0)));
        assert_eq!(next("CRON_TZ=UTC @monthly", t), Some(utc(2027, 1, 1, 0, 0)));
        assert_eq!(
            next("CRON_TZ=UTC @annually", t),
            Some(utc(2027, 1, 1, 0, 0))
        );
        // 09:00 in New York (UTC-5 in December) is 14:00 UTC.
        assert_eq!(
            next("TZ=America/New_York 0 9 * * *", t),
            Some(utc(2026, 12, 1, 14, 0))
        );
        let t = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 7, 3)
            .single()
            .expect("time");
        let at = t.with_nanosecond(500_000_000).expect("time");
        assert_eq!(
            next("@every 1m30s", at),
            Some(t + chrono::Duration::seconds(90))
        );
        assert_eq!(
            next("@every 10ms", at),
            Some(t + chrono::Duration::seconds(1))
        );
        assert_eq!(
            next("@every 1.5s", at),
            Some(t + chrono::Duration::seconds(1))
        );
    }

    #[test]
    fn invalid_specs_are_typed_errors() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "5-1 * * * *",
            "*/0 * * * *",
            "x * * * *",
            "@fortnightly",
            "@every",
            "@every ten",
            "@every -1s",
            "CRON_TZ=Mars/Olympus * * * * *",
        ] {
            let error = CronSchedule::parse(bad).expect_err(bad);
            assert_eq!(error.kind(), ErrorKind::InvalidSchedule, "{bad:?}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(go_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert!(go_duration("1d").is_err());
        assert!(go_duration("h").is_err());
    }
}

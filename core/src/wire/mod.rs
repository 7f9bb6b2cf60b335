// SPDX-License-Identifier: Apache-2.0
//! Encodings shared with Go asyncjobs: timestamps, ids, names and base64 payloads.
//!
//! Go writes `time.Time` as RFC 3339 with nanoseconds and trailing fractional zeros trimmed, and
//! asyncjobs signs `UnixNano()`, so timestamps are kept at full precision with their original offset.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};

pub mod names;

/// A timestamp that round-trips Go's `time.Time` JSON form exactly.
///
/// # Examples
/// ```
/// let t: jetjobs::Timestamp = "2022-02-09T17:28:41.9432Z".parse().unwrap();
/// assert_eq!(t.to_string(), "2022-02-09T17:28:41.9432Z");
/// assert_eq!(t.unix_nanos(), 1644427721943200000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<FixedOffset>);

impl Timestamp {
    /// The current time in UTC.
    pub fn now() -> Self {
        Self(Utc::now().fixed_offset())
    }

    /// Nanoseconds since the Unix epoch, as Go's `UnixNano()`.
    pub fn unix_nanos(&self) -> i64 {
        // Outside ±292 years from 1970 Go's UnixNano overflows too; saturate rather than panic.
        self.0
            .timestamp_nanos_opt()
            .unwrap_or(if self.0.timestamp() < 0 {
                i64::MIN
            } else {
                i64::MAX
            })
    }

    /// The UTC offset it was written with, in seconds east of UTC (0 for `Z`).
    pub fn utc_offset_seconds(&self) -> i32 {
        self.0.offset().local_minus_utc()
    }

    /// The timestamp as a UTC `chrono` value.
    pub fn to_utc(&self) -> DateTime<Utc> {
        self.0.to_utc()
    }

    /// `self + d`, keeping the offset.
    pub fn add(&self, d: std::time::Duration) -> Self {
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Self(self.0.checked_add_signed(d).unwrap_or(self.0))
    }

    /// How long ago this was, or zero if it is in the future.
    pub fn elapsed(&self) -> std::time::Duration {
        (Utc::now() - self.to_utc()).to_std().unwrap_or_default()
    }

    /// How long until this instant, or zero if it has passed.
    pub fn until(&self) -> std::time::Duration {
        (self.to_utc() - Utc::now()).to_std().unwrap_or_default()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.fixed_offset())
    }
}

impl From<DateTime<FixedOffset>> for Timestamp {
    fn from(t: DateTime<FixedOffset>) -> Self {
        Self(t)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DateTime::parse_from_rfc3339(s).map(Self).map_err(|e| {
            Error::with_source(ErrorKind::InvalidDocument, format!("invalid time {s:?}"), e)
        })
    }
}

impl Timestamp {
    /// Go's RFC3339Nano written by hand into `out`, for the common case (years 0–9999, an offset
    /// of whole minutes); `None` otherwise. Every saved task and event carries a few timestamps,
    /// so this is on the worker's per-task path.
    fn write_go_rfc3339(&self, out: &mut [u8; 35]) -> Option<usize> {
        use chrono::{Datelike as _, Timelike as _};
        let local = self.0.naive_local();
        let offset = self.0.offset().local_minus_utc();
        let year = u32::try_from(local.year()).ok().filter(|y| *y <= 9999)?;
        if offset % 60 != 0 {
            return None;
        }
        // A leap second is carried in the nanoseconds; chrono's formatter shows it as :60.
        let (second, nanos) = match local.nanosecond() {
            leap @ 1_000_000_000.. => (local.second() + 1, leap - 1_000_000_000),
            nanos => (local.second(), nanos),
        };
        let mut n = put_digits(out, 0, year, 4);
        for (separator, value) in [
            (b'-', local.month()),
            (b'-', local.day()),
            (b'T', local.hour()),
            (b':', local.minute()),
            (b':', second),
        ] {
            out[n] = separator;
            n = put_digits(out, n + 1, value, 2);
        }
        if nanos > 0 {
            out[n] = b'.';
            n = put_digits(out, n + 1, nanos, 9);
            while out[n - 1] == b'0' {
                n -= 1;
            }
        }
        if offset == 0 {
            out[n] = b'Z';
            return Some(n + 1);
        }
        out[n] = if offset < 0 { b'-' } else { b'+' };
        let minutes = offset.unsigned_abs() / 60;
        n = put_digits(out, n + 1, minutes / 60, 2);
        out[n] = b':';
        Some(put_digits(out, n + 1, minutes % 60, 2))
    }
}

/// Writes `value` as `width` decimal digits at `at`; returns the position after them.
fn put_digits(out: &mut [u8], at: usize, mut value: u32, width: usize) -> usize {
    for slot in out[at..at + width].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    at + width
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 35];
        match self.write_go_rfc3339(&mut buf) {
            Some(len) => f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?),
            None => f.write_str(&self.go_rfc3339_by_chrono()),
        }
    }
}

impl Timestamp {
    /// Go's RFC3339Nano from chrono's RFC 3339 with all nine digits, trailing zeros (and a bare
    /// dot) removed: for what [`Timestamp::write_go_rfc3339`] does not cover.
    fn go_rfc3339_by_chrono(&self) -> String {
        let full = self.0.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let (Some(dot), Some(zone)) = (full.find('.'), full.rfind(['Z', '+', '-'])) else {
            return full;
        };
        let fraction = full[dot + 1..zone].trim_end_matches('0');
        if fraction.is_empty() {
            format!("{}{}", &full[..dot], &full[zone..])
        } else {
            format!("{}.{}{}", &full[..dot], fraction, &full[zone..])
        }
    }
}

impl Serialize for Timestamp {
    // Straight from a stack buffer: `collect_str` would route every timestamp of every saved
    // task and event through `fmt` and an escaping adapter.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut buf = [0u8; 35];
        match self.write_go_rfc3339(&mut buf) {
            Some(len) => s.serialize_str(
                std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?,
            ),
            None => s.serialize_str(&self.go_rfc3339_by_chrono()),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// True if `name` is usable as a task type, task id or schedule name (`^[a-zA-Z0-9_:-]+$`).
///
/// # Examples
/// ```
/// assert!(jetjobs::is_valid_name("email:new"));
/// assert!(!jetjobs::is_valid_name("email new"));
/// ```
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-'))
}

const KSUID_EPOCH: i64 = 1_400_000_000;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new KSUID (segmentio/ksuid format: 27 base62 characters, time-sortable by second).
pub fn new_id() -> String {
    ksuid_at(Utc::now().timestamp(), rand::random())
}

/// A new KSUID and the second it encodes, for documents that carry both (events).
pub(crate) fn new_id_with_time() -> (String, DateTime<Utc>) {
    let now = Utc::now();
    let id = ksuid_at(now.timestamp(), rand::random());
    (
        id,
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now),
    )
}

fn ksuid_at(unix_secs: i64, random: [u8; 16]) -> String {
    let secs = u32::try_from(unix_secs - KSUID_EPOCH).unwrap_or(0);
    // The 160-bit big-endian number as five u32 words, divided by 62 once per output digit.
    let mut words = [secs, 0, 0, 0, 0];
    for (i, chunk) in random.chunks_exact(4).enumerate() {
        words[i + 1] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let mut digits = [b'0'; 27];
    for digit in digits.iter_mut().rev() {
        let mut remainder = 0u64;
        for word in words.iter_mut() {
            let acc = (remainder << 32) | u64::from(*word);
            *word = (acc / 62) as u32;
            remainder = acc % 62;
        }
        *digit = BASE62[remainder as usize];
    }
    // Every digit is an ASCII letter or number, so this never fails.
    String::from_utf8(digits.to_vec()).unwrap_or_default()
}

/// Serde adapter for Go `[]byte`: standard base64 with padding; `null` for no bytes.
pub(crate) mod base64_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<bytes::Bytes>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&BASE64.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<bytes::Bytes>, D::Error> {
        let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        s.map(|s| BASE64.decode(s.as_bytes()).map(bytes::Bytes::from))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) fn base64_encode(b: &[u8]) -> String {
    BASE64.encode(b)
}

/// Serde adapter for Go `time.Duration`: int64 nanoseconds.
pub(crate) mod nanos {
    use super::*;
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(
        v: &Duration,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(v.as_nanos()).unwrap_or(i64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Duration, D::Error> {
        let n = i64::deserialize(d)?;
        Ok(Duration::from_nanos(u64::try_from(n).unwrap_or(0)))
    }
}

/// Serializes like Go's `json.Marshal`: compact, with `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub(crate) fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "encoding JSON", e))?;
    Ok(out)
}

struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // Scans bytes, not chars: every byte to escape is ASCII or starts U+2028/U+2029
        // (E2 80 A8/A9), and most fragments (base64 payloads, ids) have none.
        let bytes = fragment.as_bytes();
        let mut start = 0;
        while let Some(found) = bytes[start..]
            .iter()
            .position(|b| matches!(b, b'<' | b'>' | b'&' | 0xE2))
        {
            let i = start + found;
            let (escape, len): (&[u8], usize) = match &bytes[i..] {
                [b'<', ..] => (b"\\u003c", 1),
                [b'>', ..] => (b"\\u003e", 1),
                [b'&', ..] => (b"\\u0026", 1),
                [0xE2, 0x80, 0xA8, ..] => (b"\\u2028", 3),
                [0xE2, 0x80, 0xA9, ..] => (b"\\u2029", 3),
                // Another character starting with E2, written as it is.
                _ => (&bytes[i..i + 1], 1),
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(escape)?;
            start = i + len;
        }
        writer.write_all(&bytes[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_timestamps_match_chronos_formatting() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..20_000 {
            let secs = (next() % 315_537_897_599) as i64 - 62_135_596_800; // years 1..=9999
            let nanos = match i % 4 {
                0 => 0,
                1 => (next() % 1000) as u32 * 1_000_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            let offset_minutes = (next() % (2 * 23 * 60 + 1)) as i32 - 23 * 60;
            let offset = FixedOffset::east_opt(if i % 3 == 0 { 0 } else { offset_minutes * 60 })
                .expect("offset");
            let Some(t) = DateTime::from_timestamp(secs, nanos).map(|t| t.with_timezone(&offset))
            else {
                continue;
            };
            let t = Timestamp(t);
            let mut buf = [0u8; 35];
            let fast = t.write_go_rfc3339(&mut buf).map(|n| buf[..n].to_vec());
            assert_eq!(
                fast.as_deref(),
                Some(t.go_rfc3339_by_chrono().as_bytes()),
                "{t:?}"
            );
        }
        // Outside the hand-written range, chrono's path.
        let early = Timestamp::from(DateTime::from_timestamp(-62_230_000_000, 5).expect("year -2"));
        assert!(early.write_go_rfc3339(&mut [0; 35]).is_none());
        assert_eq!(early.to_string(), early.go_rfc3339_by_chrono());
    }

    #[test]
    fn strings_escape_like_go_encoding_json() {
        let json = to_go_json("a<b>&c\u{2028}d\u{2029}é\u{2027}→").expect("encode");
        assert_eq!(
            String::from_utf8(json).expect("utf8"),
            "\"a\\u003cb\\u003e\\u0026c\\u2028d\\u2029é\u{2027}→\""
        );
    }

    #[test]
    fn timestamps_print_like_go_rfc3339nano() {
        let offset: Timestamp = "2022-02-09T17:28:41.5-05:30".parse().expect("parse");
        assert_eq!(offset.utc_offset_seconds(), -19_800);
        for s in [
            "2022-02-09T17:28:41.943198067Z",
            "2022-02-09T17:28:41.9432Z",
            "2022-02-09T17:28:41Z",
            "2030-01-02T03:04:05.5+01:00",
            "0001-01-01T00:00:00Z",
        ] {
            let t: Timestamp = s.parse().expect("parse");
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn ksuid_is_27_base62_chars_and_encodes_its_time() {
        let (id, t) = new_id_with_time();
        assert_eq!(id.len(), 27);
        assert!(is_valid_name(&id));
        assert!((Utc::now() - t).num_seconds().abs() < 5);
        // Same second, same random bytes: same id; ids sort by time.
        assert_eq!(
            ksuid_at(t.timestamp(), [9; 16]),
            ksuid_at(t.timestamp(), [9; 16])
        );
        assert!(ksuid_at(t.timestamp(), [0xff; 16]) < ksuid_at(t.timestamp() + 1, [0; 16]));
    }

    #[test]
    fn ksuid_matches_segmentio_reference_encoding() {
        // segmentio/ksuid's documented example: the maximum KSUID is "aWgEPTl1tmebfsQzFP4bxwgy80V".
        let max = ksuid_at(i64::from(u32::MAX) + KSUID_EPOCH, [0xff; 16]);
        assert_eq!(max, "aWgEPTl1tmebfsQzFP4bxwgy80V");
        assert_eq!(
            ksuid_at(KSUID_EPOCH, [0; 16]),
            "000000000000000000000000000"
        );
    }

    #[test]
    fn names_follow_the_asyncjobs_regex() {
        assert!(is_valid_name("a-b_c:D9"));
        for bad in ["", "a b", "a.b", "ä", "a/b"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}

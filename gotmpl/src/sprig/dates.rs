//! Dates and durations: a Go `time.Time` host object, Go's layout-based `Format`/`Parse` ("2006-01-02"),
//! `time.ParseDuration` and `Duration.String`, and sprig's date functions.

use crate::value::FuncResult;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::args::{self, take};
use super::tz::{self, Zone};
use crate::value::{Object, Value};

/// Seconds from 0001-01-01 to 1970-01-01 (Go's zero time is year 1).
const ZERO_UNIX: i64 = -62_135_596_800;

/// A Go `time.Time`: an instant and the zone it is shown in.
#[derive(Clone, Debug)]
pub(crate) struct GoTime {
    unix: i64,
    nanos: u32,
    zone: Rc<Zone>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// The broken-down fields of a time in its zone.
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
    yday: u32,
    offset: i32,
    abbr: String,
}

impl GoTime {
    /// The current time in the local zone.
    pub(crate) fn now() -> GoTime {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        GoTime {
            unix: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
            zone: tz::local(),
        }
    }

    /// Go's zero time (0001-01-01 00:00:00 UTC).
    pub(crate) fn zero() -> GoTime {
        GoTime {
            unix: ZERO_UNIX,
            nanos: 0,
            zone: Zone::utc(),
        }
    }

    fn from_unix(unix: i64, zone: Rc<Zone>) -> GoTime {
        GoTime {
            unix,
            nanos: 0,
            zone,
        }
    }

    fn in_zone(&self, zone: Rc<Zone>) -> GoTime {
        GoTime {
            zone,
            ..self.clone()
        }
    }

    fn add_nanos(&self, d: i64) -> GoTime {
        let total = i128::from(self.unix) * 1_000_000_000 + i128::from(self.nanos) + i128::from(d);
        GoTime {
            unix: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as u32,
            zone: self.zone.clone(),
        }
    }

    fn unix_nanos(&self) -> i128 {
        i128::from(self.unix) * 1_000_000_000 + i128::from(self.nanos)
    }

    fn fields(&self) -> Fields {
        let (offset, abbr) = self.zone.lookup(self.unix);
        // Clamped far beyond any real date so the calendar arithmetic cannot overflow.
        let local = self
            .unix
            .saturating_add(i64::from(offset))
            .clamp(-(1 << 52), 1 << 52);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Fields {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7) as usize,
            yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
            offset,
            abbr: abbr.to_string(),
        }
    }

    /// Go's `Time.Format(layout)`.
    pub(crate) fn format(&self, layout: &str) -> String {
        let f = self.fields();
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, chunk, after) = next_chunk(rest);
            out.push_str(prefix);
            rest = after;
            let Some(chunk) = chunk else { break };
            let hour12 = if f.hour.is_multiple_of(12) {
                12
            } else {
                f.hour % 12
            };
            match chunk {
                Chunk::LongMonth => out.push_str(MONTHS[f.month as usize - 1]),
                Chunk::Month => out.push_str(&MONTHS[f.month as usize - 1][..3]),
                Chunk::NumMonth => out.push_str(&f.month.to_string()),
                Chunk::ZeroMonth => out.push_str(&format!("{:02}", f.month)),
                Chunk::LongWeekDay => out.push_str(DAYS[f.weekday]),
                Chunk::WeekDay => out.push_str(&DAYS[f.weekday][..3]),
                Chunk::Day => out.push_str(&f.day.to_string()),
                Chunk::UnderDay => out.push_str(&format!("{:>2}", f.day)),
                Chunk::ZeroDay => out.push_str(&format!("{:02}", f.day)),
                Chunk::UnderYearDay => out.push_str(&format!("{:>3}", f.yday)),
                Chunk::ZeroYearDay => out.push_str(&format!("{:03}", f.yday)),
                Chunk::Hour => out.push_str(&format!("{:02}", f.hour)),
                Chunk::Hour12 => out.push_str(&hour12.to_string()),
                Chunk::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
                Chunk::Minute => out.push_str(&f.minute.to_string()),
                Chunk::ZeroMinute => out.push_str(&format!("{:02}", f.minute)),
                Chunk::Second => out.push_str(&f.second.to_string()),
                Chunk::ZeroSecond => out.push_str(&format!("{:02}", f.second)),
                Chunk::LongYear => {
                    if f.year < 0 {
                        out.push_str(&format!("-{:04}", -f.year));
                    } else {
                        out.push_str(&format!("{:04}", f.year));
                    }
                }
                Chunk::Year => out.push_str(&format!("{:02}", f.year.rem_euclid(100))),
                Chunk::PM => out.push_str(if f.hour >= 12 { "PM" } else { "AM" }),
                Chunk::Pm => out.push_str(if f.hour >= 12 { "pm" } else { "am" }),
                Chunk::TZ => {
                    if f.abbr.is_empty() {
                        out.push_str(&offset_text(f.offset, false, false, false));
                    } else {
                        out.push_str(&f.abbr);
                    }
                }
                Chunk::Offset {
                    z,
                    colon,
                    seconds,
                    hours_only,
                } => {
                    if z && f.offset == 0 {
                        out.push('Z');
                    } else if hours_only {
                        let sign = if f.offset < 0 { '-' } else { '+' };
                        out.push_str(&format!("{sign}{:02}", f.offset.abs() / 3600));
                    } else {
                        out.push_str(&offset_text(f.offset, colon, seconds, true));
                    }
                }
                Chunk::Frac { digits, trim, sep } => {
                    let s = format!("{:09}", self.nanos);
                    let mut s = s[..digits].to_string();
                    if trim {
                        s = s.trim_end_matches('0').to_string();
                    }
                    if !trim || !s.is_empty() {
                        out.push(sep);
                        out.push_str(&s);
                    }
                }
            }
        }
        out
    }
}

fn offset_text(offset: i32, colon: bool, seconds: bool, _signed: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{h:02}{sep}{m:02}");
    if seconds {
        out.push_str(&format!("{sep}{s:02}"));
    }
    out
}

/// A layout element (Go's `std` constants).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Chunk {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    Frac {
        digits: usize,
        trim: bool,
        sep: char,
    },
}

/// Go's `nextStdChunk`: the literal text before the next layout element, the element, and the rest.
fn next_chunk(layout: &str) -> (&str, Option<Chunk>, &str) {
    let b = layout.as_bytes();
    let starts = |i: usize, s: &str| layout[i..].starts_with(s);
    let mut i = 0;
    while i < b.len() {
        let found: Option<(Chunk, usize)> = match b[i] {
            b'J' if starts(i, "January") => Some((Chunk::LongMonth, 7)),
            b'J' if starts(i, "Jan") => Some((Chunk::Month, 3)),
            b'M' if starts(i, "Monday") => Some((Chunk::LongWeekDay, 6)),
            b'M' if starts(i, "Mon") => Some((Chunk::WeekDay, 3)),
            b'M' if starts(i, "MST") => Some((Chunk::TZ, 3)),
            b'0' if b.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => Some((
                [
                    Chunk::ZeroMonth,
                    Chunk::ZeroDay,
                    Chunk::ZeroHour12,
                    Chunk::ZeroMinute,
                    Chunk::ZeroSecond,
                    Chunk::Year,
                ][(b[i + 1] - b'1') as usize],
                2,
            )),
            b'0' if starts(i, "002") => Some((Chunk::ZeroYearDay, 3)),
            b'1' if starts(i, "15") => Some((Chunk::Hour, 2)),
            b'1' => Some((Chunk::NumMonth, 1)),
            b'2' if starts(i, "2006") => Some((Chunk::LongYear, 4)),
            b'2' => Some((Chunk::Day, 1)),
            // "_2006" is a literal underscore followed by the year.
            b'_' if starts(i, "_2006") => None,
            b'_' if starts(i, "__2") => Some((Chunk::UnderYearDay, 3)),
            b'_' if starts(i, "_2") => Some((Chunk::UnderDay, 2)),
            b'3' => Some((Chunk::Hour12, 1)),
            b'4' => Some((Chunk::Minute, 1)),
            b'5' => Some((Chunk::Second, 1)),
            b'P' if starts(i, "PM") => Some((Chunk::PM, 2)),
            b'p' if starts(i, "pm") => Some((Chunk::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let tail = &layout[i + 1..];
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ];
                forms.iter().find(|(f, ..)| tail.starts_with(f)).map(
                    |(f, colon, seconds, hours_only)| {
                        (
                            Chunk::Offset {
                                z,
                                colon: *colon,
                                seconds: *seconds,
                                hours_only: *hours_only,
                            },
                            f.len() + 1,
                        )
                    },
                )
            }
            b'.' | b',' if b.get(i + 1).is_some_and(|c| *c == b'0' || *c == b'9') => {
                let d = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == d {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((
                        Chunk::Frac {
                            digits: (j - i - 1).min(9),
                            trim: d == b'9',
                            sep: b[i] as char,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((chunk, len)) = found {
            return (&layout[..i], Some(chunk), &layout[i + len..]);
        }
        i += layout[i..].chars().next().map_or(1, char::len_utf8);
    }
    (layout, None, "")
}

/// Go's `time.ParseInLocation(layout, value, zone)` for the common layout elements.
pub(crate) fn parse(layout: &str, value: &str, zone: Rc<Zone>) -> Result<GoTime, String> {
    let err = |what: &str, elem: &str| {
        format!("parsing time {value:?} as {layout:?}: cannot parse {what:?} as {elem:?}")
    };
    let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut nanos) =
        (1i64, 1u32, 1u32, 0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut abbr: Option<String> = None;
    let mut rest_layout = layout;
    let mut v = value;
    fn num(v: &str, min: usize, max: usize) -> Option<(u32, &str)> {
        let n = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if n < min {
            return None;
        }
        Some((v[..n].parse().ok()?, &v[n..]))
    }
    while !rest_layout.is_empty() {
        let (prefix, chunk, after) = next_chunk(rest_layout);
        let elem = &rest_layout[prefix.len()..rest_layout.len() - after.len()];
        v = v.strip_prefix(prefix).ok_or_else(|| err(v, prefix))?;
        rest_layout = after;
        let Some(chunk) = chunk else { break };
        let bad = || err(v, elem);
        match chunk {
            Chunk::LongYear => {
                let (n, r) = num(v, 4, 4).ok_or_else(bad)?;
                year = i64::from(n);
                v = r;
            }
            Chunk::Year => {
                let (n, r) = num(v, 2, 2).ok_or_else(bad)?;
                year = i64::from(n) + if n >= 69 { 1900 } else { 2000 };
                v = r;
            }
            Chunk::LongMonth | Chunk::Month => {
                let idx = MONTHS
                    .iter()
                    .position(|m| {
                        let m = if chunk == Chunk::Month { &m[..3] } else { m };
                        v.get(..m.len()).is_some_and(|p| p.eq_ignore_ascii_case(m))
                    })
                    .ok_or_else(bad)?;
                let len = if chunk == Chunk::Month {
                    3
                } else {
                    MONTHS[idx].len()
                };
                month = idx as u32 + 1;
                v = &v[len..];
            }
            Chunk::LongWeekDay | Chunk::WeekDay => {
                let idx = DAYS
                    .iter()
                    .position(|d| {
                        let d = if chunk == Chunk::WeekDay { &d[..3] } else { d };
                        v.get(..d.len()).is_some_and(|p| p.eq_ignore_ascii_case(d))
                    })
                    .ok_or_else(bad)?;
                v = &v[if chunk == Chunk::WeekDay {
                    3
                } else {
                    DAYS[idx].len()
                }..];
            }
            Chunk::NumMonth | Chunk::ZeroMonth => {
                let min = if chunk == Chunk::ZeroMonth { 2 } else { 1 };
                let (n, r) = num(v, min, 2).ok_or_else(bad)?;
                if !(1..=12).contains(&n) {
                    return Err(format!("parsing time {value:?}: month out of range"));
                }
                month = n;
                v = r;
            }
            Chunk::Day | Chunk::ZeroDay | Chunk::UnderDay => {
                let trimmed = if chunk == Chunk::UnderDay {
                    v.strip_prefix(' ').unwrap_or(v)
                } else {
                    v
                };
                let min = if chunk == Chunk::ZeroDay { 2 } else { 1 };
                let (n, r) = num(trimmed, min, 2).ok_or_else(bad)?;
                day = n;
                v = r;
            }
            Chunk::UnderYearDay | Chunk::ZeroYearDay => {
                let (_, r) = num(v.trim_start_matches(' '), 1, 3).ok_or_else(bad)?;
                v = r;
            }
            Chunk::Hour => {
                let (n, r) = num(v, 1, 2).ok_or_else(bad)?;
                if n > 23 {
                    return Err(format!("parsing time {value:?}: hour out of range"));
                }
                hour = n;
                v = r;
            }
            Chunk::Hour12 | Chunk::ZeroHour12 => {
                let (n, r) =
                    num(v, if chunk == Chunk::ZeroHour12 { 2 } else { 1 }, 2).ok_or_else(bad)?;
                if n > 12 {
                    return Err(format!("parsing time {value:?}: hour out of range"));
                }
                hour = n;
                v = r;
            }
            Chunk::Minute | Chunk::ZeroMinute => {
                let (n, r) =
                    num(v, if chunk == Chunk::ZeroMinute { 2 } else { 1 }, 2).ok_or_else(bad)?;
                if n > 59 {
                    return Err(format!("parsing time {value:?}: minute out of range"));
                }
                minute = n;
                v = r;
            }
            Chunk::Second | Chunk::ZeroSecond => {
                let (n, r) =
                    num(v, if chunk == Chunk::ZeroSecond { 2 } else { 1 }, 2).ok_or_else(bad)?;
                if n > 59 {
                    return Err(format!("parsing time {value:?}: second out of range"));
                }
                second = n;
                v = r;
                // A fractional second may follow even when the layout has none.
                if (v.starts_with('.') || v.starts_with(','))
                    && !matches!(next_chunk(rest_layout).1, Some(Chunk::Frac { .. }))
                {
                    let digits = v[1..].bytes().take_while(u8::is_ascii_digit).count();
                    if digits > 0 && !rest_layout.starts_with(&v[..1]) {
                        nanos = frac_nanos(&v[1..1 + digits]);
                        v = &v[1 + digits..];
                    }
                }
            }
            Chunk::PM | Chunk::Pm => {
                let p = v.get(..2).ok_or_else(bad)?;
                pm = Some(match p.to_ascii_uppercase().as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(bad()),
                });
                v = &v[2..];
            }
            Chunk::TZ => {
                if v.starts_with("UTC") {
                    abbr = Some("UTC".to_string());
                    v = &v[3..];
                } else if let Some(rest) = v.strip_prefix("GMT") {
                    // "GMT", or Go's "GMT+h" / "GMT-h" forms.
                    let signed = rest.starts_with(['+', '-']);
                    let digits = if signed {
                        rest[1..].bytes().take_while(u8::is_ascii_digit).count()
                    } else {
                        0
                    };
                    let n = 3 + if digits > 0 { 1 + digits } else { 0 };
                    abbr = Some(v[..n].to_string());
                    v = &v[n..];
                } else {
                    let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                    if n < 3 {
                        return Err(bad());
                    }
                    abbr = Some(v[..n].to_string());
                    v = &v[n..];
                }
            }
            Chunk::Offset {
                z,
                colon,
                seconds,
                hours_only,
            } => {
                if z && v.starts_with('Z') {
                    offset = Some(0);
                    v = &v[1..];
                    continue;
                }
                let sign = match v.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(bad()),
                };
                let mut r = &v[1..];
                let (h, r2) = num(r, 2, 2).ok_or_else(bad)?;
                r = r2;
                let mut total = h as i32 * 3600;
                if !hours_only {
                    if colon {
                        r = r.strip_prefix(':').ok_or_else(bad)?;
                    }
                    let (m, r2) = num(r, 2, 2).ok_or_else(bad)?;
                    r = r2;
                    total += m as i32 * 60;
                    if seconds {
                        if colon {
                            r = r.strip_prefix(':').ok_or_else(bad)?;
                        }
                        let (s, r2) = num(r, 2, 2).ok_or_else(bad)?;
                        r = r2;
                        total += s as i32;
                    }
                }
                offset = Some(sign * total);
                v = r;
            }
            Chunk::Frac { digits, trim, sep } => {
                let Some(r) = v.strip_prefix(sep) else {
                    if trim {
                        continue;
                    }
                    return Err(bad());
                };
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                if !trim && n != digits {
                    return Err(bad());
                }
                nanos = frac_nanos(&r[..n]);
                v = &r[n..];
            }
        }
    }
    if !v.is_empty() {
        return Err(format!("parsing time {value:?}: extra text: {v:?}"));
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let days_in_month = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > days_in_month[month as usize - 1] {
        return Err(format!("parsing time {value:?}: day out of range"));
    }
    let wall =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let t = if let Some(off) = offset {
        let unix = wall - i64::from(off);
        let (local_off, local_name) = zone.lookup(unix);
        let same = local_off == off && abbr.as_deref().is_none_or(|a| a == local_name);
        let z = if same {
            zone.clone()
        } else {
            Zone::fixed(abbr.as_deref().unwrap_or(""), off)
        };
        GoTime {
            unix,
            nanos,
            zone: z,
        }
    } else if let Some(name) = abbr {
        match zone.offset_of_abbr(&name) {
            Some(off) => GoTime {
                unix: wall - i64::from(off),
                nanos,
                zone,
            },
            None if name == "UTC" => GoTime {
                unix: wall,
                nanos,
                zone: Zone::utc(),
            },
            None => {
                // An unknown abbreviation gets offset 0, except Go's "GMT+h" forms, whose offset Go
                // records without moving the instant (the wall clock then reads h hours later).
                let off = name
                    .strip_prefix("GMT")
                    .filter(|r| !r.is_empty())
                    .and_then(|r| r.parse::<i32>().ok())
                    .map_or(0, |h| h * 3600);
                GoTime {
                    unix: wall,
                    nanos,
                    zone: Zone::fixed(&name, off),
                }
            }
        }
    } else {
        // Wall time in `zone`: find the offset in effect at that wall time.
        let guess = zone.lookup(wall).0;
        let unix = wall - i64::from(guess);
        let off = zone.lookup(unix).0;
        GoTime {
            unix: wall - i64::from(off),
            nanos,
            zone,
        }
    };
    Ok(t)
}

fn frac_nanos(digits: &str) -> u32 {
    let mut s = digits.chars().take(9).collect::<String>();
    while s.len() < 9 {
        s.push('0');
    }
    s.parse().unwrap_or(0)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Go's `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`; units ns, us, µs, ms, s, m, h.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {:?}", text);
    let (neg, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let n = s
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if n == 0 {
            return Err(invalid());
        }
        let number: f64 = s[..n].parse().map_err(|_| invalid())?;
        s = &s[n..];
        let u = s
            .bytes()
            .take_while(|b| !(b.is_ascii_digit() || *b == b'.'))
            .count();
        let unit = match &s[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {:?}", text)),
            other => {
                return Err(format!(
                    "time: unknown unit {:?} in duration {:?}",
                    other, text
                ));
            }
        };
        s = &s[u..];
        total += number * unit;
    }
    if total > 9.223_372_036_854_775e18 {
        return Err(invalid());
    }
    let d = total.round() as i64;
    Ok(if neg { -d } else { d })
}

/// Go's `Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".to_string();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    let frac = |v: u64, prec: u32| -> String {
        let div = 10u64.pow(prec);
        let whole = v / div;
        let f = v % div;
        if f == 0 {
            whole.to_string()
        } else {
            let fs = format!("{:0width$}", f, width = prec as usize);
            format!("{whole}.{}", fs.trim_end_matches('0'))
        }
    };
    if u < 1_000_000_000 {
        let (v, unit) = if u < 1_000 {
            (frac(u, 0), "ns")
        } else if u < 1_000_000 {
            (frac(u, 3), "µs")
        } else {
            (frac(u, 6), "ms")
        };
        return format!("{sign}{v}{unit}");
    }
    let secs_part = frac(u % 60_000_000_000, 9);
    let total_min = u / 60_000_000_000;
    let mut out = String::from(sign);
    if total_min >= 60 {
        out.push_str(&format!("{}h{}m", total_min / 60, total_min % 60));
    } else if total_min > 0 {
        out.push_str(&format!("{total_min}m"));
    }
    out.push_str(&secs_part);
    out.push('s');
    out
}

impl Object for GoTime {
    fn type_name(&self) -> &str {
        "time.Time"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let f = self.fields();
        Some(match name {
            "Year" => Value::Int(f.year),
            "Month" => Value::from(MONTHS[f.month as usize - 1]),
            "Day" => Value::Int(i64::from(f.day)),
            "Hour" => Value::Int(i64::from(f.hour)),
            "Minute" => Value::Int(i64::from(f.minute)),
            "Second" => Value::Int(i64::from(f.second)),
            "Nanosecond" => Value::Int(i64::from(self.nanos)),
            "YearDay" => Value::Int(i64::from(f.yday)),
            "Weekday" => Value::from(DAYS[f.weekday]),
            "Unix" => Value::Int64(self.unix),
            "UnixMilli" => Value::Int64((self.unix_nanos() / 1_000_000) as i64),
            "UnixMicro" => Value::Int64((self.unix_nanos() / 1_000) as i64),
            "UnixNano" => Value::Int64(self.unix_nanos() as i64),
            "IsZero" => Value::Bool(self.unix == ZERO_UNIX && self.nanos == 0),
            "UTC" => Value::Object(Rc::new(self.in_zone(Zone::utc()))),
            "Local" => Value::Object(Rc::new(self.in_zone(tz::local()))),
            "String" => Value::from(self.display()),
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        let result = match (name, args.as_slice()) {
            ("Format", [layout]) => args::string(layout).map(|l| Value::from(self.format(&l))),
            ("Add", [d]) => args::int(d).map(|d| Value::Object(Rc::new(self.add_nanos(d)))),
            ("AddDate", [y, m, d]) => (|| {
                let (y, m, d) = (args::int(y)?, args::int(m)?, args::int(d)?);
                Ok(Value::Object(Rc::new(self.add_date(y, m, d))))
            })(),
            ("In", [loc]) => args::string(loc).and_then(|l| {
                tz::load(&l)
                    .map(|z| Value::Object(Rc::new(self.in_zone(z))))
                    .ok_or_else(|| format!("unknown time zone {l}").into())
            }),
            (_, []) => return self.field(name).map(Ok),
            _ => return None,
        };
        Some(result)
    }

    fn display(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }
}

impl GoTime {
    fn add_date(&self, y: i64, m: i64, d: i64) -> GoTime {
        let f = self.fields();
        let months = (f.year * 12 + i64::from(f.month) - 1)
            .saturating_add(y.saturating_mul(12))
            .saturating_add(m)
            .clamp(-(1 << 40), 1 << 40);
        let (year, month) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
        let days = (days_from_civil(year, month, 1) + i64::from(f.day) - 1)
            .saturating_add(d)
            .clamp(-(1 << 40), 1 << 40);
        let wall = days * 86_400 + i64::from(f.hour * 3600 + f.minute * 60 + f.second);
        let off = self.zone.lookup(wall - i64::from(f.offset)).0;
        GoTime {
            unix: wall - i64::from(off),
            nanos: self.nanos,
            zone: self.zone.clone(),
        }
    }
}

/// The `time.Time` inside a value, if it holds one.
fn as_time(v: &Value) -> Option<GoTime> {
    match v {
        Value::Object(o) if o.type_name() == "time.Time" => {
            let unix = o.field("Unix")?.as_int()?;
            let nanos = match o.field("Nanosecond")? {
                Value::Int(i) => i as u32,
                _ => return None,
            };
            // Re-derive the zone from the printed offset and abbreviation.
            let shown = o.display();
            // A monotonic clock reading (` m=+1.5`) may follow the zone.
            let shown = shown.split(" m=").next().unwrap_or_default();
            let mut parts = shown.rsplitn(3, ' ');
            let abbr = parts.next().unwrap_or("UTC");
            let off = parts.next().and_then(parse_offset).unwrap_or(0);
            // The local zone when it shows this instant the same way (so DST rules carry on), else a
            // fixed zone with that name and offset.
            let local = tz::local();
            let numeric = abbr
                .trim_start_matches(['+', '-'])
                .bytes()
                .all(|c| c.is_ascii_digit());
            let zone = if local.lookup(unix) == (off, abbr) {
                local
            } else if abbr == "UTC" && off == 0 {
                Zone::utc()
            } else if numeric {
                Zone::fixed("", off)
            } else {
                Zone::fixed(abbr, off)
            };
            Some(GoTime { unix, nanos, zone })
        }
        _ => None,
    }
}

fn parse_offset(s: &str) -> Option<i32> {
    let sign = if s.starts_with('-') { -1 } else { 1 };
    let d = s.get(1..5)?;
    let h: i32 = d[..2].parse().ok()?;
    let m: i32 = d[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

fn time_value(t: GoTime) -> Value {
    Value::Object(Rc::new(t))
}

/// A `time.Time` parameter.
fn time_arg(v: &Value) -> Result<GoTime, String> {
    as_time(v).ok_or_else(|| args::type_error("time.Time", v))
}

/// sprig's date argument: a time, or unix seconds; anything else means now.
fn date_arg(v: &Value) -> GoTime {
    match v {
        Value::Int(secs) | Value::Int64(secs) => GoTime::from_unix(*secs, tz::local()),
        other => as_time(other).unwrap_or_else(GoTime::now),
    }
}

fn format_in_zone(layout: &str, date: &Value, zone: &str) -> String {
    let zone = tz::load(zone).unwrap_or_else(Zone::utc);
    date_arg(date).in_zone(zone).format(layout)
}

/// `now`: the current local time.
pub(crate) fn now(args: Vec<Value>) -> FuncResult {
    let [] = take("now", args)?;
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let mono = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos();
    Ok(Value::Object(Rc::new(Now {
        time: GoTime::now(),
        mono: i64::try_from(mono).unwrap_or(i64::MAX),
    })))
}

/// `time.Now()`'s value: a time that also carries a monotonic clock reading, which Go prints as
/// ` m=+0.001234567` after the time (methods that make new times drop it, as `In` and `UTC` do in Go).
struct Now {
    time: GoTime,
    /// Nanoseconds since the first `now` of this process (Go counts from process start).
    mono: i64,
}

impl Object for Now {
    fn type_name(&self) -> &str {
        "time.Time"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "String" => Some(Value::from(self.display())),
            _ => self.time.field(name),
        }
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        self.time.call(name, args)
    }

    fn display(&self) -> String {
        let sign = if self.mono < 0 { '-' } else { '+' };
        let m = self.mono.unsigned_abs();
        format!(
            "{} m={sign}{}.{:09}",
            self.time.display(),
            m / 1_000_000_000,
            m % 1_000_000_000
        )
    }
}

/// `date LAYOUT DATE`: DATE formatted in the local zone.
pub(crate) fn date(args: Vec<Value>) -> FuncResult {
    let [layout, d] = take("date", args)?;
    Ok(Value::from(format_in_zone(
        &args::string(&layout)?,
        &d,
        "Local",
    )))
}

/// `dateInZone LAYOUT DATE ZONE` (and `date_in_zone`): an unknown zone means UTC.
pub(crate) fn date_in_zone(args: Vec<Value>) -> FuncResult {
    let [layout, d, zone] = take("dateInZone", args)?;
    Ok(Value::from(format_in_zone(
        &args::string(&layout)?,
        &d,
        &args::string(&zone)?,
    )))
}

/// `htmlDate DATE`: `2006-01-02` in the local zone.
pub(crate) fn html_date(args: Vec<Value>) -> FuncResult {
    let [d] = take("htmlDate", args)?;
    Ok(Value::from(format_in_zone("2006-01-02", &d, "Local")))
}

/// `htmlDateInZone DATE ZONE`.
pub(crate) fn html_date_in_zone(args: Vec<Value>) -> FuncResult {
    let [d, zone] = take("htmlDateInZone", args)?;
    Ok(Value::from(format_in_zone(
        "2006-01-02",
        &d,
        &args::string(&zone)?,
    )))
}

/// `dateModify DURATION DATE` (and `date_modify`): DATE moved by DURATION; a bad duration leaves it.
pub(crate) fn date_modify(args: Vec<Value>) -> FuncResult {
    let [d, tv] = take("dateModify", args)?;
    let (d, t) = (args::string(&d)?, time_arg(&tv)?);
    Ok(match parse_duration(&d) {
        Ok(n) => moved(&tv, t, n),
        Err(_) => tv,
    })
}

/// `t` moved by `d` nanoseconds; a monotonic clock reading moves along, as Go's `Time.Add` keeps it.
fn moved(original: &Value, t: GoTime, d: i64) -> Value {
    let time = t.add_nanos(d);
    match monotonic(original).and_then(|m| m.checked_add(d)) {
        Some(mono) => Value::Object(Rc::new(Now { time, mono })),
        None => time_value(time),
    }
}

/// The monotonic clock reading a time from `now` carries (its ` m=+S.NNNNNNNNN` suffix).
fn monotonic(v: &Value) -> Option<i64> {
    let Value::Object(o) = v else { return None };
    let shown = o.display();
    let (_, m) = shown.split_once(" m=")?;
    let negative = m.starts_with('-');
    let (secs, frac) = m.trim_start_matches(['+', '-']).split_once('.')?;
    let n = secs
        .parse::<i64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(frac.parse::<i64>().ok()?)?;
    Some(if negative { -n } else { n })
}

/// `mustDateModify DURATION DATE` (and `must_date_modify`).
pub(crate) fn must_date_modify(args: Vec<Value>) -> FuncResult {
    let [d, tv] = take("mustDateModify", args)?;
    let (d, t) = (args::string(&d)?, time_arg(&tv)?);
    Ok(moved(&tv, t, parse_duration(&d)?))
}

/// `toDate LAYOUT TEXT`: parsed in the local zone; a bad input gives the zero time.
pub(crate) fn to_date(args: Vec<Value>) -> FuncResult {
    let [layout, s] = take("toDate", args)?;
    let (layout, s) = (args::string(&layout)?, args::string(&s)?);
    Ok(time_value(
        parse(&layout, &s, tz::local()).unwrap_or_else(|_| GoTime::zero()),
    ))
}

/// `mustToDate LAYOUT TEXT`.
pub(crate) fn must_to_date(args: Vec<Value>) -> FuncResult {
    let [layout, s] = take("mustToDate", args)?;
    let (layout, s) = (args::string(&layout)?, args::string(&s)?);
    Ok(time_value(parse(&layout, &s, tz::local())?))
}

/// `unixEpoch DATE`: unix seconds as a string.
pub(crate) fn unix_epoch(args: Vec<Value>) -> FuncResult {
    let [t] = take("unixEpoch", args)?;
    Ok(Value::from(time_arg(&t)?.unix.to_string()))
}

/// `ago DATE`: time since DATE, rounded to seconds.
pub(crate) fn ago(args: Vec<Value>) -> FuncResult {
    let [d] = take("ago", args)?;
    let then = date_arg(&d);
    let since = GoTime::now().unix_nanos() - then.unix_nanos();
    let rounded = (since
        + if since >= 0 {
            500_000_000
        } else {
            -500_000_000
        })
        / 1_000_000_000
        * 1_000_000_000;
    Ok(Value::from(duration_string(
        rounded.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
    )))
}

/// `duration SECONDS`: seconds (an integer or a decimal string) as a Go duration string.
pub(crate) fn duration(args: Vec<Value>) -> FuncResult {
    let [v] = take("duration", args)?;
    // sprig's type switch takes only int64 and string: a template literal (an `int`) gives 0s.
    let n = match &v {
        Value::Str(s) => super::conversion::parse_int(s, 10).unwrap_or(0),
        Value::Int64(i) => *i,
        _ => 0,
    };
    Ok(Value::from(duration_string(n.wrapping_mul(1_000_000_000))))
}

/// `durationRound D`: a duration (string, nanoseconds, or time since a date) as its largest unit.
pub(crate) fn duration_round(args: Vec<Value>) -> FuncResult {
    let [v] = take("durationRound", args)?;
    let d: i128 = match &v {
        Value::Str(s) => i128::from(parse_duration(s).unwrap_or(0)),
        // As in sprig's type switch: an `int64` counts nanoseconds, an `int` falls to the default, 0.
        Value::Int64(i) => i128::from(*i),
        other => match as_time(other) {
            Some(t) => GoTime::now().unix_nanos() - t.unix_nanos(),
            None => 0,
        },
    };
    let u = d.unsigned_abs();
    let hour: u128 = 3_600_000_000_000;
    let units: [(u128, &str); 6] = [
        (hour * 24 * 365, "y"),
        (hour * 24 * 30, "mo"),
        (hour * 24, "d"),
        (hour, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    for (size, unit) in units {
        if u > size {
            return Ok(Value::from(format!("{}{unit}", u / size)));
        }
    }
    Ok(Value::from("0s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_go_layouts() {
        let t = parse(
            "2006-01-02T15:04:05Z07:00",
            "2024-03-05T17:04:05.123+02:00",
            Zone::utc(),
        )
        .expect("parses");
        assert_eq!(t.display(), "2024-03-05 17:04:05.123 +0200 +0200");
        assert_eq!(
            t.in_zone(Zone::utc())
                .format("2006-01-02 15:04:05 Mon Jan MST -0700 Z07:00 PM 3 .000"),
            "2024-03-05 15:04:05 Tue Mar UTC +0000 Z PM 3 .123"
        );
        assert_eq!(GoTime::zero().display(), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(duration_string(95_000_000_000), "1m35s");
        assert_eq!(duration_string(3_700_000_000_000), "1h1m40s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(parse_duration("-1.5h"), Ok(-5_400_000_000_000));
        assert!(parse_duration("bad").is_err());
    }
}

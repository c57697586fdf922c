//! Time zones as Go's `time.LoadLocation` finds them: `UTC`, `Local` (the `TZ` variable or
//! `/etc/localtime`) and IANA names read from the system's TZif files. The TZif footer rule for times
//! after the last listed transition is not evaluated: the last transition's zone is used (system files
//! list transitions through 2037).

use std::rc::Rc;

/// A zone: the name Go prints for the location and its offsets over time.
#[derive(Debug)]
pub(crate) struct Zone {
    /// Transition instants (unix seconds) and the index of the type in effect from each.
    transitions: Vec<(i64, usize)>,
    /// Offset east of UTC in seconds and the abbreviation.
    types: Vec<(i32, String)>,
}

impl Zone {
    /// A zone with one fixed offset (Go's `FixedZone`); an empty name prints as `+hhmm`.
    pub(crate) fn fixed(name: &str, offset: i32) -> Rc<Zone> {
        let name = if name.is_empty() {
            numeric_abbr(offset)
        } else {
            name.to_string()
        };
        Rc::new(Zone {
            transitions: Vec::new(),
            types: vec![(offset, name)],
        })
    }

    /// UTC.
    pub(crate) fn utc() -> Rc<Zone> {
        Zone::fixed("UTC", 0)
    }

    /// The offset and abbreviation in effect at `unix`.
    pub(crate) fn lookup(&self, unix: i64) -> (i32, &str) {
        let idx = match self.transitions.partition_point(|(t, _)| *t <= unix) {
            0 => 0,
            n => self.transitions[n - 1].1,
        };
        let (off, name) = &self.types[idx.min(self.types.len() - 1)];
        (*off, name)
    }

    /// Whether this zone ever uses `abbr`, and the offset it has then.
    pub(crate) fn offset_of_abbr(&self, abbr: &str) -> Option<i32> {
        self.types
            .iter()
            .rev()
            .find(|(_, n)| n == abbr)
            .map(|(o, _)| *o)
    }
}

/// Go's name for an offset without an abbreviation (`MST` in a layout prints `+0200`).
fn numeric_abbr(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let m = offset.abs() / 60;
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

/// Loads a location by Go's rules; `None` when it does not exist.
pub(crate) fn load(name: &str) -> Option<Rc<Zone>> {
    match name {
        "" | "UTC" => return Some(Zone::utc()),
        "Local" => return Some(local()),
        _ => {}
    }
    if name.contains("..") || name.starts_with('/') {
        return None;
    }
    let dirs = [
        std::env::var("ZONEINFO").unwrap_or_default(),
        "/usr/share/zoneinfo".to_string(),
        "/usr/share/lib/zoneinfo".to_string(),
        "/usr/lib/locale/TZ".to_string(),
    ];
    dirs.iter()
        .filter(|d| !d.is_empty())
        .find_map(|d| std::fs::read(format!("{d}/{name}")).ok())
        .and_then(|b| parse_tzif(&b))
}

/// The local zone: `$TZ` if set (empty means UTC), else `/etc/localtime`, else UTC.
pub(crate) fn local() -> Rc<Zone> {
    thread_local! {
        static LOCAL: Rc<Zone> = {
            match std::env::var("TZ") {
                Ok(tz) if tz.is_empty() => Zone::utc(),
                Ok(tz) => load(tz.trim_start_matches(':')).unwrap_or_else(Zone::utc),
                Err(_) => std::fs::read("/etc/localtime").ok().and_then(|b| parse_tzif(&b)).unwrap_or_else(Zone::utc),
            }
        };
    }
    LOCAL.with(Rc::clone)
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses a TZif file (the 64-bit section when present).
fn parse_tzif(b: &[u8]) -> Option<Rc<Zone>> {
    if b.get(..4)? != b"TZif" {
        return None;
    }
    let version = *b.get(4)?;
    let counts = |at: usize| -> Option<[usize; 6]> {
        let mut c = [0usize; 6];
        for (i, slot) in c.iter_mut().enumerate() {
            *slot = usize::try_from(be_i32(b, at + 20 + 4 * i)?).ok()?;
        }
        Some(c)
    };
    // counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    let c1 = counts(0)?;
    let v1_len = 44 + c1[3] * 5 + c1[4] * 6 + c1[5] + c1[2] * 8 + c1[1] + c1[0];
    let (start, c, time_size) = if version >= b'2' {
        (v1_len, counts(v1_len)?, 8)
    } else {
        (0, c1, 4)
    };
    let [_isut, _isstd, _leap, timecnt, typecnt, charcnt] = c;
    let mut at = start + 44;
    let mut times = Vec::with_capacity(timecnt);
    for i in 0..timecnt {
        let t = if time_size == 8 {
            be_i64(b, at + 8 * i)?
        } else {
            i64::from(be_i32(b, at + 4 * i)?)
        };
        times.push(t);
    }
    at += timecnt * time_size;
    let idxs = b.get(at..at + timecnt)?;
    at += timecnt;
    let mut raw_types = Vec::with_capacity(typecnt);
    for i in 0..typecnt {
        let off = be_i32(b, at + 6 * i)?;
        let abbr_idx = *b.get(at + 6 * i + 5)? as usize;
        raw_types.push((off, abbr_idx));
    }
    at += typecnt * 6;
    let chars = b.get(at..at + charcnt)?;
    let types = raw_types
        .into_iter()
        .map(|(off, i)| {
            let tail = chars.get(i..).unwrap_or_default();
            let end = tail.iter().position(|c| *c == 0).unwrap_or(tail.len());
            (off, String::from_utf8_lossy(&tail[..end]).into_owned())
        })
        .collect::<Vec<_>>();
    if types.is_empty() {
        return None;
    }
    let transitions = times
        .into_iter()
        .zip(idxs.iter().map(|i| *i as usize))
        .collect();
    Some(Rc::new(Zone { transitions, types }))
}

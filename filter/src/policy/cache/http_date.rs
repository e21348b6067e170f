//! HTTP dates (RFC 9110 §5.6.7): parse the three formats a recipient must accept, format the
//! preferred one (IMF-fixdate). Hand-written: a few hundred bytes of wasm, no dependency.
//!
//! Parsing is lenient where it costs nothing (case of names, extra whitespace, a one-digit day,
//! the weekday is not checked against the date) and strict where a wrong value would matter
//! (ranges of day, month, hour, minute, second; `GMT` required where the format has it).
//! Dates before 1970 read as 0 (they are valid dates, and all in the past for a cache).

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// 9999-12-31T23:59:59Z, the last instant a four-digit year can show.
const MAX_FORMATTED: u64 = 253_402_300_799;

/// Parses an HTTP-date into unix seconds. Accepts IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and
/// asctime (`Sun Nov  6 08:49:37 1994`). Returns `None` for anything else.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let value = value.trim();
    if !value.is_ascii() {
        return None;
    }
    let mut parts = value.split_ascii_whitespace();
    let first = parts.next()?;
    let (day, month, year, time) = if let Some(weekday) = first.strip_suffix(',') {
        if !is_weekday(weekday) {
            return None;
        }
        let second = parts.next()?;
        let parsed = if second.contains('-') {
            // RFC 850: 06-Nov-94 08:49:37 GMT
            let mut dmy = second.split('-');
            let day = dmy.next()?;
            let month = dmy.next()?;
            let year = dmy.next()?;
            if dmy.next().is_some() {
                return None;
            }
            let year = match year.len() {
                2 => two_digit_year(number(year)?),
                4 => number(year)?,
                _ => return None,
            };
            (day, month, year, parts.next()?)
        } else {
            // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
            let month = parts.next()?;
            let year = parts.next()?;
            if year.len() != 4 {
                return None;
            }
            (second, month, number(year)?, parts.next()?)
        };
        // Both formats end in GMT.
        if !parts.next()?.eq_ignore_ascii_case("GMT") {
            return None;
        }
        parsed
    } else {
        // asctime: Sun Nov  6 08:49:37 1994
        if !is_weekday(first) {
            return None;
        }
        let month = parts.next()?;
        let day = parts.next()?;
        let time = parts.next()?;
        let year = parts.next()?;
        if year.len() != 4 {
            return None;
        }
        (day, month, number(year)?, time)
    };
    if parts.next().is_some() {
        return None;
    }
    if day.is_empty() || day.len() > 2 {
        return None;
    }
    let day = number(day)?;
    let month = month_number(month)?;
    if !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let (h, m, s) = time_of_day(time)?;
    let days = days_from_civil(i64::try_from(year).ok()?, month, day);
    let secs = days
        .checked_mul(86_400)?
        .checked_add(i64::try_from(h * 3600 + m * 60 + s).ok()?)?;
    Some(u64::try_from(secs).unwrap_or(0))
}

/// Formats unix seconds as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. Instants
/// past the year 9999 are shown as its last second.
pub fn format_http_date(unix_secs: u64) -> String {
    let secs = unix_secs.min(MAX_FORMATTED);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = WEEKDAYS
        .get(usize::try_from((days + 3) % 7).unwrap_or(0))
        .copied()
        .unwrap_or("Mon");
    let month_name = MONTHS
        .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Lower-cases `s` into `buf` (`None` when it does not fit).
fn lower<'b>(s: &str, buf: &'b mut [u8; 9]) -> Option<&'b [u8]> {
    let slot = buf.get_mut(..s.len())?;
    slot.copy_from_slice(s.as_bytes());
    slot.make_ascii_lowercase();
    Some(slot)
}

fn is_weekday(s: &str) -> bool {
    let mut buf = [0u8; 9];
    matches!(
        lower(s, &mut buf),
        Some(
            b"mon"
                | b"tue"
                | b"wed"
                | b"thu"
                | b"fri"
                | b"sat"
                | b"sun"
                | b"monday"
                | b"tuesday"
                | b"wednesday"
                | b"thursday"
                | b"friday"
                | b"saturday"
                | b"sunday"
        )
    )
}

fn month_number(s: &str) -> Option<u64> {
    let mut buf = [0u8; 9];
    Some(match lower(s, &mut buf)? {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century.
/// Without a clock here, the usual pivot: 70..=99 → 19xx, 00..=69 → 20xx.
fn two_digit_year(yy: u64) -> u64 {
    if yy >= 70 {
        1900 + yy
    } else {
        2000 + yy
    }
}

/// Digits only (at most 4, which is all an HTTP-date needs), no sign.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `HH:MM:SS`, two digits each; a leap second (60) is accepted.
fn time_of_day(s: &str) -> Option<(u64, u64, u64)> {
    let mut it = s.split(':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (h, m, sec) = (number(h)?, number(m)?, number(sec)?);
    (h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). Inputs are
/// small (year ≤ 9999), so the arithmetic cannot overflow.
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let m = i64::try_from(month).unwrap_or(1);
    let d = i64::try_from(day).unwrap_or(1);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (non-negative, ≤ year 9999).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn rfc_9110_examples() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(T));
    }

    #[test]
    fn lenient_forms() {
        assert_eq!(parse_http_date("  sun, 06 nov 1994 08:49:37 gmt "), Some(T));
        assert_eq!(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sun Nov 06 08:49:37 1994"), Some(T));
        assert_eq!(parse_http_date("Sun, 06-Nov-1994 08:49:37 GMT"), Some(T));
        // The weekday is not checked against the date.
        assert_eq!(parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT"), Some(T));
    }

    #[test]
    fn two_digit_years() {
        assert_eq!(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT"),
            Some(946_684_800)
        );
        assert_eq!(
            parse_http_date("Friday, 31-Dec-69 23:59:59 GMT"),
            Some(3_155_759_999)
        );
    }

    #[test]
    fn edges() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 19 Jan 2038 03:14:08 GMT"),
            Some(2_147_483_648)
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_FORMATTED)
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        // Leap second reads as the next second.
        assert_eq!(
            parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT"),
            Some(1_483_228_800)
        );
        // Before the epoch: a valid date, clamped to 0.
        assert_eq!(parse_http_date("Mon, 01 Jan 1900 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"), Some(0));
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "0",
            "-1",
            "Thu, 01 Jan 1970 00:00:00",
            "Thu, 01 Jan 1970 00:00:00 UTC",
            "Thu, 01 Jan 1970 00:00:00 GMT extra",
            "Thu, 32 Jan 1970 00:00:00 GMT",
            "Thu, 00 Jan 1970 00:00:00 GMT",
            "Thu, 29 Feb 2023 00:00:00 GMT",
            "Thu, 29 Feb 1900 00:00:00 GMT",
            "Thu, 01 Foo 1970 00:00:00 GMT",
            "Thu, 01 Jan 70 00:00:00 GMT",
            "Thu, 01 Jan 19700 00:00:00 GMT",
            "Thu, 01 Jan 1970 24:00:00 GMT",
            "Thu, 01 Jan 1970 00:60:00 GMT",
            "Thu, 01 Jan 1970 00:00:61 GMT",
            "Thu, 01 Jan 1970 0:00:00 GMT",
            "Thu, 01 Jan 1970 00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00:00 GMT",
            "Thu, 001 Jan 1970 00:00:00 GMT",
            "Thu, +1 Jan 1970 00:00:00 GMT",
            "Xyz, 01 Jan 1970 00:00:00 GMT",
            "Thu 01 Jan 1970 00:00:00 GMT",
            "Thursday, 01-Jan-7 00:00:00 GMT",
            "Thursday, 01-Jan-70-1 00:00:00 GMT",
            "Thursday, 01-Jan-70 00:00:00",
            "Thu Jan  1 00:00:00 70",
            "Thu Jan  1 00:00:00",
            "Thu Jan  1 00:00:00 1970 GMT",
            "1994-11-06T08:49:37Z",
            "Sun, 06 Nov 1994 08:49:37 GMT\u{e9}",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn format() {
        assert_eq!(format_http_date(T), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            format_http_date(MAX_FORMATTED),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(format_http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn round_trip() {
        let mut t: u64 = 0;
        while t <= MAX_FORMATTED {
            let s = format_http_date(t);
            assert_eq!(parse_http_date(&s), Some(t), "{s}");
            t += 7_777_777 + t / 3;
        }
        // Every day across several leap cycles.
        for day in 10_900..12_500u64 {
            let t = day * 86_400 + 43_210;
            assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let nasty = "Sun, 06 Nov 1994 08:49:37 GMT\u{e9}Sunday, 99-Feb-94 99:99:99 GMT\t\
                     Sun Nov  6 08:49:37 1994 ,,--::\u{1F600}9999999999";
        let chars: Vec<(usize, char)> = nasty.char_indices().collect();
        for (i, &(start, _)) in chars.iter().enumerate() {
            for &(end, _) in chars.iter().skip(i) {
                let _ = parse_http_date(&nasty[start..end]);
            }
            let _ = parse_http_date(&nasty[start..]);
        }
        for t in [1u64 << 40, 1 << 63, u64::MAX - 1] {
            let _ = format_http_date(t);
        }
    }
}

//! ISO 8601 text for datetimes, as Python's `datetime.isoformat()` writes
//! it, and a parser for exactly that form (anything else is left to
//! Python's `datetime.fromisoformat`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeFields {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub microsecond: u32,
    /// The UTC offset in microseconds, or None for a naive datetime.
    pub offset_micros: Option<i64>,
}

pub fn format_iso(f: &DateTimeFields) -> String {
    let mut out = Vec::with_capacity(32);
    write_iso(&mut out, f);
    // Only ASCII digits and punctuation are written.
    String::from_utf8(out).expect("ISO text is ASCII")
}

/// Appends the ISO text of `f` to `out` (ASCII only, nothing to escape).
pub fn write_iso(out: &mut Vec<u8>, f: &DateTimeFields) {
    // Digits written by hand: the formatting machinery costs more than the
    // rest of encoding an event's timestamp.
    // Python's datetime years are 1 to 9999.
    push_padded(out, u64::from(f.year.unsigned_abs()), 4);
    out.push(b'-');
    push2(out, f.month.into());
    out.push(b'-');
    push2(out, f.day.into());
    out.push(b'T');
    push2(out, f.hour.into());
    out.push(b':');
    push2(out, f.minute.into());
    out.push(b':');
    push2(out, f.second.into());
    if f.microsecond != 0 {
        out.push(b'.');
        push_padded(out, f.microsecond.into(), 6);
    }
    if let Some(offset) = f.offset_micros {
        out.push(if offset < 0 { b'-' } else { b'+' });
        let total = offset.unsigned_abs();
        let micros = total % 1_000_000;
        let seconds = total / 1_000_000;
        push_padded(out, seconds / 3600, 2);
        out.push(b':');
        push2(out, (seconds / 60) % 60);
        if seconds % 60 != 0 || micros != 0 {
            out.push(b':');
            push2(out, seconds % 60);
            if micros != 0 {
                out.push(b'.');
                push_padded(out, micros, 6);
            }
        }
    }
}

/// Appends a value below 100 as two digits.
fn push2(out: &mut Vec<u8>, value: u64) {
    debug_assert!(value < 100);
    out.extend_from_slice(&[b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]);
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = value;
    let mut len = 0;
    while n > 0 || len == 0 {
        digits[19 - len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    let len = len.max(width.min(20));
    out.extend_from_slice(&digits[20 - len..]);
}

/// The UTC date and time `micros` microseconds after the Unix epoch (the
/// proleptic Gregorian calendar, as Python's datetime uses).
pub fn utc_from_unix_micros(micros: i64) -> DateTimeFields {
    let seconds = micros.div_euclid(1_000_000);
    let microsecond = micros.rem_euclid(1_000_000) as u32;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    DateTimeFields {
        year,
        month,
        day,
        hour: (of_day / 3600) as u8,
        minute: (of_day / 60 % 60) as u8,
        second: (of_day % 60) as u8,
        microsecond,
        offset_micros: Some(0),
    }
}

/// Year, month and day of a count of days since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.ffffff][(+|-)HH:MM]`; None for any other
/// form or an invalid field, so the caller can defer to Python.
pub fn parse_iso(text: &str) -> Option<DateTimeFields> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut f = DateTimeFields {
        year: digits(&b[0..4])? as i32,
        month: digits(&b[5..7])? as u8,
        day: digits(&b[8..10])? as u8,
        hour: digits(&b[11..13])? as u8,
        minute: digits(&b[14..16])? as u8,
        second: digits(&b[17..19])? as u8,
        microsecond: 0,
        offset_micros: None,
    };
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        if rest.len() < 7 {
            return None;
        }
        f.microsecond = digits(&rest[1..7])?;
        rest = &rest[7..];
    }
    match rest {
        [] => {}
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])? as i64;
            let minutes = digits(&[*m1, *m2])? as i64;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let micros = (hours * 3600 + minutes * 60) * 1_000_000;
            f.offset_micros = Some(if *sign == b'-' { -micros } else { micros });
        }
        _ => return None,
    }
    if f.year < 1
        || !(1..=12).contains(&f.month)
        || f.day < 1
        || f.day > days_in_month(f.year, f.month)
        || f.hour > 23
        || f.minute > 59
        || f.second > 59
    {
        return None;
    }
    Some(f)
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn unix_micros_become_utc_fields() {
        let at = |micros| {
            let f = utc_from_unix_micros(micros);
            format_iso(&DateTimeFields {
                offset_micros: None,
                ..f
            })
        };
        assert_eq!(at(0), "1970-01-01T00:00:00");
        assert_eq!(at(-1), "1969-12-31T23:59:59.999999");
        assert_eq!(at(951_782_400_000_000), "2000-02-29T00:00:00");
        assert_eq!(at(1_709_210_096_123_456), "2024-02-29T12:34:56.123456");
        assert_eq!(at(4_107_542_399_000_000), "2100-02-28T23:59:59");
        assert_eq!(at(4_107_542_400_000_000), "2100-03-01T00:00:00");
        assert_eq!(at(253_402_300_799_999_999), "9999-12-31T23:59:59.999999");
        assert_eq!(at(-62_135_596_800_000_000), "0001-01-01T00:00:00");
    }

    #[test]
    fn every_day_for_four_centuries_follows_the_one_before() {
        let mut previous = civil_from_days(-1);
        for days in 0..146_097 * 2 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1) && pd == days_in_month(py, pm);
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} then {:?}",
                (y, m, d)
            );
            previous = (y, m, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(us: u32, offset: Option<i64>) -> DateTimeFields {
        DateTimeFields {
            year: 2024,
            month: 2,
            day: 29,
            hour: 7,
            minute: 5,
            second: 9,
            microsecond: us,
            offset_micros: offset,
        }
    }

    #[test]
    fn formats_like_python() {
        assert_eq!(format_iso(&fields(0, None)), "2024-02-29T07:05:09");
        assert_eq!(
            format_iso(&fields(120, Some(0))),
            "2024-02-29T07:05:09.000120+00:00"
        );
        assert_eq!(
            format_iso(&fields(0, Some(-(5 * 3600 + 30 * 60) * 1_000_000))),
            "2024-02-29T07:05:09-05:30"
        );
        assert_eq!(
            format_iso(&fields(0, Some(3_723_000_001))),
            "2024-02-29T07:05:09+01:02:03.000001"
        );
        let mut early = fields(0, None);
        early.year = 33;
        assert_eq!(format_iso(&early), "0033-02-29T07:05:09");
    }

    #[test]
    fn parses_what_it_formats() {
        for f in [
            fields(0, None),
            fields(999_999, Some(0)),
            fields(1, Some(-19_800_000_000)),
        ] {
            assert_eq!(parse_iso(&format_iso(&f)), Some(f));
        }
    }

    #[test]
    fn leaves_other_forms_to_python() {
        for text in [
            "2024-02-30T00:00:00",
            "2023-02-29T00:00:00",
            "2024-02-29 07:05:09",
            "2024-02-29T07:05",
            "2024-02-29T07:05:09.1",
            "2024-02-29T07:05:09Z",
            "2024-02-29T07:05:09+01:02:03",
            "2024-02-29T24:00:00",
        ] {
            assert_eq!(parse_iso(text), None, "{text}");
        }
    }
}

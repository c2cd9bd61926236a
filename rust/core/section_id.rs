//! Section ids of notification logs: `"first,last"`, both notification ids.

use std::fmt;

/// The largest notification id a section id may name. SQLite and PostgreSQL
/// both store notification ids as signed 64-bit integers.
pub const MAX_NOTIFICATION_ID: u64 = i64::MAX as u64;

/// A parsed section id. `first > last` is well formed and names an empty
/// range, which is what the reference's notification log returns for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionId {
    pub first: u64,
    pub last: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionIdError {
    Empty { id: String },
    WrongNumberOfParts { id: String, parts: usize },
    NotANumber { id: String, part: String },
    Negative { id: String, part: String },
    TooLarge { id: String, part: String },
}

impl fmt::Display for SectionIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionIdError::Empty { id } => {
                write!(f, "invalid section id '{id}': expected 'first,last'")
            }
            SectionIdError::WrongNumberOfParts { id, parts } => write!(
                f,
                "invalid section id '{id}': expected two notification ids 'first,last', found {parts} part(s)"
            ),
            SectionIdError::NotANumber { id, part } => write!(
                f,
                "invalid section id '{id}': '{part}' is not a notification id"
            ),
            SectionIdError::Negative { id, part } => write!(
                f,
                "invalid section id '{id}': notification id '{part}' is negative"
            ),
            SectionIdError::TooLarge { id, part } => write!(
                f,
                "invalid section id '{id}': notification id '{part}' exceeds {MAX_NOTIFICATION_ID}"
            ),
        }
    }
}

impl std::error::Error for SectionIdError {}

impl SectionId {
    pub fn new(first: u64, last: u64) -> Self {
        SectionId { first, last }
    }

    /// Parses `"first,last"`. Surrounding whitespace of each number is
    /// tolerated because Python's `int()` tolerated it in the reference.
    pub fn parse(id: &str) -> Result<SectionId, SectionIdError> {
        if id.trim().is_empty() {
            return Err(SectionIdError::Empty { id: id.to_string() });
        }
        let parts: Vec<&str> = id.split(',').collect();
        if parts.len() != 2 {
            return Err(SectionIdError::WrongNumberOfParts {
                id: id.to_string(),
                parts: parts.len(),
            });
        }
        let first = parse_part(id, parts[0])?;
        let last = parse_part(id, parts[1])?;
        Ok(SectionId { first, last })
    }

    /// The first notification id to select: ids start at 1, so 0 reads
    /// from the beginning, as in the reference.
    pub fn start(&self) -> u64 {
        self.first.max(1)
    }

    /// How many notifications to select, capped by the log's section size.
    pub fn limit(&self, section_size: u64) -> u64 {
        let start = self.start();
        if self.last < start {
            0
        } else {
            (self.last - start + 1).min(section_size)
        }
    }
}

fn parse_part(id: &str, part: &str) -> Result<u64, SectionIdError> {
    let trimmed = part.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if let Some(rest) = digits.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SectionIdError::Negative {
                id: id.to_string(),
                part: part.to_string(),
            });
        }
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SectionIdError::NotANumber {
            id: id.to_string(),
            part: part.to_string(),
        });
    }
    match digits.parse::<u64>() {
        Ok(n) if n <= MAX_NOTIFICATION_ID => Ok(n),
        _ => Err(SectionIdError::TooLarge {
            id: id.to_string(),
            part: part.to_string(),
        }),
    }
}

impl fmt::Display for SectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (a, b) in [(1, 10), (0, 0), (11, 20), (5, 3), (MAX_NOTIFICATION_ID, 1)] {
            let s = SectionId::new(a, b).to_string();
            assert_eq!(SectionId::parse(&s).unwrap(), SectionId::new(a, b));
        }
    }

    #[test]
    fn start_and_limit() {
        assert_eq!(SectionId::parse("1,10").unwrap().limit(10), 10);
        assert_eq!(SectionId::parse("1,100").unwrap().limit(10), 10);
        assert_eq!(SectionId::parse("3,4").unwrap().limit(10), 2);
        assert_eq!(SectionId::parse("3,2").unwrap().limit(10), 0);
        let zero = SectionId::parse("0,9").unwrap();
        assert_eq!((zero.start(), zero.limit(10)), (1, 9));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            SectionId::parse(""),
            Err(SectionIdError::Empty { id: String::new() })
        );
        assert!(matches!(
            SectionId::parse("1"),
            Err(SectionIdError::WrongNumberOfParts { parts: 1, .. })
        ));
        assert!(matches!(
            SectionId::parse("1,2,3"),
            Err(SectionIdError::WrongNumberOfParts { parts: 3, .. })
        ));
        assert!(matches!(
            SectionId::parse("a,2"),
            Err(SectionIdError::NotANumber { .. })
        ));
        assert!(matches!(
            SectionId::parse("1,"),
            Err(SectionIdError::NotANumber { .. })
        ));
        assert!(matches!(
            SectionId::parse("-3,0"),
            Err(SectionIdError::Negative { .. })
        ));
        assert!(matches!(
            SectionId::parse("1,99999999999999999999999"),
            Err(SectionIdError::TooLarge { .. })
        ));
        let msg = SectionId::parse("x,1").unwrap_err().to_string();
        assert!(msg.contains("'x,1'"), "{msg}");
    }
}

//! JSON text in the dialect of Python's `json` module with its default
//! settings: `", "` and `": "` separators, ASCII-only output, and the
//! `NaN`/`Infinity` extensions. Stored events written here read back with
//! the reference library and the other way round.

/// A parsed JSON value. Integers too large for `i64` keep their digits so
/// the binding can hand them to Python's arbitrary-precision `int`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    BigInt(String),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub position: usize,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.position)
    }
}

/// Appends `s` as a JSON string literal, escaping every non-ASCII char.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write_u_escape(out, *unit);
                }
            }
            c => out.push(c as u8),
        }
    }
    out.push(b'"');
}

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// Parses a whole document.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.error("extra data"));
    }
    Ok(v)
}

/// Deep enough for any real event, shallow enough not to exhaust the stack.
const MAX_DEPTH: usize = 512;

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> ParseError {
        ParseError {
            message: message.to_string(),
            position: self.pos,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &[u8]) -> bool {
        if self.text[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.text.get(self.pos) {
            None => Err(self.error("unexpected end of data")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                if self.eat(b"null") {
                    Ok(Value::Null)
                } else if self.eat(b"true") {
                    Ok(Value::Bool(true))
                } else if self.eat(b"false") {
                    Ok(Value::Bool(false))
                } else if self.eat(b"NaN") {
                    Ok(Value::Float(f64::NAN))
                } else if self.eat(b"Infinity") {
                    Ok(Value::Float(f64::INFINITY))
                } else {
                    Err(self.error("expecting value"))
                }
            }
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.eat(b"}") {
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.text.get(self.pos) != Some(&b'"') {
                return Err(self.error("expecting property name enclosed in double quotes"));
            }
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(b":") {
                return Err(self.error("expecting ':' delimiter"));
            }
            self.skip_ws();
            let v = self.value()?;
            members.push((key, v));
            self.skip_ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                self.depth -= 1;
                return Ok(Value::Object(members));
            }
            return Err(self.error("expecting ',' delimiter"));
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(b"]") {
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                self.depth -= 1;
                return Ok(Value::Array(items));
            }
            return Err(self.error("expecting ',' delimiter"));
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.eat(b"-") && self.eat(b"Infinity") {
            return Ok(Value::Float(f64::NEG_INFINITY));
        }
        let digits_start = self.pos;
        match self.text.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error("expecting value")),
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.text.get(self.pos) == Some(&b'.')
            && matches!(self.text.get(self.pos + 1), Some(b'0'..=b'9'))
        {
            self.pos += 1;
            self.skip_digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.text.get(self.pos) {
            let save = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.text.get(self.pos) {
                self.pos += 1;
            }
            if matches!(self.text.get(self.pos), Some(b'0'..=b'9')) {
                self.skip_digits();
                is_float = true;
            } else {
                self.pos = save;
            }
        }
        let _ = (digits_start, int_end);
        let literal = std::str::from_utf8(&self.text[start..self.pos]).expect("ascii digits");
        if is_float {
            literal
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| self.error("invalid number"))
        } else {
            Ok(literal
                .parse::<i64>()
                .map(Value::Int)
                .unwrap_or_else(|_| Value::BigInt(literal.to_string())))
        }
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.text.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run = std::str::from_utf8(&self.text[run_start..self.pos])
                .map_err(|_| self.error("invalid UTF-8 in string"))?;
            out.push_str(run);
            match self.text.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("invalid control character in string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let Some(&c) = self.text.get(self.pos) else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{08}'),
            b'f' => out.push('\u{0c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let unit = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&unit) && self.eat(b"\\u") {
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error("unpaired surrogate"));
                    }
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => return Err(self.error("unpaired surrogate")),
                }
            }
            _ => return Err(self.error("invalid \\escape")),
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.error("invalid \\uXXXX escape"))?;
        self.pos += 4;
        Ok(digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_like_python() {
        assert_eq!(enc("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(enc("é"), r#""\u00e9""#);
        assert_eq!(enc("😀"), r#""\ud83d\ude00""#);
        assert_eq!(enc("\u{7f}"), r#""\u007f""#);
        assert_eq!(enc("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn parses_values() {
        let v =
            parse(br#"{"a": [1, -2.5, 1e3, true, null, "x\u00e9\ud83d\ude00"], "b": {}}"#).unwrap();
        assert_eq!(
            v,
            Value::Object(vec![
                (
                    "a".into(),
                    Value::Array(vec![
                        Value::Int(1),
                        Value::Float(-2.5),
                        Value::Float(1000.0),
                        Value::Bool(true),
                        Value::Null,
                        Value::Str("xé😀".into()),
                    ])
                ),
                ("b".into(), Value::Object(vec![])),
            ])
        );
        assert_eq!(
            parse(b"123456789012345678901234567890").unwrap(),
            Value::BigInt("123456789012345678901234567890".into())
        );
        assert!(matches!(parse(b"-Infinity").unwrap(), Value::Float(f) if f == f64::NEG_INFINITY));
    }

    #[test]
    fn rejects_bad_documents() {
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"\"abc",
            b"{\"a\" 1}",
            b"1 2",
            b"",
            b"[01]",
            b"\"\\ud800\"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

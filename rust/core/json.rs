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
    // Most text in events is printable ASCII with nothing to escape.
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
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

/// Appends `value` as 32 lower-case hex digits, as `uuid.UUID.hex` is.
pub fn write_hex128(out: &mut Vec<u8>, value: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..32).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// Receives a document's values bottom-up (a container after its items),
/// as Python's json hands objects to an `object_hook`.
pub trait Builder {
    type Value;
    type Error;
    fn null(&mut self) -> Result<Self::Value, Self::Error>;
    fn boolean(&mut self, value: bool) -> Result<Self::Value, Self::Error>;
    fn int(&mut self, value: i64) -> Result<Self::Value, Self::Error>;
    /// An integer beyond `i64`, as its digits.
    fn big_int(&mut self, digits: &str) -> Result<Self::Value, Self::Error>;
    fn float(&mut self, value: f64) -> Result<Self::Value, Self::Error>;
    fn string(&mut self, value: &str) -> Result<Self::Value, Self::Error>;
    /// An object's key (keys are strings).
    fn key(&mut self, value: &str) -> Result<Self::Value, Self::Error>;
    fn array(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, Self::Error>;
    fn object(
        &mut self,
        members: Vec<(Self::Value, Self::Value)>,
    ) -> Result<Self::Value, Self::Error>;
    /// An object written exactly as `{"_type_": "<type_name>", "_data_":
    /// "<data>"}` (how a transcoded value with text data is stored), with
    /// neither string escaped. By default it is built as any object is.
    fn tagged(&mut self, type_name: &str, data: &str) -> Result<Self::Value, Self::Error> {
        let members = vec![
            (self.key("_type_")?, self.string(type_name)?),
            (self.key("_data_")?, self.string(data)?),
        ];
        self.object(members)
    }
}

/// Why a document was not built: bad text, or the builder refused.
#[derive(Debug)]
pub enum BuildError<E> {
    Syntax(ParseError),
    Build(E),
}

impl<E> From<ParseError> for BuildError<E> {
    fn from(e: ParseError) -> Self {
        BuildError::Syntax(e)
    }
}

/// Parses a whole document into a [`Value`].
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    match parse_with(text, &mut ValueBuilder) {
        Ok(v) => Ok(v),
        Err(BuildError::Syntax(e)) => Err(e),
        Err(BuildError::Build(never)) => match never {},
    }
}

/// Parses a whole document, handing its values to `builder`.
pub fn parse_with<B: Builder>(
    text: &[u8],
    builder: &mut B,
) -> Result<B::Value, BuildError<B::Error>> {
    let mut p = Parser {
        text,
        pos: 0,
        depth: 0,
        scratch: String::new(),
        // One pass over the whole document costs less than one per string.
        // If it is not UTF-8, strings are checked one by one, so the error
        // says where.
        utf8: std::str::from_utf8(text).is_ok(),
    };
    p.skip_ws();
    let v = p.value(builder)?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.error("extra data").into());
    }
    Ok(v)
}

/// Builds [`Value`] trees.
pub struct ValueBuilder;

impl Builder for ValueBuilder {
    type Value = Value;
    type Error = std::convert::Infallible;
    fn null(&mut self) -> Result<Value, Self::Error> {
        Ok(Value::Null)
    }
    fn boolean(&mut self, value: bool) -> Result<Value, Self::Error> {
        Ok(Value::Bool(value))
    }
    fn int(&mut self, value: i64) -> Result<Value, Self::Error> {
        Ok(Value::Int(value))
    }
    fn big_int(&mut self, digits: &str) -> Result<Value, Self::Error> {
        Ok(Value::BigInt(digits.to_string()))
    }
    fn float(&mut self, value: f64) -> Result<Value, Self::Error> {
        Ok(Value::Float(value))
    }
    fn string(&mut self, value: &str) -> Result<Value, Self::Error> {
        Ok(Value::Str(value.to_string()))
    }
    fn key(&mut self, value: &str) -> Result<Value, Self::Error> {
        Ok(Value::Str(value.to_string()))
    }
    fn array(&mut self, items: Vec<Value>) -> Result<Value, Self::Error> {
        Ok(Value::Array(items))
    }
    fn object(&mut self, members: Vec<(Value, Value)>) -> Result<Value, Self::Error> {
        Ok(Value::Object(
            members
                .into_iter()
                .map(|(k, v)| match k {
                    Value::Str(k) => (k, v),
                    _ => unreachable!("keys are built by key()"),
                })
                .collect(),
        ))
    }
}

/// Deep enough for any real event, shallow enough not to exhaust the stack.
const MAX_DEPTH: usize = 512;

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    depth: usize,
    /// Holds a string with escapes while it is unescaped.
    scratch: String,
    /// The whole document is valid UTF-8, so is every run of it between
    /// ASCII delimiters (UTF-8 never uses ASCII bytes inside a character).
    utf8: bool,
}

/// Where a parsed string's text is: in the document, or unescaped in the
/// parser's scratch buffer.
enum Text {
    Borrowed(usize, usize),
    Scratch,
}

/// The text of `text[start..end]`, a run that begins and ends at ASCII
/// delimiters; None if it is not UTF-8. `utf8` says the whole of `text`
/// is known to be UTF-8.
fn str_at(text: &[u8], utf8: bool, start: usize, end: usize) -> Option<&str> {
    let bytes = &text[start..end];
    if utf8 {
        // SAFETY: the document is UTF-8 and the run is bounded by ASCII
        // bytes, which never fall inside a multi-byte character.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
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

    fn text_of(&self, t: &Text) -> &str {
        match *t {
            // SAFETY: `string()` checked these bytes as UTF-8 when it
            // scanned them, and returns Borrowed only for such a span.
            Text::Borrowed(a, b) => unsafe { std::str::from_utf8_unchecked(&self.text[a..b]) },
            Text::Scratch => &self.scratch,
        }
    }

    fn value<B: Builder>(&mut self, b: &mut B) -> Result<B::Value, BuildError<B::Error>> {
        let built = match self.text.get(self.pos) {
            None => return Err(self.error("unexpected end of data").into()),
            Some(b'{') => return self.object(b),
            Some(b'[') => return self.array(b),
            Some(b'"') => {
                let t = self.string()?;
                b.string(self.text_of(&t))
            }
            Some(b'-' | b'0'..=b'9') => return self.number(b),
            Some(_) => {
                if self.eat(b"null") {
                    b.null()
                } else if self.eat(b"true") {
                    b.boolean(true)
                } else if self.eat(b"false") {
                    b.boolean(false)
                } else if self.eat(b"NaN") {
                    b.float(f64::NAN)
                } else if self.eat(b"Infinity") {
                    b.float(f64::INFINITY)
                } else {
                    return Err(self.error("expecting value").into());
                }
            }
        };
        built.map_err(BuildError::Build)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        Ok(())
    }

    fn object<B: Builder>(&mut self, b: &mut B) -> Result<B::Value, BuildError<B::Error>> {
        if let Some((name, data)) = self.tagged_strings() {
            return b.tagged(name, data).map_err(BuildError::Build);
        }
        self.enter()?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.eat(b"}") {
            self.depth -= 1;
            return b.object(members).map_err(BuildError::Build);
        }
        loop {
            self.skip_ws();
            if self.text.get(self.pos) != Some(&b'"') {
                return Err(self
                    .error("expecting property name enclosed in double quotes")
                    .into());
            }
            let t = self.string()?;
            let key = b.key(self.text_of(&t)).map_err(BuildError::Build)?;
            self.skip_ws();
            if !self.eat(b":") {
                return Err(self.error("expecting ':' delimiter").into());
            }
            self.skip_ws();
            let v = self.value(b)?;
            members.push((key, v));
            self.skip_ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                self.depth -= 1;
                return b.object(members).map_err(BuildError::Build);
            }
            return Err(self.error("expecting ',' delimiter").into());
        }
    }

    /// At an object's `{`: when the object is exactly `{"_type_": "…",
    /// "_data_": "…"}` with plain strings (no escapes, no control
    /// characters, valid UTF-8), moves past it and returns the two texts;
    /// otherwise leaves the position alone.
    fn tagged_strings(&mut self) -> Option<(&str, &str)> {
        const TYPE: &[u8] = b"{\"_type_\": \"";
        const DATA: &[u8] = b", \"_data_\": \"";
        let text = self.text;
        let plain = |from: usize| -> Option<usize> {
            let len = text
                .get(from..)?
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            (text[from + len] == b'"').then_some(from + len)
        };
        let rest = text.get(self.pos..)?;
        if self.depth >= MAX_DEPTH || !rest.starts_with(TYPE) {
            return None;
        }
        let name_start = self.pos + TYPE.len();
        let name_end = plain(name_start)?;
        if !text.get(name_end + 1..)?.starts_with(DATA) {
            return None;
        }
        let data_start = name_end + 1 + DATA.len();
        let data_end = plain(data_start)?;
        if text.get(data_end + 1) != Some(&b'}') {
            return None;
        }
        let name = str_at(text, self.utf8, name_start, name_end)?;
        let data = str_at(text, self.utf8, data_start, data_end)?;
        self.pos = data_end + 2;
        Some((name, data))
    }

    fn array<B: Builder>(&mut self, b: &mut B) -> Result<B::Value, BuildError<B::Error>> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(b"]") {
            self.depth -= 1;
            return b.array(items).map_err(BuildError::Build);
        }
        loop {
            self.skip_ws();
            items.push(self.value(b)?);
            self.skip_ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                self.depth -= 1;
                return b.array(items).map_err(BuildError::Build);
            }
            return Err(self.error("expecting ',' delimiter").into());
        }
    }

    fn number<B: Builder>(&mut self, b: &mut B) -> Result<B::Value, BuildError<B::Error>> {
        let start = self.pos;
        if self.eat(b"-") && self.eat(b"Infinity") {
            return b.float(f64::NEG_INFINITY).map_err(BuildError::Build);
        }
        match self.text.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error("expecting value").into()),
        }
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
        let literal = std::str::from_utf8(&self.text[start..self.pos]).expect("ascii digits");
        let built = if is_float {
            match literal.parse::<f64>() {
                Ok(f) => b.float(f),
                Err(_) => return Err(self.error("invalid number").into()),
            }
        } else {
            match literal.parse::<i64>() {
                Ok(i) => b.int(i),
                Err(_) => b.big_int(literal),
            }
        };
        built.map_err(BuildError::Build)
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Scans a string; its text is borrowed from the document unless it
    /// has escapes, in which case it is unescaped into `scratch`.
    fn string(&mut self) -> Result<Text, ParseError> {
        self.pos += 1;
        let first = self.pos;
        let mut escaped = false;
        loop {
            let run_start = self.pos;
            let rest = &self.text[run_start..];
            self.pos += rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            if escaped {
                let run = str_at(self.text, self.utf8, run_start, self.pos)
                    .ok_or_else(|| self.error("invalid UTF-8 in string"))?;
                self.scratch.push_str(run);
            } else if str_at(self.text, self.utf8, run_start, self.pos).is_none() {
                return Err(self.error("invalid UTF-8 in string"));
            }
            match self.text.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(if escaped {
                        Text::Scratch
                    } else {
                        Text::Borrowed(first, self.pos - 1)
                    });
                }
                Some(b'\\') => {
                    if !escaped {
                        escaped = true;
                        self.scratch.clear();
                        let before =
                            str_at(self.text, self.utf8, first, self.pos).expect("checked above");
                        self.scratch.push_str(before);
                    }
                    self.pos += 1;
                    self.escape()?;
                }
                Some(_) => return Err(self.error("invalid control character in string")),
            }
        }
    }

    fn escape(&mut self) -> Result<(), ParseError> {
        let Some(&c) = self.text.get(self.pos) else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{08}',
            b'f' => '\u{0c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
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
                    Some(ch) => ch,
                    None => return Err(self.error("unpaired surrogate")),
                }
            }
            _ => return Err(self.error("invalid \\escape")),
        };
        self.scratch.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            // Exactly four hex digits, as Python's json reads them
            // (from_str_radix alone would take a sign: "\\u+041").
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
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
    fn strings_are_checked_as_utf8_whether_or_not_the_document_is() {
        let parse = |text: &[u8]| parse_with(text, &mut ValueBuilder);
        let valid = "{\"k\u{e9}\": \"caf\u{e9} \\\" \u{4e2d}\"}";
        let Ok(Value::Object(pairs)) = parse(valid.as_bytes()) else {
            panic!("not parsed as an object")
        };
        assert_eq!(pairs[0].0, "k\u{e9}");
        assert!(matches!(&pairs[0].1, Value::Str(s) if s == "caf\u{e9} \" \u{4e2d}"));
        // Invalid bytes are refused in a plain run, after an escape, and in
        // the transcoded form read without building its keys.
        for bad in [
            &b"[\"ok\", \"\xff\"]"[..],
            &b"[\"a\\n\xfe\"]"[..],
            &b"{\"_type_\": \"\xc3\", \"_data_\": \"x\"}"[..],
        ] {
            let error = match parse(bad) {
                Err(BuildError::Syntax(e)) => e,
                Err(BuildError::Build(never)) => match never {},
                Ok(value) => panic!("accepted {bad:?} as {value:?}"),
            };
            assert!(error.to_string().contains("UTF-8"), "{error}");
        }
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
    fn hex128_is_zero_padded_lower_case() {
        let hex = |v: u128| {
            let mut out = Vec::new();
            write_hex128(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(hex(0), "0".repeat(32));
        assert_eq!(hex(u128::MAX), "f".repeat(32));
        assert_eq!(hex(0xABCDEF), format!("{:032x}", 0xABCDEFu128));
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

    /// Counts the objects handed over as tagged.
    struct TaggedCounter(usize);

    impl Builder for TaggedCounter {
        type Value = Value;
        type Error = std::convert::Infallible;
        fn null(&mut self) -> Result<Value, Self::Error> {
            ValueBuilder.null()
        }
        fn boolean(&mut self, value: bool) -> Result<Value, Self::Error> {
            ValueBuilder.boolean(value)
        }
        fn int(&mut self, value: i64) -> Result<Value, Self::Error> {
            ValueBuilder.int(value)
        }
        fn big_int(&mut self, digits: &str) -> Result<Value, Self::Error> {
            ValueBuilder.big_int(digits)
        }
        fn float(&mut self, value: f64) -> Result<Value, Self::Error> {
            ValueBuilder.float(value)
        }
        fn string(&mut self, value: &str) -> Result<Value, Self::Error> {
            ValueBuilder.string(value)
        }
        fn key(&mut self, value: &str) -> Result<Value, Self::Error> {
            ValueBuilder.key(value)
        }
        fn array(&mut self, items: Vec<Value>) -> Result<Value, Self::Error> {
            ValueBuilder.array(items)
        }
        fn object(&mut self, members: Vec<(Value, Value)>) -> Result<Value, Self::Error> {
            ValueBuilder.object(members)
        }
        fn tagged(&mut self, type_name: &str, data: &str) -> Result<Value, Self::Error> {
            self.0 += 1;
            ValueBuilder.tagged(type_name, data)
        }
    }

    #[test]
    fn tagged_objects_build_as_objects_do() {
        let tagged = |name: &str, data: &str| {
            Value::Object(vec![
                ("_type_".into(), Value::Str(name.into())),
                ("_data_".into(), Value::Str(data.into())),
            ])
        };
        let cases: [(&[u8], usize, Value); 5] = [
            (br#"{"_type_": "uuid_hex", "_data_": "ab"}"#, 1, tagged("uuid_hex", "ab")),
            ("[{\"_type_\": \"t\", \"_data_\": \"\"}, {\"_type_\": \"\u{e9}\", \"_data_\": \"x\"}]".as_bytes(), 2,
             Value::Array(vec![tagged("t", ""), tagged("\u{e9}", "x")])),
            // Escapes, other spacing, other data and more keys take the general path.
            (br#"{"_type_": "t", "_data_": "a\"b"}"#, 0, tagged("t", "a\"b")),
            (br#"{"_type_":"t","_data_":"d"}"#, 0, tagged("t", "d")),
            (br#"{"_type_": "t", "_data_": 1}"#, 0, Value::Object(vec![
                ("_type_".into(), Value::Str("t".into())),
                ("_data_".into(), Value::Int(1)),
            ])),
        ];
        for (text, expected_tagged, expected) in cases {
            let mut counter = TaggedCounter(0);
            let got = parse_with(text, &mut counter).unwrap();
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(text));
            assert_eq!(
                counter.0,
                expected_tagged,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        for bad in [
            &br#"{"_type_": "t", "_data_": "d"}x"#[..],
            br#"{"_type_": "t", "_data_": "d"#,
            b"{\"_type_\": \"t\", \"_data_\": \"a\x01\"}",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rejects_bad_documents() {
        for bad in [
            &b"{"[..],
            // Python's json takes exactly four hex digits, no sign.
            &br#""\u+041""#[..],
            &br#""\u-041""#[..],
            &br#""\u 041""#[..],
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

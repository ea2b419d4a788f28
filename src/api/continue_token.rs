//! List continue tokens in kube-apiserver's format (`apiserver/pkg/storage/continue.go`):
//! `base64.RawURLEncoding(JSON {"v":"meta.k8s.io/v1","rv":<int64>,"start":"<key relative to the
//! list prefix>"})`.
//!
//! Decoding reproduces the server's error texts, including those of Go's base64 and
//! `encoding/json` packages for malformed tokens, and the path-cleaning check that keeps a
//! token from reaching outside the list prefix.

use base64::Engine as _;

use crate::api::selectors::push_go_quoted_char;

/// The only token version.
pub const TOKEN_VERSION: &str = "meta.k8s.io/v1";

const INVALID: &str = "invalid continue token: continue key is not valid";

/// Encodes a token that resumes the list at `start_relative` (a key relative to the list
/// prefix, *inclusive*). `rv` is the revision the list is pinned to, or -1 to continue at the
/// latest revision.
pub fn encode(rv: i64, start_relative: &str) -> String {
    let mut json = String::with_capacity(start_relative.len() + 48);
    json.push_str("{\"v\":");
    push_go_json_string(&mut json, TOKEN_VERSION);
    json.push_str(",\"rv\":");
    json.push_str(&rv.to_string());
    json.push_str(",\"start\":");
    push_go_json_string(&mut json, start_relative);
    json.push('}');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The token for the page after the one whose last item has the relative key
/// `last_relative_key`: the list resumes just after it (`last + "\0"`).
pub fn next_after(rv: i64, last_relative_key: &str) -> String {
    let mut start = String::with_capacity(last_relative_key.len() + 1);
    start.push_str(last_relative_key);
    start.push('\0');
    encode(rv, &start)
}

/// Decodes a token into (resourceVersion, start key relative to the list prefix). The error is
/// the message of kube-apiserver's 400, e.g. `invalid continue token: continue key is not valid:
/// encoded start key empty (version meta.k8s.io/v1)`. A resourceVersion of -1 (from a 410's
/// token) is accepted; 0 is not.
pub fn decode(token: &str) -> Result<(i64, String), String> {
    let data = go_base64_raw_url_decode(token.as_bytes())
        .map_err(|at| format!("{INVALID}: illegal base64 data at input byte {at}"))?;
    let tok = unmarshal_token(&data).map_err(|e| format!("{INVALID}: {e}"))?;
    if tok.v != TOKEN_VERSION {
        return Err(format!(
            "{INVALID}: server does not recognize this encoded version {}",
            tok.v
        ));
    }
    if tok.rv == 0 {
        return Err(format!(
            "{INVALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ));
    }
    if tok.start.is_empty() {
        return Err(format!(
            "{INVALID}: encoded start key empty (version meta.k8s.io/v1)"
        ));
    }
    // Defend against path traversal: the (rooted) key must already be clean.
    let key = if tok.start.starts_with('/') {
        tok.start.clone()
    } else {
        format!("/{}", tok.start)
    };
    if go_path_clean(&key) != key {
        return Err(format!("{INVALID}: {}", tok.start));
    }
    Ok((tok.rv, key[1..].to_string()))
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escapes included).
fn push_go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `base64.RawURLEncoding.DecodeString` (non-strict: CR/LF are skipped, trailing bits
/// ignored). The error is the offset Go reports in "illegal base64 data at input byte N".
fn go_base64_raw_url_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(src.len() * 3 / 4 + 3);
    let mut si = 0usize;
    while si < src.len() {
        let mut buf = [0u32; 4];
        let mut dlen = 4;
        let mut j = 0usize;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                if j == 1 {
                    return Err(si - 1);
                }
                dlen = j;
                break;
            }
            let b = src[si];
            si += 1;
            if let Some(v) = value(b) {
                buf[j] = v;
                j += 1;
                continue;
            }
            if b == b'\n' || b == b'\r' {
                continue;
            }
            return Err(si - 1);
        }
        let val = (buf[0] << 18) | (buf[1] << 12) | (buf[2] << 6) | buf[3];
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
    }
    Ok(out)
}

/// Go's `path.Clean`.
fn go_path_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let p = path.as_bytes();
    let n = p.len();
    let rooted = p[0] == b'/';
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if p[r] == b'/' || (p[r] == b'.' && (r + 1 == n || p[r + 1] == b'/')) {
            // An empty or "." element.
            r += 1;
        } else if p[r] == b'.' && p[r + 1] == b'.' && (r + 2 == n || p[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                // Back up to the previous '/' (dropping it too, unless it is the root).
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".to_string();
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---- encoding/json emulation ----

#[derive(Default)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

/// `json.Unmarshal(data, &continueToken{})`: a syntax check with Go's messages, then the
/// field assignments with Go's first type error.
fn unmarshal_token(data: &[u8]) -> Result<Token, String> {
    check_valid(data)?;
    let mut tok = Token::default();
    let mut x = Extractor { d: data, i: 0 };
    x.ws();
    let kind = match data.get(x.i) {
        Some(b'{') => None,
        Some(b'[') => Some("array"),
        Some(b'"') => Some("string"),
        Some(b't' | b'f') => Some("bool"),
        Some(b'n') => return Ok(tok),
        _ => Some("number"),
    };
    if let Some(kind) = kind {
        return Err(format!(
            "json: cannot unmarshal {kind} into Go value of type storage.continueToken"
        ));
    }
    x.i += 1;
    let mut first_err: Option<String> = None;
    loop {
        x.ws();
        if x.peek() == b'}' {
            break;
        }
        if x.peek() == b',' {
            x.i += 1;
            x.ws();
        }
        let key = x.string();
        x.ws();
        x.i += 1; // ':'
        x.ws();
        let value = x.value();
        let err = match fold_key(&key).as_str() {
            "V" => assign_string(&mut tok.v, value, "v"),
            "RV" => assign_int(&mut tok.rv, value),
            "START" => assign_string(&mut tok.start, value, "start"),
            _ => None,
        };
        if first_err.is_none() {
            first_err = err;
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(tok),
    }
}

/// Go's case-insensitive field-name folding, for the letters our field names use.
fn fold_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c == '\u{17f}' {
                'S'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

enum JValue {
    Null,
    Bool,
    Number(String),
    Str(String),
    Object,
    Array,
}

fn kind_name(v: &JValue) -> String {
    match v {
        JValue::Null => "null".into(),
        JValue::Bool => "bool".into(),
        JValue::Number(_) => "number".into(),
        JValue::Str(_) => "string".into(),
        JValue::Object => "object".into(),
        JValue::Array => "array".into(),
    }
}

fn assign_string(dst: &mut String, v: JValue, field: &str) -> Option<String> {
    match v {
        JValue::Null => None,
        JValue::Str(s) => {
            *dst = s;
            None
        }
        other => Some(format!(
            "json: cannot unmarshal {} into Go struct field continueToken.{field} of type string",
            kind_name(&other)
        )),
    }
}

fn assign_int(dst: &mut i64, v: JValue) -> Option<String> {
    match v {
        JValue::Null => None,
        JValue::Number(lit) => match lit.parse::<i64>() {
            // Go's ParseInt takes no leading '+', which JSON numbers never have anyway.
            Ok(n) => {
                *dst = n;
                None
            }
            Err(_) => Some(format!("json: cannot unmarshal number {lit} into Go struct field continueToken.rv of type int64")),
        },
        other => Some(format!("json: cannot unmarshal {} into Go struct field continueToken.rv of type int64", kind_name(&other))),
    }
}

/// Reads values out of JSON already known to be valid, without recursion.
struct Extractor<'a> {
    d: &'a [u8],
    i: usize,
}

impl Extractor<'_> {
    fn peek(&self) -> u8 {
        self.d.get(self.i).copied().unwrap_or(0)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> JValue {
        match self.peek() {
            b'"' => JValue::Str(self.string()),
            b't' => {
                self.i += 4;
                JValue::Bool
            }
            b'f' => {
                self.i += 5;
                JValue::Bool
            }
            b'n' => {
                self.i += 4;
                JValue::Null
            }
            b'{' | b'[' => {
                let kind = if self.peek() == b'{' {
                    JValue::Object
                } else {
                    JValue::Array
                };
                self.skip_container();
                kind
            }
            _ => {
                let start = self.i;
                while matches!(self.peek(), b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    self.i += 1;
                }
                JValue::Number(String::from_utf8_lossy(&self.d[start..self.i]).into_owned())
            }
        }
    }

    fn skip_container(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    depth -= 1;
                    self.i += 1;
                    if depth == 0 {
                        return;
                    }
                }
                b'"' => {
                    self.string();
                }
                0 if self.i >= self.d.len() => return,
                _ => self.i += 1,
            }
        }
    }

    /// A string literal at the cursor, unquoted as Go does (bad surrogates and invalid
    /// UTF-8 become U+FFFD).
    fn string(&mut self) -> String {
        self.i += 1; // opening quote
        let mut out = String::new();
        let mut raw_start = self.i;
        loop {
            let b = self.peek();
            if b == b'"' || b == b'\\' || self.i >= self.d.len() {
                push_lossy_go(&mut out, &self.d[raw_start..self.i]);
            }
            if self.i >= self.d.len() {
                return out;
            }
            match b {
                b'"' => {
                    self.i += 1;
                    return out;
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek();
                    self.i += 1;
                    match e {
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4();
                            if (0xd800..0xdc00).contains(&hi)
                                && self.d[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4();
                                if (0xdc00..0xe000).contains(&lo) {
                                    let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                    out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                } else {
                                    out.push('\u{fffd}');
                                    self.i = save;
                                }
                            } else {
                                out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                            }
                        }
                        other => out.push(other as char),
                    }
                    raw_start = self.i;
                }
                _ => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> u32 {
        let end = (self.i + 4).min(self.d.len());
        let v = std::str::from_utf8(&self.d[self.i..end])
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0xfffd);
        self.i = end;
        v
    }
}

/// Appends bytes as UTF-8, each invalid byte becoming U+FFFD (Go's per-byte replacement).
fn push_lossy_go(out: &mut String, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.push_str(std::str::from_utf8(&bytes[..good]).unwrap_or_default());
                let bad = e.error_len().unwrap_or(bytes.len() - good);
                for _ in 0..bad {
                    out.push('\u{fffd}');
                }
                bytes = &bytes[good + bad..];
            }
        }
    }
}

/// Go's `encoding/json` scanner (`checkValid`), reporting the same syntax errors.
fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut s = Scanner {
        stack: Vec::new(),
        state: St::BeginValue,
        end_top: false,
    };
    for &c in data {
        s.step(c)?;
    }
    if s.end_top {
        return Ok(());
    }
    s.step(b' ')?;
    if s.end_top {
        return Ok(());
    }
    Err("unexpected end of JSON input".to_string())
}

const MAX_NESTING_DEPTH: usize = 10000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy)]
enum St {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// A literal: its name and how many bytes of it were read.
    Lit(&'static str, usize),
}

struct Scanner {
    stack: Vec<Parse>,
    state: St,
    end_top: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `quoteChar` for a byte.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            let mut s = String::from("'");
            push_go_quoted_char(&mut s, c as char, '"');
            s.push('\'');
            s
        }
    }
}

fn syntax_error(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

impl Scanner {
    fn push(&mut self, c: u8, p: Parse) -> Result<(), String> {
        self.stack.push(p);
        if self.stack.len() > MAX_NESTING_DEPTH {
            return Err(syntax_error(c, "exceeded max depth"));
        }
        Ok(())
    }

    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.state = St::EndTop;
            self.end_top = true;
        } else {
            self.state = St::EndValue;
        }
    }

    fn step(&mut self, c: u8) -> Result<(), String> {
        match self.state {
            St::BeginValueOrEmpty => {
                if is_space(c) {
                    Ok(())
                } else if c == b']' {
                    self.end_value(c)
                } else {
                    self.begin_value(c)
                }
            }
            St::BeginValue => self.begin_value(c),
            St::BeginStringOrEmpty => {
                if is_space(c) {
                    Ok(())
                } else if c == b'}' {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Parse::ObjectValue;
                    }
                    self.end_value(c)
                } else {
                    self.begin_string(c)
                }
            }
            St::BeginString => self.begin_string(c),
            St::EndValue => self.end_value(c),
            St::EndTop => {
                if is_space(c) {
                    Ok(())
                } else {
                    Err(syntax_error(c, "after top-level value"))
                }
            }
            St::InString => {
                match c {
                    b'"' => self.state = St::EndValue,
                    b'\\' => self.state = St::InStringEsc,
                    c if c < 0x20 => return Err(syntax_error(c, "in string literal")),
                    _ => {}
                }
                Ok(())
            }
            St::InStringEsc => {
                match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                        self.state = St::InString
                    }
                    b'u' => self.state = St::InStringEscU(0),
                    _ => return Err(syntax_error(c, "in string escape code")),
                }
                Ok(())
            }
            St::InStringEscU(k) => {
                if !c.is_ascii_hexdigit() {
                    return Err(syntax_error(c, "in \\u hexadecimal character escape"));
                }
                self.state = if k == 3 {
                    St::InString
                } else {
                    St::InStringEscU(k + 1)
                };
                Ok(())
            }
            St::Neg => match c {
                b'0' => {
                    self.state = St::Zero;
                    Ok(())
                }
                b'1'..=b'9' => {
                    self.state = St::One;
                    Ok(())
                }
                _ => Err(syntax_error(c, "in numeric literal")),
            },
            St::One => {
                if c.is_ascii_digit() {
                    Ok(())
                } else {
                    self.zero(c)
                }
            }
            St::Zero => self.zero(c),
            St::Dot => {
                if c.is_ascii_digit() {
                    self.state = St::Dot0;
                    Ok(())
                } else {
                    Err(syntax_error(c, "after decimal point in numeric literal"))
                }
            }
            St::Dot0 => {
                if c.is_ascii_digit() {
                    Ok(())
                } else if c == b'e' || c == b'E' {
                    self.state = St::E;
                    Ok(())
                } else {
                    self.end_value(c)
                }
            }
            St::E => {
                if c == b'+' || c == b'-' {
                    self.state = St::ESign;
                    Ok(())
                } else {
                    self.e_sign(c)
                }
            }
            St::ESign => self.e_sign(c),
            St::E0 => {
                if c.is_ascii_digit() {
                    Ok(())
                } else {
                    self.end_value(c)
                }
            }
            St::Lit(name, read) => {
                let want = name.as_bytes()[read];
                if c != want {
                    return Err(syntax_error(
                        c,
                        &format!("in literal {name} (expecting '{}')", want as char),
                    ));
                }
                self.state = if read + 1 == name.len() {
                    St::EndValue
                } else {
                    St::Lit(name, read + 1)
                };
                Ok(())
            }
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            return Ok(());
        }
        self.state = match c {
            b'{' => {
                self.state = St::BeginStringOrEmpty;
                return self.push(c, Parse::ObjectKey);
            }
            b'[' => {
                self.state = St::BeginValueOrEmpty;
                return self.push(c, Parse::ArrayValue);
            }
            b'"' => St::InString,
            b'-' => St::Neg,
            b'0' => St::Zero,
            b't' => St::Lit("true", 1),
            b'f' => St::Lit("false", 1),
            b'n' => St::Lit("null", 1),
            b'1'..=b'9' => St::One,
            _ => return Err(syntax_error(c, "looking for beginning of value")),
        };
        Ok(())
    }

    fn begin_string(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            return Ok(());
        }
        if c == b'"' {
            self.state = St::InString;
            return Ok(());
        }
        Err(syntax_error(
            c,
            "looking for beginning of object key string",
        ))
    }

    fn zero(&mut self, c: u8) -> Result<(), String> {
        match c {
            b'.' => {
                self.state = St::Dot;
                Ok(())
            }
            b'e' | b'E' => {
                self.state = St::E;
                Ok(())
            }
            _ => self.end_value(c),
        }
    }

    fn e_sign(&mut self, c: u8) -> Result<(), String> {
        if c.is_ascii_digit() {
            self.state = St::E0;
            Ok(())
        } else {
            Err(syntax_error(c, "in exponent of numeric literal"))
        }
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(&top) = self.stack.last() else {
            self.state = St::EndTop;
            self.end_top = true;
            return self.step(c);
        };
        if is_space(c) {
            self.state = St::EndValue;
            return Ok(());
        }
        match (top, c) {
            (Parse::ObjectKey, b':') => {
                *self.stack.last_mut().expect("non-empty") = Parse::ObjectValue;
                self.state = St::BeginValue;
                Ok(())
            }
            (Parse::ObjectKey, _) => Err(syntax_error(c, "after object key")),
            (Parse::ObjectValue, b',') => {
                *self.stack.last_mut().expect("non-empty") = Parse::ObjectKey;
                self.state = St::BeginString;
                Ok(())
            }
            (Parse::ObjectValue, b'}') | (Parse::ArrayValue, b']') => {
                self.pop();
                Ok(())
            }
            (Parse::ObjectValue, _) => Err(syntax_error(c, "after object key:value pair")),
            (Parse::ArrayValue, b',') => {
                self.state = St::BeginValue;
                Ok(())
            }
            (Parse::ArrayValue, _) => Err(syntax_error(c, "after array element")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn round_trip() {
        let t = next_after(1234, "ns1/pod-7");
        assert_eq!(decode(&t), Ok((1234, "ns1/pod-7\0".to_string())));
        let t = encode(-1, "a/b");
        assert_eq!(decode(&t), Ok((-1, "a/b".to_string())));
        let t = next_after(5, "we<ird>&\"\\\n\u{1}é");
        assert_eq!(decode(&t), Ok((5, "we<ird>&\"\\\n\u{1}é\0".to_string())));
    }

    #[test]
    fn matches_go_encoding() {
        // What kube-apiserver produces for rv 1234 after ns1/pod-7.
        let json = r#"{"v":"meta.k8s.io/v1","rv":1234,"start":"ns1/pod-7\u0000"}"#;
        assert_eq!(next_after(1234, "ns1/pod-7"), b64(json));
        assert_eq!(
            next_after(1234, "ns1/pod-7"),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzNCwic3RhcnQiOiJuczEvcG9kLTdcdTAwMDAifQ"
        );
        let mut s = String::new();
        push_go_json_string(&mut s, "<a&b>\u{8}\u{c}\u{1f}\u{2028}");
        assert_eq!(s, r#""\u003ca\u0026b\u003e\b\f\u001f\u2028""#);
    }

    #[test]
    fn accepts_go_json_variants() {
        let t = b64(
            r#" { "RV" : 7 , "Start":"/x\u0000", "extra":[1,{"a":"]"}], "v" : "meta.k8s.io/v1" } "#,
        );
        assert_eq!(decode(&t), Ok((7, "x\0".to_string())));
        // Null leaves a field unset.
        let t = b64(r#"{"v":"meta.k8s.io/v1","rv":7,"start":"a","start":null}"#);
        assert_eq!(decode(&t), Ok((7, "a".to_string())));
        // Go's base64 skips newlines.
        let t = b64(r#"{"v":"meta.k8s.io/v1","rv":7,"start":"a"}"#);
        let wrapped = format!("{}\r\n{}", &t[..10], &t[10..]);
        assert_eq!(decode(&wrapped), Ok((7, "a".to_string())));
    }

    #[test]
    fn semantic_errors() {
        let p = "invalid continue token: continue key is not valid";
        assert_eq!(
            decode(&b64(r#"{"v":"x","rv":1,"start":"a"}"#)),
            Err(format!(
                "{p}: server does not recognize this encoded version x"
            ))
        );
        assert_eq!(
            decode(&b64(r#"{"rv":1,"start":"a"}"#)),
            Err(format!(
                "{p}: server does not recognize this encoded version "
            ))
        );
        assert_eq!(
            decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#)),
            Err(format!(
                "{p}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            ))
        );
        assert_eq!(
            decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":3,"start":""}"#)),
            Err(format!(
                "{p}: encoded start key empty (version meta.k8s.io/v1)"
            ))
        );
        for bad in ["../x", "a/../../b", "a//b", "a/", "./a", "a/."] {
            let json = format!(r#"{{"v":"meta.k8s.io/v1","rv":3,"start":"{bad}"}}"#);
            assert_eq!(decode(&b64(&json)), Err(format!("{p}: {bad}")), "{bad}");
        }
        assert_eq!(
            decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"/"}"#)),
            Ok((3, String::new()))
        );
    }

    #[test]
    fn encoding_errors() {
        let p = "invalid continue token: continue key is not valid";
        assert_eq!(
            decode("abc$"),
            Err(format!("{p}: illegal base64 data at input byte 3"))
        );
        assert_eq!(
            decode("abcde"),
            Err(format!("{p}: illegal base64 data at input byte 4"))
        );
        assert_eq!(
            decode("ab=="),
            Err(format!("{p}: illegal base64 data at input byte 2"))
        );
        assert_eq!(
            decode(""),
            Err(format!("{p}: unexpected end of JSON input"))
        );
        assert_eq!(
            decode(&b64("x")),
            Err(format!(
                "{p}: invalid character 'x' looking for beginning of value"
            ))
        );
        assert_eq!(
            decode(&b64("{\"v\":1,}")),
            Err(format!(
                "{p}: invalid character '}}' looking for beginning of object key string"
            ))
        );
        assert_eq!(
            decode(&b64("{\"v\" 1}")),
            Err(format!("{p}: invalid character '1' after object key"))
        );
        assert_eq!(
            decode(&b64("{\"v\":1 2}")),
            Err(format!(
                "{p}: invalid character '2' after object key:value pair"
            ))
        );
        assert_eq!(
            decode(&b64("{} x")),
            Err(format!("{p}: invalid character 'x' after top-level value"))
        );
        assert_eq!(
            decode(&b64("{\"v\":tru}")),
            Err(format!(
                "{p}: invalid character '}}' in literal true (expecting 'e')"
            ))
        );
        assert_eq!(
            decode(&b64("{\"v\":-}")),
            Err(format!("{p}: invalid character '}}' in numeric literal"))
        );
        assert_eq!(
            decode(&b64("-")),
            Err(format!("{p}: invalid character ' ' in numeric literal"))
        );
        assert_eq!(
            decode(&b64("{\"v\":\"a")),
            Err(format!("{p}: unexpected end of JSON input"))
        );
        assert_eq!(
            decode(&b64("{\"v\":\"\\x\"}")),
            Err(format!("{p}: invalid character 'x' in string escape code"))
        );
        assert_eq!(
            decode(&b64("\u{1}")),
            Err(format!(
                "{p}: invalid character '\\x01' looking for beginning of value"
            ))
        );
        let binary = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc3u8, 0x28]);
        assert_eq!(
            decode(&binary),
            Err(format!(
                "{p}: invalid character 'Ã' looking for beginning of value"
            ))
        );
        let deep = "[".repeat(10001);
        assert_eq!(
            decode(&b64(&deep)),
            Err(format!("{p}: invalid character '[' exceeded max depth"))
        );
    }

    #[test]
    fn type_errors() {
        let p = "invalid continue token: continue key is not valid";
        assert_eq!(
            decode(&b64("[]")),
            Err(format!(
                "{p}: json: cannot unmarshal array into Go value of type storage.continueToken"
            ))
        );
        assert_eq!(
            decode(&b64("\"x\"")),
            Err(format!(
                "{p}: json: cannot unmarshal string into Go value of type storage.continueToken"
            ))
        );
        assert_eq!(
            decode(&b64("null")),
            Err(format!(
                "{p}: server does not recognize this encoded version "
            ))
        );
        assert_eq!(
            decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":"1","start":"a"}"#)),
            Err(format!("{p}: json: cannot unmarshal string into Go struct field continueToken.rv of type int64"))
        );
        assert_eq!(
            decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":1.5,"start":{}}"#)),
            Err(format!("{p}: json: cannot unmarshal number 1.5 into Go struct field continueToken.rv of type int64"))
        );
        assert_eq!(
            decode(&b64(r#"{"v":2,"rv":1,"start":"a"}"#)),
            Err(format!("{p}: json: cannot unmarshal number into Go struct field continueToken.v of type string"))
        );
        assert_eq!(
            decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":99999999999999999999,"start":"a"}"#)),
            Err(format!("{p}: json: cannot unmarshal number 99999999999999999999 into Go struct field continueToken.rv of type int64"))
        );
    }

    #[test]
    fn path_clean() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a//b/", "/a/b"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("/a/./b/..", "/a"),
            ("a/b/../../c", "c"),
        ] {
            assert_eq!(go_path_clean(i), o, "{i}");
        }
    }
}

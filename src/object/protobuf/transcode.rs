//! Protobuf message bytes ⇄ Kubernetes JSON, driven by the schema tables.

use super::schema::{message, Field, Message, Special, Ty};
use super::values;
use super::wire::{self, Reader, I64, LEN, VARINT};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// Nesting limit (messages within messages), against hostile input.
const MAX_DEPTH: usize = 100;

// ---------------------------------------------------------------------------------------------
// Decoding.

/// Decodes the body of message `msg` into its JSON form.
pub(super) fn decode(msg: u16, data: &[u8]) -> Result<Value, String> {
    decode_at(msg, data, 0)
}

fn decode_at(msg: u16, data: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("protobuf: message nesting too deep".into());
    }
    let m = message(msg);
    match m.special {
        Special::None => decode_fields(m, data, depth).map(Value::Object),
        special => decode_special(m, special, data, depth),
    }
}

fn decode_fields(m: &Message, data: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    let mut slots: Vec<Option<Value>> = vec![None; m.fields.len()];
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (tag, wt) = r.key()?;
        let Some(i) = m.field_index(tag) else {
            // A field this schema doesn't know (a newer Kubernetes): dropped, as Go does.
            r.skip(wt)?;
            continue;
        };
        let f = &m.fields[i];
        decode_field(f, wt, &mut r, &mut slots[i], depth)
            .map_err(|e| format!("{}.{}: {e}", short(m.name), name_of(f)))?;
    }
    let mut out = Map::new();
    for (f, slot) in m.fields.iter().zip(slots) {
        match slot {
            Some(Value::Object(o)) if f.inline => out.extend(o),
            Some(v) if !f.inline => {
                out.insert(f.json.to_string(), v);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

fn name_of(f: &Field) -> String {
    if f.inline {
        format!("<inline {}>", f.tag)
    } else {
        f.json.to_string()
    }
}

fn decode_field(
    f: &Field,
    wt: u8,
    r: &mut Reader,
    slot: &mut Option<Value>,
    depth: usize,
) -> Result<(), String> {
    match f.ty {
        Ty::MapString | Ty::MapBytes | Ty::MapMessage(_) => {
            expect_wt(wt, LEN)?;
            let (k, v) = decode_map_entry(f.ty, r.bytes()?, depth)?;
            let map = slot.get_or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = map {
                o.insert(k, v);
            }
            Ok(())
        }
        ty if f.repeated => {
            let arr = slot.get_or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(arr) = arr else {
                unreachable!("repeated slots hold arrays")
            };
            if wt == LEN && matches!(ty, Ty::Int32 | Ty::Int64 | Ty::Bool | Ty::Double) {
                // Packed encoding.
                let mut p = Reader::new(r.bytes()?);
                while !p.is_empty() {
                    let elem_wt = if ty == Ty::Double { I64 } else { VARINT };
                    arr.push(decode_single(ty, elem_wt, &mut p, depth)?);
                }
            } else {
                arr.push(decode_single(ty, wt, r, depth)?);
            }
            Ok(())
        }
        ty => {
            // A repeated occurrence of a singular message merges in protobuf; last wins here.
            *slot = Some(decode_single(ty, wt, r, depth)?);
            Ok(())
        }
    }
}

fn expect_wt(got: u8, want: u8) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("wire type {got}, expected {want}"))
    }
}

fn decode_single(ty: Ty, wt: u8, r: &mut Reader, depth: usize) -> Result<Value, String> {
    Ok(match ty {
        Ty::String => {
            expect_wt(wt, LEN)?;
            Value::String(string_of(r.bytes()?))
        }
        Ty::Bytes => {
            expect_wt(wt, LEN)?;
            Value::String(STANDARD.encode(r.bytes()?))
        }
        Ty::Int32 => {
            expect_wt(wt, VARINT)?;
            Value::from(r.varint()? as i64 as i32)
        }
        Ty::Int64 => {
            expect_wt(wt, VARINT)?;
            Value::from(r.varint()? as i64)
        }
        Ty::Bool => {
            expect_wt(wt, VARINT)?;
            Value::Bool(r.varint()? != 0)
        }
        Ty::Double => {
            expect_wt(wt, I64)?;
            Number::from_f64(f64::from_bits(r.fixed64()?)).map_or(Value::Null, Value::Number)
        }
        Ty::Message(i) => {
            expect_wt(wt, LEN)?;
            decode_at(i, r.bytes()?, depth + 1)?
        }
        Ty::MapString | Ty::MapBytes | Ty::MapMessage(_) => unreachable!("maps are not single"),
    })
}

fn string_of(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn decode_map_entry(ty: Ty, data: &[u8], depth: usize) -> Result<(String, Value), String> {
    let value_ty = match ty {
        Ty::MapString => Ty::String,
        Ty::MapBytes => Ty::Bytes,
        Ty::MapMessage(i) => Ty::Message(i),
        _ => unreachable!(),
    };
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(data);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => key = string_of(r.bytes()?),
            (2, wt) => value = Some(decode_single(value_ty, wt, &mut r, depth)?),
            (_, wt) => r.skip(wt)?,
        }
    }
    let value = match value {
        Some(v) => v,
        None => match value_ty {
            Ty::Message(i) => decode_at(i, &[], depth + 1)?,
            _ => Value::String(String::new()),
        },
    };
    Ok((key, value))
}

/// The fields of a small special message: the last varint or bytes of tags 1–3, and every
/// occurrence of `repeated_tag`.
struct Scan<'a> {
    varints: [Option<u64>; 4],
    bytes: [Option<&'a [u8]>; 4],
    repeated: Vec<&'a [u8]>,
}

fn scan(data: &[u8], repeated_tag: u32) -> Result<Scan<'_>, String> {
    let mut s = Scan {
        varints: [None; 4],
        bytes: [None; 4],
        repeated: Vec::new(),
    };
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (tag, wt) = r.key()?;
        match (tag, wt) {
            (t, LEN) if t == repeated_tag => s.repeated.push(r.bytes()?),
            (1..=3, VARINT) => s.varints[tag as usize] = Some(r.varint()?),
            (1..=3, LEN) => s.bytes[tag as usize] = Some(r.bytes()?),
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(s)
}

/// The message type of field `tag` of `m` (for the schema parts of the JSONSchemaProps unions).
fn field_message(m: &Message, tag: u32) -> Result<u16, String> {
    match m.field_index(tag).map(|i| m.fields[i].ty) {
        Some(Ty::Message(i)) => Ok(i),
        _ => Err(format!("{}: field {tag} is not a message", m.name)),
    }
}

fn decode_special(
    m: &Message,
    special: Special,
    data: &[u8],
    depth: usize,
) -> Result<Value, String> {
    // Field 2 is repeated in the array unions; elsewhere it is singular.
    let repeated_tag = match special {
        Special::SchemaOrArray | Special::SchemaOrStringArray => 2,
        _ => 0,
    };
    let s = scan(data, repeated_tag)?;
    Ok(match special {
        Special::None => unreachable!(),
        Special::Time | Special::MicroTime => {
            // Go: an empty message is the zero time, whose JSON is null.
            if data.is_empty() {
                return Ok(Value::Null);
            }
            let seconds = s.varints[1].unwrap_or(0) as i64;
            let nanos = s.varints[2].unwrap_or(0) as i64 as i32;
            if special == Special::Time {
                // metav1.Time keeps seconds only (its Unmarshal drops nanos; its JSON has none).
                Value::String(values::format_time(seconds, None))
            } else {
                let micros = (nanos.clamp(0, 999_999_999) / 1000) as u32;
                Value::String(values::format_time(seconds, Some(micros)))
            }
        }
        Special::Duration => {
            Value::String(values::format_duration(s.varints[1].unwrap_or(0) as i64))
        }
        Special::Quantity => match s.bytes[1] {
            Some(b) => Value::String(string_of(b)),
            None => Value::String("0".into()),
        },
        Special::IntOrString => {
            if s.varints[1] == Some(1) {
                Value::String(s.bytes[3].map(string_of).unwrap_or_default())
            } else {
                Value::from(s.varints[2].unwrap_or(0) as i64 as i32)
            }
        }
        Special::RawExtension | Special::FieldsV1 | Special::Json => match s.bytes[1] {
            None => Value::Null,
            Some([]) => Value::Null,
            Some(raw) if raw.starts_with(super::MAGIC) => {
                let (api_version, kind, obj) = super::decode_object(raw)?;
                let _ = (api_version, kind);
                Value::Object(obj)
            }
            Some(raw) => serde_json::from_slice(raw)
                .map_err(|e| format!("embedded JSON of {}: {e}", short(m.name)))?,
        },
        Special::SchemaOrBool => match s.bytes[2] {
            Some(schema) => decode_at(field_message(m, 2)?, schema, depth + 1)?,
            None => Value::Bool(s.varints[1].unwrap_or(0) != 0),
        },
        Special::SchemaOrArray => {
            let schema_msg = field_message(m, 1)?;
            if !s.repeated.is_empty() {
                let items = s
                    .repeated
                    .iter()
                    .map(|b| decode_at(schema_msg, b, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Array(items)
            } else if let Some(schema) = s.bytes[1] {
                decode_at(schema_msg, schema, depth + 1)?
            } else {
                Value::Null
            }
        }
        Special::SchemaOrStringArray => {
            if !s.repeated.is_empty() {
                Value::Array(
                    s.repeated
                        .iter()
                        .map(|b| Value::String(string_of(b)))
                        .collect(),
                )
            } else if let Some(schema) = s.bytes[1] {
                decode_at(field_message(m, 1)?, schema, depth + 1)?
            } else {
                Value::Null
            }
        }
        Special::StringList => {
            // items = 1 (repeated string).
            let mut items = Vec::new();
            let mut r = Reader::new(data);
            while !r.is_empty() {
                match r.key()? {
                    (1, LEN) => items.push(Value::String(string_of(r.bytes()?))),
                    (_, wt) => r.skip(wt)?,
                }
            }
            Value::Array(items)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// Encodes `obj` (the JSON form of the ordinary message `msg`, a kind) as the message body.
pub(super) fn encode_object(
    msg: u16,
    obj: &Map<String, Value>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let m = message(msg);
    if m.special != Special::None {
        return encode_special(m, &Value::Object(obj.clone()), out, 0);
    }
    encode_fields(m, obj, out, 0)
}

fn encode_at(msg: u16, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("object nesting too deep".into());
    }
    let m = message(msg);
    if m.special != Special::None {
        return encode_special(m, v, out, depth);
    }
    match v {
        Value::Object(o) => encode_fields(m, o, out, depth),
        Value::Null => Ok(()),
        other => Err(format!(
            "{}: expected an object, got {}",
            short(m.name),
            kind_of(other)
        )),
    }
}

fn encode_fields(
    m: &Message,
    obj: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("object nesting too deep".into());
    }
    for &i in m.by_tag {
        let f = &m.fields[i as usize];
        encode_field(f, obj, out, depth).map_err(|e| {
            if e.starts_with(&format!("{}.", short(m.name))) {
                e
            } else {
                format!("{}.{}: {e}", short(m.name), name_of(f))
            }
        })?;
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn encode_field(
    f: &Field,
    obj: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), String> {
    if f.inline {
        // Go always writes an embedded (non-pointer) struct.
        let Ty::Message(i) = f.ty else {
            unreachable!("inline fields are messages")
        };
        let mut buf = Vec::new();
        encode_fields(message(i), obj, &mut buf, depth + 1)?;
        wire::put_len(out, f.tag, &buf);
        return Ok(());
    }
    let Some(v) = obj.get(f.json) else {
        return Ok(());
    };
    if v.is_null() {
        // A zero metav1.Time (`"creationTimestamp": null`) is an empty message in Go's encoding.
        if let Ty::Message(i) = f.ty {
            if !f.repeated && matches!(message(i).special, Special::Time | Special::MicroTime) {
                wire::put_len(out, f.tag, &[]);
            }
        }
        return Ok(());
    }
    match f.ty {
        Ty::MapString | Ty::MapBytes | Ty::MapMessage(_) => {
            let Value::Object(map) = v else {
                return Err(format!("expected an object, got {}", kind_of(v)));
            };
            // Go writes map entries sorted by key.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut entry = Vec::new();
            for k in keys {
                let val = &map[k];
                entry.clear();
                wire::put_len(&mut entry, 1, k.as_bytes());
                match f.ty {
                    Ty::MapString => {
                        wire::put_len(&mut entry, 2, as_str(val).map_err(|e| at(k, e))?.as_bytes())
                    }
                    Ty::MapBytes => {
                        wire::put_len(&mut entry, 2, &as_bytes(val).map_err(|e| at(k, e))?)
                    }
                    Ty::MapMessage(i) => {
                        let mut buf = Vec::new();
                        encode_at(i, val, &mut buf, depth + 1).map_err(|e| at(k, e))?;
                        wire::put_len(&mut entry, 2, &buf);
                    }
                    _ => unreachable!(),
                }
                wire::put_len(out, f.tag, &entry);
            }
            Ok(())
        }
        ty if f.repeated => {
            let Value::Array(items) = v else {
                return Err(format!("expected an array, got {}", kind_of(v)));
            };
            for (n, item) in items.iter().enumerate() {
                if item.is_null() && !matches!(ty, Ty::Message(_)) {
                    continue;
                }
                encode_single(f.tag, ty, item, out, depth).map_err(|e| format!("[{n}]: {e}"))?;
            }
            Ok(())
        }
        ty => encode_single(f.tag, ty, v, out, depth),
    }
}

fn at(key: &str, e: String) -> String {
    format!("[{key:?}]: {e}")
}

fn as_str(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, got {}", kind_of(v)))
}

fn as_bytes(v: &Value) -> Result<Vec<u8>, String> {
    let s = as_str(v)?;
    let s = s.trim_end_matches(['\r', '\n']);
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .map_err(|e| format!("illegal base64 data: {e}"))
}

fn as_int(v: &Value) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        _ => Err(format!("expected an integer, got {v}")),
    }
}

fn encode_single(
    tag: u32,
    ty: Ty,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), String> {
    match ty {
        Ty::String => wire::put_len(out, tag, as_str(v)?.as_bytes()),
        Ty::Bytes => wire::put_len(out, tag, &as_bytes(v)?),
        Ty::Int32 => {
            let i = as_int(v)?;
            let i = i32::try_from(i).map_err(|_| format!("{i} overflows int32"))?;
            wire::put_uint(out, tag, i64::from(i) as u64);
        }
        Ty::Int64 => wire::put_uint(out, tag, as_int(v)? as u64),
        Ty::Bool => {
            let b = v
                .as_bool()
                .ok_or_else(|| format!("expected a boolean, got {}", kind_of(v)))?;
            wire::put_uint(out, tag, u64::from(b));
        }
        Ty::Double => {
            let f = v
                .as_f64()
                .ok_or_else(|| format!("expected a number, got {}", kind_of(v)))?;
            wire::put_key(out, tag, I64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Ty::Message(i) => {
            let mut buf = Vec::new();
            encode_at(i, v, &mut buf, depth + 1)?;
            wire::put_len(out, tag, &buf);
        }
        Ty::MapString | Ty::MapBytes | Ty::MapMessage(_) => unreachable!("maps are not single"),
    }
    Ok(())
}

fn encode_special(m: &Message, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    let ctx = |e: String| format!("{}: {e}", short(m.name));
    match m.special {
        Special::None => unreachable!(),
        Special::Time | Special::MicroTime => {
            if v.is_null() {
                return Ok(());
            }
            let (seconds, nanos) = values::parse_time(as_str(v).map_err(ctx)?).map_err(ctx)?;
            wire::put_uint(out, 1, seconds as u64);
            wire::put_uint(out, 2, u64::from(nanos));
        }
        Special::Duration => {
            let d = values::parse_duration(as_str(v).map_err(ctx)?).map_err(ctx)?;
            wire::put_uint(out, 1, d as u64);
        }
        Special::Quantity => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(ctx(format!("expected a quantity, got {}", kind_of(other)))),
            };
            wire::put_len(out, 1, s.as_bytes());
        }
        Special::IntOrString => match v {
            Value::String(s) => {
                wire::put_uint(out, 1, 1);
                wire::put_uint(out, 2, 0);
                wire::put_len(out, 3, s.as_bytes());
            }
            Value::Number(_) => {
                let i = as_int(v).map_err(ctx)?;
                let i = i32::try_from(i).map_err(|_| ctx(format!("{i} overflows int32")))?;
                wire::put_uint(out, 1, 0);
                wire::put_uint(out, 2, i64::from(i) as u64);
                wire::put_len(out, 3, b"");
            }
            other => {
                return Err(ctx(format!(
                    "expected an integer or a string, got {}",
                    kind_of(other)
                )))
            }
        },
        Special::RawExtension | Special::FieldsV1 | Special::Json => {
            if !v.is_null() {
                let raw = serde_json::to_vec(v).map_err(|e| ctx(e.to_string()))?;
                wire::put_len(out, 1, &raw);
            }
        }
        Special::SchemaOrBool => match v {
            Value::Bool(b) => wire::put_uint(out, 1, u64::from(*b)),
            Value::Object(_) => {
                wire::put_uint(out, 1, 1);
                encode_single(2, Ty::Message(field_message(m, 2)?), v, out, depth)?;
            }
            other => {
                return Err(ctx(format!(
                    "expected a boolean or an object, got {}",
                    kind_of(other)
                )))
            }
        },
        Special::SchemaOrArray => match v {
            Value::Object(_) => encode_single(1, Ty::Message(field_message(m, 1)?), v, out, depth)?,
            Value::Array(items) => {
                let schema = field_message(m, 1)?;
                for item in items {
                    encode_single(2, Ty::Message(schema), item, out, depth)?;
                }
            }
            Value::Null => {}
            other => {
                return Err(ctx(format!(
                    "expected an object or an array, got {}",
                    kind_of(other)
                )))
            }
        },
        Special::SchemaOrStringArray => match v {
            Value::Object(_) => encode_single(1, Ty::Message(field_message(m, 1)?), v, out, depth)?,
            Value::Array(items) => {
                for item in items {
                    wire::put_len(out, 2, as_str(item).map_err(ctx)?.as_bytes());
                }
            }
            Value::Null => {}
            other => {
                return Err(ctx(format!(
                    "expected an object or an array, got {}",
                    kind_of(other)
                )))
            }
        },
        Special::StringList => match v {
            Value::Array(items) => {
                for item in items {
                    wire::put_len(out, 1, as_str(item).map_err(ctx)?.as_bytes());
                }
            }
            Value::Null => {}
            other => return Err(ctx(format!("expected an array, got {}", kind_of(other)))),
        },
    }
    Ok(())
}

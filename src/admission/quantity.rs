//! Resource quantities (`k8s.io/apimachinery/pkg/api/resource.Quantity`): parsing, comparison,
//! arithmetic and the canonical string form used in error messages and stored values.
//!
//! Values are held exactly in nano-units (10⁻⁹), with anything finer rounded up, as Kubernetes
//! does; the format (decimal SI, binary SI or decimal exponent) is kept for printing.

use std::cmp::Ordering;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;
const PARSE_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// `a / b` rounded away from zero.
fn div_up(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 {
        if (a < 0) == (b < 0) {
            q + 1
        } else {
            q - 1
        }
    } else {
        q
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Quantity {
    pub fn zero() -> Self {
        Quantity {
            nanos: 0,
            format: Format::DecimalSI,
        }
    }

    /// An integer quantity (`resource.NewQuantity(v, DecimalSI)`).
    pub fn from_int(v: i64) -> Self {
        Quantity {
            nanos: v as i128 * NANO,
            format: Format::DecimalSI,
        }
    }

    /// `resource.NewMilliQuantity(v, DecimalSI)`.
    pub fn from_milli(v: i64) -> Self {
        Quantity {
            nanos: v as i128 * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(PARSE_ERROR.into());
        }
        let mut i = 0;
        let negative = match b[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        let suffix = &s[i..];
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return Err(PARSE_ERROR.into());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let (base, exp, format): (u32, i32, Format) = match suffix {
            "" => (10, 0, Format::DecimalSI),
            "n" => (10, -9, Format::DecimalSI),
            "u" => (10, -6, Format::DecimalSI),
            "m" => (10, -3, Format::DecimalSI),
            "k" => (10, 3, Format::DecimalSI),
            "M" => (10, 6, Format::DecimalSI),
            "G" => (10, 9, Format::DecimalSI),
            "T" => (10, 12, Format::DecimalSI),
            "P" => (10, 15, Format::DecimalSI),
            "E" => (10, 18, Format::DecimalSI),
            "Ki" => (2, 10, Format::BinarySI),
            "Mi" => (2, 20, Format::BinarySI),
            "Gi" => (2, 30, Format::BinarySI),
            "Ti" => (2, 40, Format::BinarySI),
            "Pi" => (2, 50, Format::BinarySI),
            "Ei" => (2, 60, Format::BinarySI),
            s if s.starts_with(['e', 'E']) && s.len() > 1 => {
                let e: i32 = s[1..].parse().map_err(|_| PARSE_ERROR.to_string())?;
                (10, e, Format::DecimalExponent)
            }
            _ => return Err(PARSE_ERROR.into()),
        };
        // The digits as an integer mantissa over 10^frac_len; keep at most 30 fraction digits
        // (finer parts only round the value up).
        let mut frac = frac_part.to_string();
        let mut truncated = false;
        if frac.len() > 30 {
            truncated = frac[30..].bytes().any(|c| c != b'0');
            frac.truncate(30);
        }
        let digits = format!("{}{}", int_part.trim_start_matches('0'), frac);
        let digits = digits.trim_start_matches('0');
        let too_large = || "quantity is too large".to_string();
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| too_large())?
        };
        let frac_len = frac.len() as i32;
        let nanos = if base == 10 {
            let shift = exp + 9 - frac_len;
            if shift >= 0 {
                mantissa
                    .checked_mul(pow10(shift as u32).ok_or_else(too_large)?)
                    .ok_or_else(too_large)?
            } else {
                let d = pow10((-shift) as u32).unwrap_or(i128::MAX);
                div_up(mantissa, d)
            }
        } else {
            let scaled = mantissa
                .checked_mul(1i128 << exp)
                .and_then(|v| v.checked_mul(NANO))
                .ok_or_else(too_large)?;
            div_up(scaled, pow10(frac_len as u32).ok_or_else(too_large)?)
        };
        let nanos = if truncated && nanos == 0 { 1 } else { nanos };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// `Value()`: whole units, rounded up.
    pub fn value(&self) -> i128 {
        div_up(self.nanos, NANO)
    }

    /// `MilliValue()`: thousandths, rounded up.
    pub fn milli_value(&self) -> i128 {
        div_up(self.nanos, 1_000_000)
    }

    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// `q.Add(other)`: the format stays the receiver's, unless the receiver is zero.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }

    /// The canonical string (`Quantity.String()`).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs() as i128;
        let mut format = self.format;
        if format == Format::BinarySI {
            let whole = abs % NANO == 0;
            if abs < 1024 * NANO || !whole {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            let mut v = abs / NANO;
            let mut k = 0;
            while k < 6 && v % 1024 == 0 {
                v /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return format!("{sign}{v}{suffix}");
        }
        // Decimal: mantissa × 10^(3j), the largest j that keeps the mantissa whole.
        let mut m = abs;
        let mut j: i32 = -3;
        while j < 6 && m % 1000 == 0 {
            m /= 1000;
            j += 1;
        }
        let suffix = if format == Format::DecimalExponent {
            if j == 0 {
                String::new()
            } else {
                format!("e{}", 3 * j)
            }
        } else {
            match j {
                -3 => "n",
                -2 => "u",
                -1 => "m",
                0 => "",
                1 => "k",
                2 => "M",
                3 => "G",
                4 => "T",
                5 => "P",
                _ => "E",
            }
            .to_string()
        };
        format!("{sign}{m}{suffix}")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// A `ResourceList` value from JSON: a string or a bare number.
pub fn from_json(v: &serde_json::Value) -> Option<Quantity> {
    match v {
        serde_json::Value::String(s) => Quantity::parse(s).ok(),
        serde_json::Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// A ResourceList (`{"cpu": "100m", ...}`) as sorted, parsed pairs; unparsable values are skipped.
pub fn resource_list(
    v: Option<&serde_json::Value>,
) -> std::collections::BTreeMap<String, Quantity> {
    v.and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| from_json(v).map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(c("100m"), "100m");
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("1000m"), "1");
        assert_eq!(c("1500"), "1500");
        assert_eq!(c("2000"), "2k");
        assert_eq!(c("1Gi"), "1Gi");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("1536Mi"), "1536Mi");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("512"), "512");
        assert_eq!(c("100Ki"), "100Ki");
        assert_eq!(c("0"), "0");
        assert_eq!(c("1e3"), "1e3");
        assert_eq!(c("128974848"), "128974848");
        assert_eq!(c("129e6"), "129e6");
        assert_eq!(c("123Mi"), "123Mi");
        assert_eq!(c("0.1m"), "100u");
        assert_eq!(c("1n"), "1n");
        assert_eq!(c("-5"), "-5");
        assert!(Quantity::parse("abc").is_err());
        assert!(Quantity::parse("1.2.3").is_err());
        assert!(Quantity::parse("5X").is_err());
    }

    #[test]
    fn values_and_arithmetic() {
        let q = Quantity::parse("1500m").unwrap();
        assert_eq!(q.value(), 2);
        assert_eq!(q.milli_value(), 1500);
        let a = Quantity::parse("500m").unwrap();
        assert_eq!(a.add(&a).canonical(), "1");
        assert!(Quantity::parse("1").unwrap() > a);
        assert_eq!(
            Quantity::parse("1Gi").unwrap(),
            Quantity::parse("1073741824").unwrap()
        );
        let m = Quantity::parse("128Mi").unwrap();
        assert_eq!(m.add(&m).canonical(), "256Mi");
        assert_eq!(Quantity::zero().add(&m).add(&m).canonical(), "256Mi");
    }
}

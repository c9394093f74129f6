//! Integer fields that read JSON numbers the way JSON Schema's `integer` defines them:
//! any number without a fractional part, so `7` and `7.0` (and `7e0`) are the same
//! id. serde alone refuses `7.0` for an `i64`, which would reject bodies that the
//! OpenAPI documents (generated from these types) call valid.
//!
//! Use with `#[serde(deserialize_with = "crate::integral::deserialize")]` on JSON
//! body fields, and [`from_text`] / [`optional_from_text`] on query parameters, where
//! every value is text (`?limit=20.0`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// 2^63: the first `f64` past `i64::MAX`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Reads an integral JSON number into `T`; a fraction, a non-number or a value out of
/// `T`'s range is an error naming what was found.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    deserializer.deserialize_any(Integral(PhantomData))
}

/// Like [`deserialize`], for formats that carry numbers as text (query strings): a
/// string that spells an integral number is read as one, too.
pub fn from_text<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    deserializer.deserialize_any(FromText(Integral(PhantomData)))
}

/// [`deserialize`] for an optional field (use with `#[serde(default)]`): `null` or
/// absent is `None`.
pub fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    struct Present<T>(T);
    impl<'de, T: TryFrom<i64>> serde::Deserialize<'de> for Present<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize(deserializer).map(Present)
        }
    }
    Ok(Option::<Present<T>>::deserialize(deserializer)?.map(|present| present.0))
}

/// [`from_text`] for an optional parameter (use with `#[serde(default)]`).
pub fn optional_from_text<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    struct Present<T>(T);
    impl<'de, T: TryFrom<i64>> serde::Deserialize<'de> for Present<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            from_text(deserializer).map(Present)
        }
    }
    Ok(Option::<Present<T>>::deserialize(deserializer)?.map(|present| present.0))
}

struct Integral<T>(PhantomData<T>);

struct FromText<T>(Integral<T>);

impl<'de, T: TryFrom<i64>> Visitor<'de> for FromText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        self.0.visit_i64(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.0.visit_u64(value)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        self.0.visit_f64(value)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        let text = text.trim();
        if let Ok(value) = text.parse::<i64>() {
            return self.0.visit_i64(value);
        }
        match text.parse::<f64>() {
            // `inf`, `nan` and the like are no numbers in JSON either.
            Ok(value) if value.is_finite() && text.bytes().any(|b| b.is_ascii_digit()) => {
                self.0.visit_f64(value)
            }
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }
}

impl<T: TryFrom<i64>> Integral<T> {
    fn fit<E: de::Error>(value: i64) -> Result<T, E> {
        T::try_from(value)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &"an integer in range"))
    }
}

impl<'de, T: TryFrom<i64>> Visitor<'de> for Integral<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        Self::fit(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        let value = i64::try_from(value).map_err(|_| {
            E::invalid_value(de::Unexpected::Unsigned(value), &"an integer in range")
        })?;
        Self::fit(value)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        if value.fract() != 0.0 || !(-TWO_POW_63..TWO_POW_63).contains(&value) {
            return Err(E::invalid_type(de::Unexpected::Float(value), &self));
        }
        // Integral and within i64: the cast is exact.
        Self::fit(value as i64)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Ids {
        #[serde(deserialize_with = "super::deserialize")]
        big: i64,
        #[serde(deserialize_with = "super::deserialize")]
        small: i32,
    }

    fn read(json: &str) -> Result<Ids, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[derive(Debug, Deserialize)]
    struct Query {
        #[serde(default, deserialize_with = "super::optional_from_text")]
        limit: Option<i64>,
        #[serde(deserialize_with = "super::from_text")]
        id: i32,
    }

    #[test]
    fn text_that_spells_an_integer_is_one() {
        let query: Query = serde_json::from_value(serde_json::json!({"id": "7.0"})).unwrap();
        assert_eq!((query.limit, query.id), (None, 7));
        let query: Query =
            serde_json::from_value(serde_json::json!({"id": 3, "limit": "2e1"})).unwrap();
        assert_eq!((query.limit, query.id), (Some(20), 3));
        for bad in ["1.5", "x", "", "inf", "NaN", "1e400", "3000000000"] {
            assert!(
                serde_json::from_value::<Query>(serde_json::json!({"id": bad})).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn integral_numbers_are_read_whatever_their_spelling() {
        let ids = read(r#"{"big": 541794.0, "small": 7e0}"#).unwrap();
        assert_eq!((ids.big, ids.small), (541_794, 7));
        let ids = read(r#"{"big": -9223372036854775808, "small": -1}"#).unwrap();
        assert_eq!((ids.big, ids.small), (i64::MIN, -1));
    }

    #[test]
    fn fractions_other_types_and_out_of_range_values_are_refused() {
        for json in [
            r#"{"big": 1.5, "small": 1}"#,
            r#"{"big": "1", "small": 1}"#,
            r#"{"big": true, "small": 1}"#,
            r#"{"big": 1e19, "small": 1}"#,
            r#"{"big": 9223372036854775808, "small": 1}"#,
            r#"{"big": 1, "small": 2147483648}"#,
            r#"{"big": 1, "small": 3e9}"#,
        ] {
            assert!(read(json).is_err(), "{json}");
        }
    }
}

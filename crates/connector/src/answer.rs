//! Reading an API answer: an error, or a list of rows. Used by extract (which checks the
//! envelope) and normalize (which types the rows), so that neither reaches into the other.
//!
//! The API answers HTTP 200 for errors too. An object whose `errcode` is non-zero is an error
//! even when it also has a `list`; `errcode` arrives as a number or as a string, `errmsg` may be
//! missing. An object without `errcode` (or with 0) and without `list` is an empty result.
//!
//! Answers are read in one streaming pass, without building a JSON tree: the envelope here,
//! each row object by a [`ListReader`] the caller brings (normalize types the rows; extract only
//! checks the envelope). `errcode` may come after `list`, so the rows are read before the
//! errcode is known and the verdict waits for the end of the object, in this order: not JSON,
//! not an object, unreadable errcode, API error, `list` not an array of objects, then whatever
//! the reader found. A key given twice counts once, with its last value, as in any JSON object
//! read into a map.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// An error answer of the API: `{"errcode": N, "errmsg": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errcode {}", self.code)?;
        if let Some(meaning) = meaning(self.code) {
            write!(f, " ({meaning})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Plain words for the codes an operator is likely to meet, with the fix where there is one.
pub fn meaning(code: i64) -> Option<&'static str> {
    Some(match code {
        -1 => "system busy",
        40001 => "access token invalid or not the latest",
        40002 => "invalid grant_type",
        40013 => "invalid appid: check --appid / WECHAT_APPID",
        40014 => "access token invalid",
        40125 => "invalid app secret: check --secret / WECHAT_SECRET",
        40164 => "caller IP not in the account's whitelist: add it in the account's developer settings",
        41001 => "access token missing",
        41002 => "appid missing",
        41004 => "app secret missing",
        42001 => "access token expired",
        45009 => "daily quota for this API reached: retry tomorrow",
        45011 => "per-minute limit reached",
        47001 => "request body malformed",
        47009 => "API retired",
        48001 => {
            "API not authorised for this account: it needs verification, or the platform calling for it needs this family's permission set"
        }
        61500 => "date format error",
        61501 => "date range error",
        61023 => "authorizer refresh token invalid",
        89503 => "risk check pending: an admin must confirm the call",
        _ => return None,
    })
}

/// An answer the connector cannot read at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not JSON ({0})")]
    NotJson(String),
    #[error("body is JSON but not an object")]
    NotObject,
    #[error("errcode {0} is not an integer")]
    BadErrcode(String),
    #[error("`list` is not an array of objects")]
    BadList,
}

/// Reads the row objects of `list`, in order. Each `list` key starts from a fresh clone of the
/// reader given to [`parse_answer`], so only the last one counts.
pub trait ListReader<'de>: Clone {
    /// Reads one row object to its end.
    fn row<A: MapAccess<'de>>(&mut self, row: A) -> Result<(), A::Error>;
}

/// The rows of an answer that is not an error.
#[derive(Clone, Debug)]
pub struct Answer<R> {
    /// The list reader after it has read every row of `list` (untouched when there is none).
    pub rows: R,
    /// The answer's top-level `is_delay` (the 2025 article family): the API says these figures
    /// are not final yet. Absent, null or `false`: final.
    pub delayed: bool,
}

/// Parses a response body: its API error, or its rows.
pub fn parse_answer<'de, R: ListReader<'de>>(
    body: &'de [u8],
    rows: R,
) -> Result<Result<Answer<R>, ApiError>, EnvelopeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope =
        Envelope { template: rows.clone(), rows, errcode: None, errmsg: None, delayed: false, bad_list: false };
    let envelope = ByShape(envelope)
        .deserialize(&mut de)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| EnvelopeError::NotJson(e.to_string()))?
        .ok_or(EnvelopeError::NotObject)?;
    // The same rules as for any other object, on the two fields that matter here.
    let fields = [("errcode", envelope.errcode), ("errmsg", envelope.errmsg)];
    let object: Map<String, Value> = fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect();
    if let Some(err) = api_error(&object)? {
        return Ok(Err(err));
    }
    if envelope.bad_list {
        return Err(EnvelopeError::BadList);
    }
    Ok(Ok(Answer { rows: envelope.rows, delayed: envelope.delayed }))
}

/// Checks a datacube response body without reading its rows' fields: whether it is an API
/// error, unreadable, or rows (still to be decoded by normalize).
pub fn check(body: &[u8]) -> Result<Result<(), ApiError>, EnvelopeError> {
    Ok(parse_answer(body, SkipRows)?.map(|_| ()))
}

/// A [`ListReader`] that only checks the rows are objects of well-formed JSON.
#[derive(Clone)]
struct SkipRows;

impl<'de> ListReader<'de> for SkipRows {
    fn row<A: MapAccess<'de>>(&mut self, row: A) -> Result<(), A::Error> {
        drain_map(row)
    }
}

/// Parses any API body into an object, for callers that read their own fields (tokens).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(EnvelopeError::NotObject),
        Err(e) => Err(EnvelopeError::NotJson(e.to_string())),
    }
}

/// The error an object carries, if any.
pub fn api_error(object: &Map<String, Value>) -> Result<Option<ApiError>, EnvelopeError> {
    let code = match object.get("errcode") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| EnvelopeError::BadErrcode(n.to_string()))?,
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| EnvelopeError::BadErrcode(format!("{s:?}")))?,
        Some(other) => return Err(EnvelopeError::BadErrcode(truncate(&other.to_string(), 40))),
    };
    if code == 0 {
        return Ok(None);
    }
    let message = match object.get("errmsg") {
        Some(Value::String(s)) => truncate(s, 200),
        _ => String::new(),
    };
    Ok(Some(ApiError { code, message }))
}

pub use crate::text::truncate;

/// The top-level object while it is read. `errcode` and `errmsg` are small and kept as values.
struct Envelope<R> {
    template: R,
    rows: R,
    errcode: Option<Value>,
    errmsg: Option<Value>,
    delayed: bool,
    bad_list: bool,
}

impl<'de, R: ListReader<'de>> Shaped<'de> for Envelope<R> {
    /// `None` when the body is not an object.
    type Out = Option<Self>;

    fn other(self) -> Option<Self> {
        None
    }

    fn map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Option<Self>, A::Error> {
        while let Some(key) = map.next_key_seed(KeyIn(&["errcode", "errmsg", "is_delay", "list"]))? {
            match key {
                Some(0) => self.errcode = Some(map.next_value()?),
                Some(1) => self.errmsg = Some(map.next_value()?),
                // Anything but false (or null) counts as delayed: an unreadable flag must not let
                // incremental state pass days the API may still change.
                Some(2) => self.delayed = !matches!(map.next_value::<Value>()?, Value::Bool(false) | Value::Null),
                Some(_) => {
                    let list = List { rows: self.template.clone(), bad: false };
                    (self.rows, self.bad_list) = map.next_value_seed(ByShape(list))?;
                }
                None => map.next_value_seed(ByShape(Skip))?,
            }
        }
        Ok(Some(self))
    }
}

/// The value of `list`: rows and whether anything in it was not a row object. Reading goes
/// on past a bad element, so that a syntax error or an errcode further on still decides.
struct List<R> {
    rows: R,
    bad: bool,
}

impl<'de, R: ListReader<'de>> Shaped<'de> for List<R> {
    type Out = (R, bool);

    fn null(self) -> (R, bool) {
        (self.rows, false)
    }

    fn other(self) -> (R, bool) {
        (self.rows, true)
    }

    fn seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(R, bool), A::Error> {
        while let Some(is_row) = seq.next_element_seed(ByShape(Element(&mut self.rows)))? {
            self.bad |= !is_row;
        }
        Ok((self.rows, self.bad))
    }
}

/// One element of `list`: true if it was an object, read by the list reader.
struct Element<'r, R>(&'r mut R);

impl<'de, R: ListReader<'de>> Shaped<'de> for Element<'_, R> {
    type Out = bool;

    fn other(self) -> bool {
        false
    }

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.row(map)?;
        Ok(true)
    }
}

/// Any value, read to its end and dropped. Unlike `IgnoredAny` it checks what it skips the way
/// a full parse does (strings are UTF-8, escapes are valid), so skipping never accepts a body
/// that is not JSON.
pub struct Skip;

impl Shaped<'_> for Skip {
    type Out = ();

    fn other(self) {}
}

/// Reads the rest of an object and drops it.
pub fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry_seed(ByShape(Skip), ByShape(Skip))?.is_some() {}
    Ok(())
}

/// A key's position in `names`, or `None` for any other key.
struct KeyIn<'n>(&'n [&'n str]);

impl<'de> DeserializeSeed<'de> for KeyIn<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<usize>, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| *n == key))
    }
}

/// What to make of a value by its shape: objects and arrays are handed over as they stream
/// by, anything else only counts as [`Shaped::other`]. The defaults read what they are given
/// to its end and report it as `other`.
pub trait Shaped<'de>: Sized {
    type Out;

    fn other(self) -> Self::Out;

    fn null(self) -> Self::Out {
        self.other()
    }

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        drain_map(map)?;
        Ok(self.other())
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element_seed(ByShape(Skip))?.is_some() {}
        Ok(self.other())
    }
}

/// Reads one value with a [`Shaped`].
pub struct ByShape<S>(pub S);

impl<'de, S: Shaped<'de>> DeserializeSeed<'de> for ByShape<S> {
    type Value = S::Out;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Out, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, S: Shaped<'de>> Visitor<'de> for ByShape<S> {
    type Value = S::Out;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<S::Out, E> {
        Ok(self.0.null())
    }

    fn visit_bool<E>(self, _: bool) -> Result<S::Out, E> {
        Ok(self.0.other())
    }

    fn visit_i64<E>(self, _: i64) -> Result<S::Out, E> {
        Ok(self.0.other())
    }

    fn visit_u64<E>(self, _: u64) -> Result<S::Out, E> {
        Ok(self.0.other())
    }

    fn visit_f64<E>(self, _: f64) -> Result<S::Out, E> {
        Ok(self.0.other())
    }

    fn visit_str<E>(self, _: &str) -> Result<S::Out, E> {
        Ok(self.0.other())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S::Out, A::Error> {
        self.0.map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S::Out, A::Error> {
        self.0.seq(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the row objects.
    #[derive(Clone, Default)]
    struct Count(usize);

    impl<'de> ListReader<'de> for Count {
        fn row<A: MapAccess<'de>>(&mut self, row: A) -> Result<(), A::Error> {
            self.0 += 1;
            drain_map(row)
        }
    }

    fn rows(body: &str) -> Result<Result<usize, ApiError>, EnvelopeError> {
        let counted = parse_answer(body.as_bytes(), Count::default());
        // The check extract makes agrees with the full read.
        assert_eq!(check(body.as_bytes()), counted.clone().map(|r| r.map(|_| ())));
        counted.map(|r| r.map(|c| c.rows.0))
    }

    #[test]
    fn rows_and_empty_results() {
        let ok =
            rows(r#"{"list":[{"ref_date":"2024-03-01","msg_type":1,"msg_user":2,"msg_count":3,"user_source":0}]}"#);
        assert_eq!(ok.unwrap().unwrap(), 1);
        assert_eq!(rows(r#"{"list":[]}"#).unwrap().unwrap(), 0);
        assert_eq!(rows(r#"{"list":null}"#).unwrap().unwrap(), 0);
        assert_eq!(rows(r#"{}"#).unwrap().unwrap(), 0);
        assert_eq!(rows(r#"{"errcode":0,"errmsg":"ok"}"#).unwrap().unwrap(), 0);
        assert_eq!(rows(r#"{"errcode":"0","list":[{}]}"#).unwrap().unwrap(), 1);
        // Unknown keys of any shape are skipped, in the envelope and in rows.
        assert_eq!(rows(r#"{"x":[{"list":5}],"list":[{"a":{"b":[1,"2"]}},{}],"y":null}"#).unwrap().unwrap(), 2);
    }

    #[test]
    fn errors_are_never_data() {
        let e = rows(r#"{"errcode":45009,"errmsg":"reach max api daily quota limit rid: 1-2"}"#).unwrap().unwrap_err();
        assert_eq!(e, ApiError { code: 45009, message: "reach max api daily quota limit rid: 1-2".into() });
        // errcode as a string, errmsg missing, and a list beside the error.
        let e = rows(r#"{"errcode":"61501","list":[{"ref_date":"2024-03-01"}]}"#).unwrap().unwrap_err();
        assert_eq!(e, ApiError { code: 61501, message: String::new() });
        assert_eq!(rows(r#"{"errcode":-1}"#).unwrap().unwrap_err().code, -1);
        assert_eq!(rows(r#"{"errcode":" -1 ","errmsg":7}"#).unwrap().unwrap_err().code, -1);
    }

    #[test]
    fn errcode_after_the_list_still_wins() {
        let e = rows(r#"{"list":[{"ref_date":"2024-03-01"}],"errmsg":"busy","errcode":-1}"#).unwrap().unwrap_err();
        assert_eq!(e, ApiError { code: -1, message: "busy".into() });
        // Even over a list that is not one.
        assert_eq!(rows(r#"{"list":[1],"errcode":45009}"#).unwrap().unwrap_err().code, 45009);
        assert!(matches!(rows(r#"{"list":[1],"errcode":"busy"}"#), Err(EnvelopeError::BadErrcode(_))));
        // But not over a body that is not JSON.
        assert!(matches!(rows(r#"{"list":[1],"errcode":45009"#), Err(EnvelopeError::NotJson(_))));
    }

    #[test]
    fn is_delay_is_read_wherever_it_stands() {
        let delayed = |body: &str| parse_answer(body.as_bytes(), Count::default()).unwrap().unwrap().delayed;
        assert!(delayed(r#"{"list":[{}],"is_delay":true}"#));
        assert!(delayed(r#"{"is_delay":true,"list":[]}"#));
        assert!(!delayed(r#"{"list":[{}],"is_delay":false}"#));
        assert!(!delayed(r#"{"list":[{}]}"#));
        assert!(delayed(r#"{"list":[{}],"is_delay":"yes"}"#), "an unreadable flag counts as delayed");
        assert!(!delayed(r#"{"list":[{}],"is_delay":null}"#));
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value() {
        assert_eq!(rows(r#"{"errcode":45009,"errcode":0,"list":[{}]}"#).unwrap().unwrap(), 1);
        assert_eq!(rows(r#"{"errcode":0,"errcode":45009}"#).unwrap().unwrap_err().code, 45009);
        assert_eq!(rows(r#"{"list":[{},{}],"list":[{}]}"#).unwrap().unwrap(), 1);
        assert_eq!(rows(r#"{"list":[1],"list":[]}"#).unwrap().unwrap(), 0);
        assert_eq!(rows(r#"{"list":[],"list":5}"#), Err(EnvelopeError::BadList));
    }

    #[test]
    fn unreadable_bodies() {
        assert!(matches!(rows("<html>502 Bad Gateway</html>"), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(rows(r#"{"list":[{"ref_date":"2024"#), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(rows(r#"{} x"#), Err(EnvelopeError::NotJson(_))));
        assert_eq!(rows("[1]"), Err(EnvelopeError::NotObject));
        assert_eq!(rows("null"), Err(EnvelopeError::NotObject));
        assert!(matches!(rows("[1"), Err(EnvelopeError::NotJson(_))));
        assert_eq!(rows(r#"{"list":{}}"#), Err(EnvelopeError::BadList));
        assert_eq!(rows(r#"{"list":[1]}"#), Err(EnvelopeError::BadList));
        assert_eq!(rows(r#"{"list":[{},[{}],{}]}"#), Err(EnvelopeError::BadList));
        assert!(matches!(rows(r#"{"errcode":"busy"}"#), Err(EnvelopeError::BadErrcode(_))));
        assert!(matches!(rows(r#"{"errcode":1.5}"#), Err(EnvelopeError::BadErrcode(_))));
        assert!(matches!(rows(r#"{"errcode":{"a":1}}"#), Err(EnvelopeError::BadErrcode(_))));
    }

    #[test]
    fn skipped_values_are_still_checked() {
        // What a full parse refuses is refused when skipped too, with the same message.
        for body in [&br#"{"x":"\ud800"}"#[..], b"{\"x\":\"\xff\"}", br#"{"list":[{"x":"a\qb"}]}"#] {
            let full = serde_json::from_slice::<Value>(body).unwrap_err().to_string();
            assert_eq!(check(body), Err(EnvelopeError::NotJson(full)));
        }
    }

    #[test]
    fn truncation_is_one_line() {
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}

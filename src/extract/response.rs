//! Reading an API answer: an error, or a list of rows.
//!
//! The API answers HTTP 200 for errors too. An object whose `errcode` is non-zero is an error
//! even when it also has a `list`; `errcode` arrives as a number or as a string, `errmsg` may be
//! missing. An object without `errcode` (or with 0) and without `list` is an empty result. The
//! rows themselves are handed to normalize as JSON objects, unchecked.

use serde_json::{Map, Value};

use super::errors::ApiError;

/// What a successful datacube call returned: one JSON object per row.
pub type RawRows = Vec<Map<String, Value>>;

/// An answer the connector cannot read at all.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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

/// Parses a datacube response body.
pub fn parse_rows(body: &[u8]) -> Result<Result<RawRows, ApiError>, EnvelopeError> {
    let mut object = parse_object(body)?;
    if let Some(err) = api_error(&object)? {
        return Ok(Err(err));
    }
    let rows = match object.remove("list") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                _ => Err(EnvelopeError::BadList),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(EnvelopeError::BadList),
    };
    Ok(Ok(rows))
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

/// At most `max` characters of `s`, for quoting server text in an error line.
pub fn truncate(s: &str, max: usize) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(body: &str) -> Result<Result<RawRows, ApiError>, EnvelopeError> {
        parse_rows(body.as_bytes())
    }

    #[test]
    fn rows_and_empty_results() {
        let ok =
            rows(r#"{"list":[{"ref_date":"2024-03-01","msg_type":1,"msg_user":2,"msg_count":3,"user_source":0}]}"#);
        assert_eq!(ok.unwrap().unwrap().len(), 1);
        assert_eq!(rows(r#"{"list":[]}"#).unwrap().unwrap().len(), 0);
        assert_eq!(rows(r#"{}"#).unwrap().unwrap().len(), 0);
        assert_eq!(rows(r#"{"errcode":0,"errmsg":"ok"}"#).unwrap().unwrap().len(), 0);
        assert_eq!(rows(r#"{"errcode":"0","list":[{}]}"#).unwrap().unwrap().len(), 1);
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
    fn unreadable_bodies() {
        assert!(matches!(rows("<html>502 Bad Gateway</html>"), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(rows(r#"{"list":[{"ref_date":"2024"#), Err(EnvelopeError::NotJson(_))));
        assert_eq!(rows("[1]"), Err(EnvelopeError::NotObject));
        assert_eq!(rows(r#"{"list":{}}"#), Err(EnvelopeError::BadList));
        assert_eq!(rows(r#"{"list":[1]}"#), Err(EnvelopeError::BadList));
        assert!(matches!(rows(r#"{"errcode":"busy"}"#), Err(EnvelopeError::BadErrcode(_))));
        assert!(matches!(rows(r#"{"errcode":1.5}"#), Err(EnvelopeError::BadErrcode(_))));
    }

    #[test]
    fn truncation_is_one_line() {
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}

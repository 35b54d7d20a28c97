//! Reading request bodies: content type, size limit, and gzip, bounded before and after
//! decompression so neither a huge upload nor a gzip bomb can exhaust memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::EdgeError;

/// How the signals in a body are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// One JSON signal per line (`application/x-ndjson`), bulk only.
    NdJson,
}

/// Checks the content type, then reads the whole body (decompressed), at most `limit` bytes.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    ndjson_allowed: bool,
) -> Result<(Bytes, Format), EdgeError> {
    let format = content_type(headers, ndjson_allowed)?;
    Ok((read_raw(headers, body, limit).await?, format))
}

/// Reads the body without looking at its content type (for endpoints where it may be empty).
pub async fn read_raw(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, EdgeError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(EdgeError::TooLarge { limit });
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(EdgeError::TooLarge { limit }),
        Err(error) if runtime::serve::min_rate::is_too_slow(&*error) => {
            return Err(EdgeError::BodyTooSlow(error.to_string()))
        }
        Err(error) => return Err(EdgeError::InvalidPayload(format!("could not read the request body: {error}"))),
    };
    match encoding(headers)? {
        Encoding::Identity => Ok(bytes),
        Encoding::Gzip => {
            // At most a few decompressions at once, each bounded by `limit`: memory stays
            // bounded however many gzip bombs arrive together.
            let _permit = decompressions().acquire().await.expect("the semaphore is never closed");
            tokio::task::spawn_blocking(move || gunzip(&bytes, limit))
                .await
                .unwrap_or_else(|_| Err(EdgeError::InvalidPayload("could not decompress the request body".into())))
        }
    }
}

fn content_type(headers: &HeaderMap, ndjson_allowed: bool) -> Result<Format, EdgeError> {
    let expected = if ndjson_allowed { "application/json or application/x-ndjson" } else { "application/json" };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(EdgeError::UnsupportedMediaType(format!("Content-Type is missing; send {expected}")));
    };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        json if json.starts_with("application/") && json.ends_with("+json") => Ok(Format::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" if ndjson_allowed => Ok(Format::NdJson),
        other => {
            Err(EdgeError::UnsupportedMediaType(format!("Content-Type {other:?} is not supported; send {expected}")))
        }
    }
}

/// The decompressions that may run at once: one per core, at least two.
fn decompressions() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores.max(2))
    })
}

enum Encoding {
    Identity,
    Gzip,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, EdgeError> {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase()) {
        None => Ok(Encoding::Identity),
        Some(value) if value.is_empty() || value == "identity" => Ok(Encoding::Identity),
        Some(value) if value == "gzip" || value == "x-gzip" => Ok(Encoding::Gzip),
        Some(other) => Err(EdgeError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported; send gzip or no encoding"
        ))),
    }
}

/// Decompresses at most `limit` bytes; more is a 413, corrupt input a 400.
fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, EdgeError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let read = flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| EdgeError::InvalidPayload(format!("request body is not valid gzip: {error}")))?;
    if read > limit {
        return Err(EdgeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("compress");
        encoder.finish().expect("finish")
    }

    #[test]
    fn gzip_is_bounded_after_decompression() {
        let data = vec![b'a'; 10_000];
        assert_eq!(gunzip(&gzip(&data), 10_000).expect("fits").len(), 10_000);
        assert!(matches!(gunzip(&gzip(&data), 9_999), Err(EdgeError::TooLarge { limit: 9_999 })));
        assert!(matches!(gunzip(b"not gzip", 100), Err(EdgeError::InvalidPayload(_))));
    }

    #[test]
    fn content_types() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().expect("header"));
            headers
        };
        assert_eq!(content_type(&with("application/json; charset=utf-8"), false).ok(), Some(Format::Json));
        assert_eq!(content_type(&with("application/vnd.segment+json"), false).ok(), Some(Format::Json));
        assert_eq!(content_type(&with("application/x-ndjson"), true).ok(), Some(Format::NdJson));
        assert!(content_type(&with("application/x-ndjson"), false).is_err());
        assert!(content_type(&with("text/plain"), true).is_err());
        assert!(content_type(&HeaderMap::new(), false).is_err());
    }
}

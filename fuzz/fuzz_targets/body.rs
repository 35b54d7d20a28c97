//! Request body decoding (`ingest::body::read` / `read_raw`): content type, size limit before
//! and after gzip, through the real async path (an axum `Body` streamed in chunks, the
//! decompression semaphore and `spawn_blocking`).
//!
//! Input layout: `[flags, limit_hi, limit_lo, chunk, body...]`
//! - flags bit 0: NDJSON allowed (bulk); bits 1-3: Content-Type (table below, 0 = none, which
//!   calls `read_raw` as the endpoints with an optional body do); bits 4-6: Content-Encoding;
//!   bit 7: send a (truthful) Content-Length;
//! - limit: the byte limit, 0..=65535;
//! - chunk: the body arrives in chunks of this many bytes (0: one chunk).
//!
//! Checked: whatever comes out is at most `limit` bytes; an identity body comes out unchanged;
//! a gzip body comes out as a plain `MultiGzDecoder` reads it, a 413 when that is more than
//! `limit`, a 400 when it is corrupt; a body over the limit is a 413 before it is decoded.
#![no_main]

use std::io::Read;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use bytes::Bytes;
use ingest::body::{read, read_raw, Format};
use ingest::error::EdgeError;
use libfuzzer_sys::fuzz_target;

/// (Content-Type, what `read` makes of it with NDJSON refused, with NDJSON allowed).
const CONTENT_TYPES: [(Option<&str>, Option<Format>, Option<Format>); 8] = [
    (None, None, None),
    (Some("application/json"), Some(Format::Json), Some(Format::Json)),
    (Some("Application/JSON; charset=utf-8"), Some(Format::Json), Some(Format::Json)),
    (Some("application/vnd.segment+json"), Some(Format::Json), Some(Format::Json)),
    (Some("application/x-ndjson"), None, Some(Format::NdJson)),
    (Some(" application/jsonl ;q=1"), None, Some(Format::NdJson)),
    (Some("text/plain"), None, None),
    (Some("application/json-patch"), None, None),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Identity,
    Gzip,
    Unsupported,
}

const ENCODINGS: [(Option<&str>, Encoding); 8] = [
    (None, Encoding::Identity),
    (Some("gzip"), Encoding::Gzip),
    (Some(" X-GZIP "), Encoding::Gzip),
    (Some("identity"), Encoding::Identity),
    (Some(""), Encoding::Identity),
    (Some("deflate"), Encoding::Unsupported),
    (Some("gzip, br"), Encoding::Unsupported),
    (Some("br"), Encoding::Unsupported),
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime"));

fuzz_target!(|data: &[u8]| {
    let [flags, limit_hi, limit_lo, chunk, ref body @ ..] = *data else { return };
    let ndjson = flags & 1 == 1;
    let (content_type, json_only, with_ndjson) = CONTENT_TYPES[usize::from(flags >> 1 & 7)];
    let (content_encoding, encoding) = ENCODINGS[usize::from(flags >> 4 & 7)];
    let declare_length = flags & 0x80 != 0;
    let limit = usize::from(u16::from_be_bytes([limit_hi, limit_lo]));

    let mut headers = HeaderMap::new();
    if let Some(value) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
    }
    if let Some(value) = content_encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(value));
    }
    if declare_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let chunks: Vec<Result<Bytes, std::io::Error>> = match chunk {
        0 => vec![Ok(Bytes::copy_from_slice(body))],
        n => body.chunks(usize::from(n)).map(|c| Ok(Bytes::copy_from_slice(c))).collect(),
    };
    let request_body = Body::from_stream(futures::stream::iter(chunks));

    let result = RUNTIME.block_on(async {
        match content_type {
            None => read_raw(&headers, request_body, limit).await.map(|bytes| (bytes, None)),
            Some(_) => read(&headers, request_body, limit, ndjson).await.map(|(bytes, format)| (bytes, Some(format))),
        }
    });

    // What it should be.
    let format = if ndjson { with_ndjson } else { json_only };
    if content_type.is_some() && format.is_none() {
        assert!(matches!(result, Err(EdgeError::UnsupportedMediaType(_))), "content type: {result:?}");
        return;
    }
    if body.len() > limit {
        assert!(matches!(result, Err(EdgeError::TooLarge { limit: l }) if l == limit), "over the limit: {result:?}");
        return;
    }
    match encoding {
        Encoding::Unsupported => {
            assert!(matches!(result, Err(EdgeError::UnsupportedMediaType(_))), "encoding: {result:?}");
        }
        Encoding::Identity => {
            let (bytes, got_format) = result.expect("an identity body within the limit is read");
            assert_eq!(&bytes[..], body);
            assert_eq!(got_format, format);
        }
        Encoding::Gzip => {
            let mut expected = Vec::new();
            let decoded = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1).read_to_end(&mut expected);
            match (decoded, result) {
                (Ok(n), Ok((bytes, got_format))) => {
                    assert!(n <= limit && bytes.len() <= limit, "{} bytes out of a limit of {limit}", bytes.len());
                    assert_eq!(&bytes[..], &expected[..]);
                    assert_eq!(got_format, format);
                }
                (Ok(n), Err(EdgeError::TooLarge { limit: l })) => {
                    assert!(n > limit && l == limit, "413 for {n} bytes, limit {limit}");
                }
                (Err(_), Err(EdgeError::InvalidPayload(_))) => {}
                (decoded, result) => panic!("gzip: reference {decoded:?}, read {result:?}"),
            }
        }
    }
});

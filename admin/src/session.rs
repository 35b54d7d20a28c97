//! The console's sessions: signing in with an admin token sets an HttpOnly, SameSite=Strict
//! cookie that stands for that token for 12 hours. Nothing is stored on the server: the cookie
//! is `token_id.expires_ms.nonce.mac`, the MAC keyed by the token itself, so a session ends
//! when it expires or its token is removed from the configuration, whichever role serves it.
//! Requests that change anything also carry the session's CSRF token (`X-CSRF-Token`), derived
//! from the same nonce; a page of another site can send the cookie but cannot read that token.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{body, error, token_of, Admin};
use runtime::config::AdminToken;

pub const COOKIE: &str = "sigstage_console";
pub const CSRF_HEADER: &str = "x-csrf-token";
const LIFETIME_MS: u64 = 12 * 3600 * 1000;

/// A valid session.
pub(crate) struct Session<'t> {
    pub(crate) token: &'t AdminToken,
    csrf: String,
}

fn mac(token: &AdminToken, purpose: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(purpose.as_bytes());
    mac.update(b"|");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn csrf_of(token: &AdminToken, nonce: &str) -> String {
    mac(token, "csrf", nonce)[..32].to_owned()
}

/// A new session's cookie value and CSRF token.
fn issue(token: &AdminToken, now_ms: u64) -> (String, String) {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the OS has randomness");
    let nonce = hex::encode(nonce);
    let claims = format!("{}.{}.{nonce}", token.id, now_ms + LIFETIME_MS);
    let value = format!("{claims}.{}", mac(token, "session", &claims));
    (value, csrf_of(token, &nonce))
}

/// The session a cookie value stands for, if it is genuine and unexpired.
fn verify<'t>(tokens: &'t [AdminToken], value: &str, now_ms: u64) -> Option<Session<'t>> {
    // From the right: a token id may itself hold dots.
    let mut parts = value.rsplitn(4, '.');
    let (given_mac, nonce, expires, id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let token = tokens.iter().find(|token| token.id == id)?;
    let claims = &value[..value.len() - given_mac.len() - 1];
    let genuine = bool::from(mac(token, "session", claims).as_bytes().ct_eq(given_mac.as_bytes()));
    (genuine && expires.parse::<u64>().ok()? > now_ms).then(|| Session { token, csrf: csrf_of(token, nonce) })
}

/// The session of the request's cookie, if any.
pub(crate) fn from_cookie<'t>(tokens: &'t [AdminToken], headers: &HeaderMap) -> Option<Session<'t>> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    verify(tokens, value, runtime::time::now_ms())
}

impl Session<'_> {
    /// The refusal of a request without this session's CSRF token, saying what is wrong.
    pub(crate) fn csrf_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        match headers.get(CSRF_HEADER).map(HeaderValue::as_bytes) {
            None => Some(error(
                StatusCode::FORBIDDEN,
                "csrf_token_missing",
                "a console request that changes something must carry the session's X-CSRF-Token",
            )),
            Some(given) if bool::from(given.ct_eq(self.csrf.as_bytes())) => None,
            Some(_) => {
                Some(error(StatusCode::FORBIDDEN, "csrf_token_invalid", "the X-CSRF-Token is not this session's"))
            }
        }
    }

    fn shown(&self, admin: &Admin) -> serde_json::Value {
        json!({"token_id": self.token.id, "read_only": self.token.read_only, "org": self.token.org, "csrf": self.csrf,
               "public_url": admin.public_url.as_ref()})
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// The session cookie; `Secure` when the request came through a TLS-terminating proxy
/// (`X-Forwarded-Proto: https`), so the browser never sends it over plain HTTP again.
fn cookie(value: &str, max_age_s: u64, headers: &HeaderMap) -> HeaderValue {
    let https = headers.get("x-forwarded-proto").is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&cookie).expect("cookie values are hex, digits and token ids")
}

/// `POST /console/session` with `{"token"}`: signs in.
pub async fn sign_in(
    State(admin): State<Admin>,
    extensions: Extensions,
    headers: HeaderMap,
    sign_in: Result<Json<SignIn>, JsonRejection>,
) -> Response {
    let client = match admin.admit(&extensions) {
        Ok(client) => client,
        Err(barred) => return barred,
    };
    let given = match body(sign_in, "invalid_sign_in") {
        Ok(sign_in) => sign_in.token,
        Err(refused) => return refused,
    };
    let Some(token) = token_of(&admin.tokens, given.trim()) else {
        admin.failed(client, "console sign-in refused: wrong admin token");
        return error(StatusCode::UNAUTHORIZED, "invalid_admin_token", "that is not an admin token of this sigstage");
    };
    let (value, csrf) = issue(token, runtime::time::now_ms());
    tracing::info!(token = %token.id, "console sign-in");
    let session = Session { token, csrf };
    let mut response = Json(session.shown(&admin)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(&value, LIFETIME_MS / 1000, &headers));
    response
}

/// `GET /console/session`: who is signed in, and the CSRF token for changes.
pub async fn current(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    match from_cookie(&admin.tokens, &headers) {
        Some(session) => Json(session.shown(&admin)).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "not_signed_in", "sign in with an admin token"),
    }
}

/// `DELETE /console/session`: signs out (the cookie is dropped).
pub async fn sign_out(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Some(session) = from_cookie(&admin.tokens, &headers) {
        if let Some(refused) = session.csrf_refusal(&headers) {
            return refused;
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie("", 0, &headers));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::config::Secret;

    fn token(id: &str, secret: &str) -> AdminToken {
        AdminToken { id: id.into(), read_only: false, org: None, secret: Secret::new(secret) }
    }

    #[test]
    fn a_session_is_genuine_until_it_expires() {
        let tokens = [token("ops.eu", "0123456789abcdef0123"), token("other", "fedcba9876543210fedc")];
        let (value, csrf) = issue(&tokens[0], 1_000);
        let session = verify(&tokens, &value, 2_000).expect("valid");
        assert_eq!((session.token.id.as_str(), session.csrf.as_str()), ("ops.eu", csrf.as_str()));
        assert!(verify(&tokens, &value, 1_000 + LIFETIME_MS).is_none(), "expired");
        let forged = value.replacen("ops.eu", "other", 1);
        assert!(verify(&tokens, &forged, 2_000).is_none(), "a session of one token cannot name another");
        let longer = value.replacen(&(1_000 + LIFETIME_MS).to_string(), &(2_000 + LIFETIME_MS).to_string(), 1);
        assert!(verify(&tokens, &longer, 2_000).is_none(), "nor be extended");
        assert!(verify(&tokens[1..], &value, 2_000).is_none(), "its token was removed");
        assert!(verify(&tokens, "garbage", 2_000).is_none());
    }

    #[test]
    fn csrf_is_checked_in_full() {
        let tokens = [token("ops", "0123456789abcdef0123")];
        let (value, csrf) = issue(&tokens[0], 1_000);
        let session = verify(&tokens, &value, 2_000).expect("valid");
        let mut headers = HeaderMap::new();
        assert!(session.csrf_refusal(&headers).is_some(), "missing");
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&csrf[..31]).expect("ascii"));
        assert!(session.csrf_refusal(&headers).is_some(), "a prefix");
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).expect("ascii"));
        assert!(session.csrf_refusal(&headers).is_none());
    }
}

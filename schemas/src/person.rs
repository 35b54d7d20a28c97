//! Who a signal is about, decided the same way by the edge (for the record key, so a visitor's
//! signals share a partition) and the stream (for identity resolution).
//!
//! The visitor is the `anonymousId`, else a top-level `session_id` (Tracardi's collect API),
//! else the `userId`;
//! ids that clients send when they have none (`undefined`, `null`, `[object Object]`, `0`, an
//! empty string, …) are no visitor at all, so they are never linked: in PostHog such ids once
//! merged every visitor into one person (PostHog#12008). Emails compare trimmed and
//! lower-cased, and must have something on each side of the `@`.

/// Values that clients put in an id field when they have no id.
const JUNK_IDS: [&str; 12] =
    ["undefined", "null", "nil", "none", "nan", "[object object]", "0", "-1", "anonymous", "unknown", "guest", "true"];

/// An id that names nobody.
pub fn is_junk_id(id: &str) -> bool {
    let id = id.trim();
    id.is_empty() || id.len() <= 15 && JUNK_IDS.iter().any(|junk| id.eq_ignore_ascii_case(junk))
}

/// `id`, unless it names nobody.
pub fn real_id(id: &str) -> Option<&str> {
    (!is_junk_id(id)).then_some(id.trim())
}

/// The visitor of a signal from its `anonymousId`, top-level `session_id` and `userId`.
pub fn visitor<'a>(
    anonymous_id: Option<&'a str>,
    session_id: Option<&'a str>,
    user_id: Option<&'a str>,
) -> Option<&'a str> {
    [anonymous_id, session_id, user_id].into_iter().flatten().find_map(real_id)
}

/// An email as it is compared and stored, or None when it is not one.
pub fn normalise_email(email: &str) -> Option<String> {
    let email = email.trim();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !is_junk_id(local)).then(|| email.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_ids_name_nobody() {
        for junk in ["", "  ", "undefined", "NULL", "[object Object]", "0", " none "] {
            assert!(is_junk_id(junk), "{junk:?}");
        }
        for real in ["a1", "0a", "00000000-0000-0000-0000-000000000001", "null-visitor"] {
            assert!(!is_junk_id(real), "{real:?}");
        }
        assert_eq!(visitor(Some("undefined"), Some("s1"), Some("u1")), Some("s1"));
        assert_eq!(visitor(Some(" a1 "), Some("s1"), None), Some("a1"));
        assert_eq!(visitor(Some("null"), None, Some("0")), None);
        assert_eq!(visitor(None, None, Some("u1")), Some("u1"));
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(normalise_email("  Jane@ACME.io ").as_deref(), Some("jane@acme.io"));
        for bad in ["", "jane", "@acme.io", "jane@", "undefined@x.io"] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
    }
}

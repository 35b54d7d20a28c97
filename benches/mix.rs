//! The signal mix the benches share.

use bytes::Bytes;

/// A realistic mix: Segment track/identify/page (0.5–2 KB), generic webhooks, activities.
pub fn mix() -> Vec<Bytes> {
    let context = r#""context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"4.1.0"},"locale":"en-US","page":{"path":"/pricing","referrer":"https://www.google.com/","search":"?utm_source=ads","title":"Pricing - Acme","url":"https://acme.io/pricing?utm_source=ads"},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","campaign":{"name":"spring","source":"ads","medium":"cpc"}}"#;
    let payloads = [
        format!(
            r#"{{"type":"track","event":"Form Submitted","anonymousId":"a-{{n}}","messageId":"m-{{n}}","timestamp":"2026-11-20T10:00:00.000Z","sentAt":"2026-11-20T10:00:00.120Z","properties":{{"form_name":"demo","plan":"enterprise","seats":25}},{context}}}"#
        ),
        format!(
            r#"{{"type":"identify","anonymousId":"a-{{n}}","userId":"u-{{n}}","messageId":"i-{{n}}","traits":{{"email":"jane{{n}}@acme.io","name":"Jane Doe","company":"Acme","title":"CTO"}},{context}}}"#
        ),
        format!(
            r#"{{"type":"page","anonymousId":"a-{{n}}","messageId":"p-{{n}}","name":"Pricing","properties":{{"url":"https://acme.io/pricing","name":"Pricing","path":"/pricing"}},{context}}}"#
        ),
        r#"{"email":"lead{n}@example.com","event":"page_view","properties":{"page":"/pricing"}}"#.to_owned(),
        r#"{"title":"Customer Inquiry Handled","description":"Handled customer inquiry from Jane Doe regarding billing.","startTime":"2024-08-03T11:30:00Z","trigger":"Manual Log","event":"Call Center Log","externalId":"call-log-{n}"}"#.to_owned(),
    ];
    (0..1000).map(|n| Bytes::from(payloads[n % payloads.len()].replace("{n}", &n.to_string()))).collect()
}

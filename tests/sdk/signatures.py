"""Signs a webhook body the way a provider does, with the provider's own published library, and
prints the headers it would send as one JSON object.

    python3 signatures.py PROVIDER SECRET TIMESTAMP URL < body

PROVIDER is stripe (stripe's WebhookSignature.generate_signature_header, the helper it offers
for tests), slack (slack_sdk's SignatureVerifier.generate_signature), hubspot (hubspot-api-client's
Signature.get_signature, v3) or shopify (Shopify publishes no signing library: its documented
recipe, base64 of the body's HMAC-SHA256). TIMESTAMP is Unix seconds; URL is the full URL the
request goes to (HubSpot signs it).
"""

import base64
import hashlib
import hmac
import json
import sys

PROVIDER, SECRET, TIMESTAMP, URL = sys.argv[1:5]
body = sys.stdin.buffer.read().decode("utf-8")

if PROVIDER == "stripe":
    from stripe import WebhookSignature

    headers = {"Stripe-Signature": WebhookSignature.generate_signature_header(body, SECRET, int(TIMESTAMP))}
elif PROVIDER == "slack":
    from slack_sdk.signature import SignatureVerifier

    signature = SignatureVerifier(SECRET).generate_signature(timestamp=TIMESTAMP, body=body)
    headers = {"X-Slack-Request-Timestamp": TIMESTAMP, "X-Slack-Signature": signature}
elif PROVIDER == "hubspot":
    from hubspot.utils.signature import Signature

    millis = str(int(TIMESTAMP) * 1000)
    signature = Signature.get_signature(SECRET, body, "v3", http_uri=URL, http_method="POST", timestamp=millis)
    headers = {"X-HubSpot-Request-Timestamp": millis, "X-HubSpot-Signature-v3": signature}
elif PROVIDER == "shopify":
    digest = hmac.new(SECRET.encode("utf-8"), body.encode("utf-8"), hashlib.sha256).digest()
    headers = {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}
else:
    sys.exit(f"unknown provider {PROVIDER}")

print(json.dumps(headers))

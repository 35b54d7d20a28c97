"""Writes N Segment-shaped track events (about 1 KB each) as NDJSON to stdout: the shape of a
historical export. Visitors repeat (N/10 of them), a fifth of the events name the user's email in
context.traits (EMAIL_EVERY), and every event carries `event` = the run's tag, so its rows can be counted.

    python3 scripts/bench/segment_export.py N TAG > export.ndjson
"""
import json
import os
import sys

n, tag = int(sys.argv[1]), sys.argv[2]
# Every EMAIL_EVERY-th event names its user's email (0: none, so no visitor is ever identified).
email_every = int(os.environ.get("EMAIL_EVERY", "5"))
pages = ["/pricing", "/docs/getting-started", "/blog/attribution", "/signup", "/integrations/segment"]
out = sys.stdout
for i in range(n):
    visitor = i % max(n // 10, 1)
    event = {
        "type": "track",
        "event": tag,
        "messageId": f"{tag}-{i}",
        "anonymousId": f"anon-{tag}-{visitor}",
        "timestamp": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 60:02d}.000Z",
        "sentAt": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 60:02d}.120Z",
        "properties": {
            "plan": ["free", "team", "enterprise"][i % 3],
            "seats": i % 250,
            "revenue": round(i * 0.37 % 1000, 2),
            "currency": "USD",
            "path": pages[i % len(pages)],
            "experiment": {"id": f"exp-{i % 17}", "variant": "b" if i % 2 else "a"},
            "description": "Viewed the pricing page after the newsletter, compared the team and "
            "enterprise plans, and opened the security overview.",
        },
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.1"},
            "ip": f"203.0.113.{i % 250}",
            "locale": "en-US",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "page": {
                "path": pages[i % len(pages)],
                "referrer": "https://www.google.com/",
                "title": "Acme: signals for revenue teams",
                "url": f"https://acme.io{pages[i % len(pages)]}?utm_source=newsletter&utm_campaign=q{1 + i % 4}",
            },
            "campaign": {"name": f"q{1 + i % 4}-launch", "source": "newsletter", "medium": "email"},
        },
        "integrations": {"All": True},
        "receivedAt": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 60:02d}.200Z",
        "version": 2,
    }
    if email_every and i % email_every == 0:
        event["context"]["traits"] = {"email": f"user{visitor}@{tag}.example.com", "name": f"User {visitor}"}
    out.write(json.dumps(event, separators=(",", ":")))
    out.write("\n")

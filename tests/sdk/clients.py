"""Sends one person's events through a real Python SDK, as an application would.

    python3 clients.py CLIENT HOST WRITE_KEY RUN PHASE

CLIENT is segment-python (segment-analytics-python: writeKey in the body and Basic auth, no
gzip) or rudder-python (rudder-sdk-python: Basic auth, gzip). RUN makes the ids unique. PHASE
"before" sends what happens before the person is known (anonymous track and page, a track from
an old device), then the identify; "after" sends what follows it (track, screen, group, and an
alias of the old device's id). Exits 1 if the client reported any error.
"""

import sys

CLIENT, HOST, WRITE_KEY, RUN, PHASE = sys.argv[1:6]
errors = []


def on_error(error, batch):
    errors.append(f"{error} ({len(batch)} events)")


if CLIENT == "segment-python":
    from segment.analytics import Client

    client = Client(WRITE_KEY, host=HOST, on_error=on_error, gzip=False, max_retries=3)
elif CLIENT == "rudder-python":
    from rudderstack.analytics import Client

    client = Client(WRITE_KEY, host=HOST, on_error=on_error, gzip=True, max_retries=3)
else:
    sys.exit(f"unknown client {CLIENT}")

anonymous_id, user_id, old_id = f"anon-{CLIENT}-{RUN}", f"user-{CLIENT}-{RUN}", f"old-{CLIENT}-{RUN}"
email = f"{CLIENT}-{RUN}@example.com"

if PHASE == "before":
    client.track(anonymous_id=anonymous_id, event="Viewed Pricing", properties={"plan": "pro"})
    client.page(anonymous_id=anonymous_id, name="Pricing", properties={"path": "/pricing"})
    client.track(anonymous_id=old_id, event="Visited From Old Device")
    client.identify(user_id=user_id, anonymous_id=anonymous_id, traits={"email": email, "name": "Ada"})
elif PHASE == "after":
    client.track(user_id=user_id, anonymous_id=anonymous_id, event="Signed Up")
    client.screen(user_id=user_id, name="Home")
    client.group(user_id=user_id, group_id=f"group-{RUN}", traits={"name": "Acme"})
    client.alias(previous_id=old_id, user_id=user_id)
else:
    sys.exit(f"unknown phase {PHASE}")

client.flush()
client.join()
if errors:
    sys.exit("; ".join(errors))

-- The provider whose signatures a key's requests must carry (Stripe, GitHub, HubSpot v3,
-- Shopify, Slack, Standard Webhooks) and its signing secret. The edge needs the secret itself
-- to compute the HMAC, as the provider's own verifier does, so it is stored as given: keep the
-- control database's users to those who may see it. An empty provider removes the requirement.
CREATE TABLE IF NOT EXISTS key_signing (
    org_id String,
    key_id String,
    provider String,
    secret String,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, key_id);

//! `GET /api/admin/openapi.json`: the admin API as an OpenAPI 3.1 document, built from the
//! same list of operations as the router.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::operations;

pub async fn serve() -> Response {
    Json(document()).into_response()
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in operations() {
        let mut parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(operation.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
        }));
        let mut entry = json!({
            "summary": operation.summary,
            "operationId": format!("{}{}", operation.method.as_str().to_lowercase(), operation.path.replace(['{', '}'], "").replace(['/', '-'], "_")),
            "parameters": parameters,
            "responses": {
                "2XX": {"description": "done; the body is JSON (the tail: text/event-stream)"},
                "4XX": {"description": "refused: {\"error\": code, \"message\": what is wrong}", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "503": {"description": "ClickHouse or Kafka is out of reach", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if let Some(body) = operation.body {
            entry["requestBody"] = json!({"required": true, "description": body, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let item = paths.entry(operation.path).or_insert_with(|| json!({}));
        item[operation.method.as_str().to_lowercase()] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sigstage admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Keys, limits, usage, mapping rules, the signal queue, the live tail and webhooks, per org. The console at /console is one of its clients."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"console": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "SIGSTAGE_ADMIN_TOKEN, or a token of SIGSTAGE_ADMIN_TOKENS"},
                "console": {"type": "apiKey", "in": "cookie", "name": super::session::COOKIE, "description": "the console's session; changes also need the X-CSRF-Token header"},
            },
            "schemas": {"Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}},
        },
        "paths": paths,
    })
}

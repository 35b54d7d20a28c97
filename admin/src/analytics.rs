//! `/api/admin/orgs/{org}/analytics/{query}`: a question of the analysts' library
//! (`schemas/queries/`) for one org, as the console's Analytics page charts it.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{error, unavailable, Admin};

/// The most rows an answer may have: a chart shows days or sources, not a whole table.
const MAX_ROWS: &str = "10000";

/// The answer as ClickHouse's JSON format (`meta`, `data`, `rows`; 64-bit numbers as strings).
/// `since` and `until` default to the last 30 days; any other parameter of the query is a
/// query-string parameter of the same name.
pub async fn ask(
    State(admin): State<Admin>,
    Path((org, name)): Path<(String, String)>,
    Query(mut values): Query<BTreeMap<String, String>>,
) -> Response {
    if !schemas::valid_org_id(&org) {
        return error(StatusCode::BAD_REQUEST, "invalid_org", format!("org id {org:?} is not valid"));
    }
    let Some(query) = schemas::queries::Query::named(&name) else {
        let known: Vec<&str> = schemas::queries::QUERIES.iter().map(|query| query.name).collect();
        return error(
            StatusCode::NOT_FOUND,
            "unknown_query",
            format!("no query {name:?}; the library has {}", known.join(", ")),
        );
    };
    if values.contains_key("org") {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            "the org is the path's; leave org out of the query string",
        );
    }
    values.insert("org".to_owned(), org);
    let sql = match schemas::queries::default_range(&mut values).and_then(|()| query.bind(&values)) {
        Ok(sql) => sql,
        Err(refused) => return error(StatusCode::BAD_REQUEST, "bad_parameter", refused.to_string()),
    };
    let query = admin
        .client
        .query_raw(&sql)
        .with_setting("max_result_rows", MAX_ROWS)
        .with_setting("result_overflow_mode", "throw");
    let body = match runtime::clickhouse::answer_bytes(query, "JSON").await {
        Ok(body) => body,
        // Code 396: more than MAX_ROWS rows.
        Err(failure) if failure.to_string().contains("Code: 396") => {
            let message = format!("{name} answers more than {MAX_ROWS} rows: narrow the range");
            return error(StatusCode::UNPROCESSABLE_ENTITY, "answer_too_large", message);
        }
        Err(failure) => return unavailable(failure),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

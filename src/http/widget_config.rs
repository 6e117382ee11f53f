//! `GET /api/v1/widget-config`: the widget's look and texts as set in the back office.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use crate::{app::settings, http::error::ApiError, http::state::AppState};

/// `{"title", "color", "greeting", "position", "fields": {"name", "email"}}`; each field is
/// `required`, `optional` or `hidden`. Not cached: a change in the back office shows at the
/// next page load (it is one small read, once per page).
pub async fn get_widget_config(State(state): State<AppState>) -> Result<Response, ApiError> {
    let widget = settings::widget(&state.store).await?;
    let mut response = Json(widget.to_json()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

use axum::Json;

use crate::openapi::Message;

/// Answers `pong`
#[utoipa::path(
    get,
    path = "/ping",
    operation_id = "ping",
    tag = "misc",
    responses((status = 200, description = "The API is up.", body = Message, example = json!({"message": "pong"})))
)]
pub(crate) async fn ping() -> Json<Message> {
    Json(Message::new("pong"))
}

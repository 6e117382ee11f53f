//! Attached files over HTTP: the visitor's upload (multipart, streamed to disk with every limit
//! checked before anything is kept) and downloads, for the chat's visitor only, served so that
//! no uploaded file can ever run in parley's origin.

use axum::{
    Json,
    body::Body,
    extract::{
        Multipart, Path, Query, State,
        multipart::{MultipartError, MultipartRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::{
    app::attachments::{self, ReceiveError, Upload},
    app::chats,
    app::upload_room::{self, NoRoom},
    domain::{ChatStatus, files::is_inline_image, input},
    http::state::AppState,
    http::{
        error::{ApiError, ErrorCode},
        extract::{ClientIp, VisitorChat},
    },
    storage::{files::FileRow, messages::VisitorMessageOutcome, now_ms},
};

/// The largest body the upload route reads: every allowed file at its largest, plus room for
/// the text and the multipart framing.
pub fn max_upload_body(state: &AppState) -> usize {
    let files = &state.settings.files;
    (files.max_bytes as usize).saturating_mul(files.max_per_message) + 256 * 1024
}

/// `POST /api/v1/chats/{id}/files`: multipart with parts `file` (one or more) and an optional
/// `text`. Either every file is accepted and the message stored, or nothing is kept.
pub async fn upload(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    VisitorChat(chat): VisitorChat,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    if chat.status() == ChatStatus::Closed {
        return Err(ApiError::chat_closed());
    }
    let mut multipart = multipart.map_err(|_| {
        ApiError::new(
            ErrorCode::MultipartRequired,
            "send the files as multipart/form-data with parts named `file` (and optionally `text`)",
        )
    })?;
    state.rate_limits.check_message(ip, &chat.id)?;
    // Already full: refuse before reading (and writing) a byte.
    room_for(&state, 0).await?;
    let limits = &state.settings.files;
    let max_text_bytes = state.settings.limits.max_message_chars * 4;
    let mut text = String::new();
    let mut uploads: Vec<Upload> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "text" => text = read_text(field, max_text_bytes).await?,
            "file" => {
                if uploads.len() == limits.max_per_message {
                    return Err(ApiError::new(
                        ErrorCode::TooManyFiles,
                        format!(
                            "at most {} files can be sent at once",
                            limits.max_per_message
                        ),
                    ));
                }
                let raw_name = field.file_name().unwrap_or("file").to_owned();
                let upload = receive_file(&state, field, &raw_name).await?;
                uploads.push(upload);
            }
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(ApiError::new(
                    ErrorCode::UnknownPart,
                    format!("unexpected part `{other}`; send `file` and optionally `text`"),
                ));
            }
        }
    }
    if uploads.is_empty() {
        return Err(ApiError::new(
            ErrorCode::FileRequired,
            "attach at least one file in a part named `file`",
        ));
    }
    // The received files are still temporary: refused here, nothing is kept.
    room_for(
        &state,
        uploads.iter().map(|u| u.file.size.max(0) as u64).sum(),
    )
    .await?;
    let text = if text.trim().is_empty() {
        String::new()
    } else {
        input::message_text("text", &text, state.settings.limits.max_message_chars)?
    };
    match chats::post_visitor_message(&state, &chat, &text, uploads).await? {
        VisitorMessageOutcome::Stored { message, .. } => Ok((
            StatusCode::CREATED,
            Json(json!({ "message": state.hub.view(&message) })),
        )),
        VisitorMessageOutcome::ChatClosed => Err(ApiError::chat_closed()),
        VisitorMessageOutcome::NoSuchChat => Err(ApiError::not_found("chat")),
        VisitorMessageOutcome::OverChatAllowance => Err(over_allowance(&state)),
    }
}

/// Refuses with `507 Insufficient Storage` when `incoming` more bytes do not fit (see
/// [`upload_room`]). The visitor cannot act on which limit it was; the log tells the admin.
async fn room_for(state: &AppState, incoming: u64) -> Result<(), ApiError> {
    const FULL: &str =
        "files cannot be received right now (the server's storage is full); please try again later";
    let (code, message) = match upload_room::check(state, incoming).await? {
        Ok(()) => return Ok(()),
        Err(NoRoom::DiskFloor) => {
            tracing::warn!(
                data_dir = %state.settings.data_dir.display(),
                "uploads refused: the data directory's disk is below PARLEY_MIN_FREE_DISK_MB"
            );
            (ErrorCode::StorageFull, FULL)
        }
        Err(NoRoom::StoredQuota) => {
            tracing::warn!("uploads refused: the files kept reached PARLEY_MAX_STORED_FILES_MB");
            (ErrorCode::StorageFull, FULL)
        }
        Err(NoRoom::DailyQuota) => (
            ErrorCode::DailyUploadLimit,
            "files cannot be received right now (today's limit for all visitors is reached); please try again later",
        ),
    };
    Err(ApiError::new(code, message))
}

/// The chat's files would pass `PARLEY_MAX_CHAT_FILES_MB`.
pub fn over_allowance(state: &AppState) -> ApiError {
    ApiError::new(
        ErrorCode::ChatFilesLimit,
        format!(
            "this chat has reached its limit of {} of files",
            attachments::human_size(state.settings.files.max_chat_bytes as i64)
        ),
    )
}

async fn read_text(
    mut field: axum::extract::multipart::Field<'_>,
    max_bytes: usize,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(ApiError::field(
                ErrorCode::MessageTooLong,
                "text",
                "`text` is too long",
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::field(ErrorCode::InvalidEncoding, "text", "`text` must be UTF-8"))
}

/// Streams one file part to disk and checks it: size, not empty, an allowed type.
async fn receive_file(
    state: &AppState,
    field: axum::extract::multipart::Field<'_>,
    raw_name: &str,
) -> Result<Upload, ApiError> {
    let limits = &state.settings.files;
    let name = crate::domain::files::display_name(raw_name);
    let blob = match attachments::receive(&state.blobs, field, limits.max_bytes).await {
        Ok(blob) => blob,
        Err(ReceiveError::TooLarge(max)) => {
            return Err(ApiError::new(
                ErrorCode::FileTooLarge,
                format!(
                    "`{name}` is larger than the limit of {}",
                    attachments::human_size(max as i64)
                ),
            ));
        }
        Err(ReceiveError::Source(e)) => {
            tracing::debug!(error = ?e.to_string(), "upload interrupted");
            return Err(invalid_multipart());
        }
        Err(ReceiveError::Disk(e)) => return Err(ApiError::internal(&e)),
    };
    if blob.is_empty() {
        return Err(ApiError::new(
            ErrorCode::FileEmpty,
            format!("`{name}` is empty"),
        ));
    }
    let upload = attachments::describe(blob, raw_name, None);
    if !limits.types.contains(&upload.file.content_type) {
        return Err(ApiError::new(
            ErrorCode::FileTypeNotAllowed,
            format!(
                "`{name}` is not a kind of file that can be sent here (its content is {})",
                upload.file.content_type
            ),
        ));
    }
    Ok(upload)
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::RequestTooLarge,
            "the upload is larger than allowed in all",
        )
    } else {
        // multer quotes parts of the body (field names): logged escaped.
        tracing::debug!(error = ?e.to_string(), "bad multipart body");
        invalid_multipart()
    }
}

fn invalid_multipart() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidMultipart,
        "the multipart body could not be read",
    )
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    expires: i64,
    signature: String,
}

/// `GET /api/v1/files/{file_id}?expires=&signature=`: a signed link, as found in message views.
pub async fn download_signed(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let link_error = || {
        ApiError::new(
            ErrorCode::InvalidLink,
            "this download link is invalid or has expired; reload the chat for a fresh one",
        )
    };
    let Query(query) = query.map_err(|_| link_error())?;
    if file_id.len() > 64
        || query.signature.len() > 128
        || !state
            .hub
            .links()
            .verify(&file_id, query.expires, &query.signature, now_ms() / 1000)
    {
        return Err(link_error());
    }
    let file = state
        .store
        .get_visitor_file(&file_id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    serve(&state, &file).await
}

/// `GET /api/v1/chats/{id}/files/{file_id}` with the visitor's token.
pub async fn download_for_visitor(
    State(state): State<AppState>,
    VisitorChat(chat): VisitorChat,
    Path((_, file_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let file = state
        .store
        .get_visitor_file(&file_id)
        .await?
        .filter(|f| f.chat_id == chat.id)
        .ok_or_else(|| ApiError::not_found("file"))?;
    serve(&state, &file).await
}

/// The policy of every download: nothing may load or run (`sandbox` without `allow-scripts`),
/// except the inline styles a browser's own image viewer adds to an image opened in a tab
/// (the image itself is the page, not a subresource, so it needs no `img-src`).
pub const DOWNLOAD_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// Sends a stored file. Only raster images are shown inline; everything else is an
/// attachment, markup types are sent as opaque bytes, and the CSP sandbox keeps even a
/// mislabelled file from running script.
pub async fn serve(state: &AppState, file: &FileRow) -> Result<Response, ApiError> {
    let reader = match state.blobs.read(&file.chat_id, &file.id).await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(file_id = %file.id, "a stored file is missing on disk");
            return Err(ApiError::not_found("file"));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let inline = is_inline_image(&file.content_type);
    let content_type = if inline || state.settings.files.types.contains(&file.content_type) {
        file.content_type.as_str()
    } else {
        "application/octet-stream"
    };
    let mut response = Body::from_stream(ReaderStream::new(reader)).into_response();
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, content_type);
    set(header::CONTENT_LENGTH, &file.size.to_string());
    set(
        header::CONTENT_DISPOSITION,
        &content_disposition(inline, &file.name),
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::CONTENT_SECURITY_POLICY, DOWNLOAD_CSP);
    set(header::CACHE_CONTROL, "private, max-age=600");
    // The widget shows images on the customer's site, another origin.
    set(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "cross-origin",
    );
    Ok(response)
}

/// `inline` or `attachment`, with an ASCII fallback name and the UTF-8 name (RFC 6266).
fn content_disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != ';' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn disposition_is_safe_and_keeps_the_name() {
        assert_eq!(
            content_disposition(false, "a \"b\";c.txt"),
            "attachment; filename=\"a _b__c.txt\"; filename*=UTF-8''a%20%22b%22%3Bc.txt"
        );
        assert!(
            content_disposition(true, "Grüße.png").starts_with("inline; filename=\"Gr__e.png\"")
        );
    }
}

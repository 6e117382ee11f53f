//! `/files`: multipart (or raw) upload, download and FileInfo lookup.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Shared;
use crate::api::channels::parse_bool;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response, query_params};
use crate::model::{FileInfo, User, new_id, now_ms};
use crate::state::{State as SimState, StoredFile};

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "api.file.upload_file.too_large.app_error",
        "Unable to upload file. File is too large.",
    )
}

fn file_not_found() -> ApiError {
    ApiError::new(
        404,
        "app.file_info.get.app_error",
        "Unable to get the file info.",
    )
}

/// MIME type by extension, enough for what chat visitors send.
fn mime_for(ext: &str) -> &'static str {
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// Width and height of PNG, GIF and JPEG images, read from their headers.
fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    if bytes.len() >= 10 && (bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        let w = u16::from_le_bytes([bytes[6], bytes[7]]) as u32;
        let h = u16::from_le_bytes([bytes[8], bytes[9]]) as u32;
        return Some((w, h));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the size.
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]) as u32;
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]) as u32;
                return Some((w, h));
            }
            i += 2 + len;
        }
    }
    None
}

fn make_info(user_id: &str, channel_id: &str, name: &str, bytes: &[u8]) -> FileInfo {
    // Keep only the base name, as `filepath.Base` does.
    let name = name
        .rsplit(['/', '\\'])
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("file")
        .to_owned();
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    let mime = mime_for(&extension);
    let dimensions = if mime.starts_with("image/") {
        image_dimensions(bytes)
    } else {
        None
    };
    let now = now_ms();
    FileInfo {
        id: new_id(),
        user_id: user_id.to_owned(),
        post_id: String::new(),
        channel_id: channel_id.to_owned(),
        create_at: now,
        update_at: now,
        delete_at: 0,
        name,
        extension,
        size: bytes.len() as u64,
        mime_type: mime.to_owned(),
        dimensions,
    }
}

/// `POST /files`: multipart `channel_id`, `files`..., optional `client_ids`; or a raw
/// body with `?channel_id=&filename=`.
pub async fn upload(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    req: Request,
) -> ApiResult<Response> {
    let (max, enabled) = {
        let st = shared.lock();
        (st.config.max_file_size, st.config.enable_file_attachments)
    };
    if !enabled {
        // api4/file.go `uploadFileStream`: attachments disabled in the System Console.
        return Err(ApiError::new(
            501,
            "api.file.attachments.disabled.app_error",
            "File attachments have been disabled on this server.",
        ));
    }
    let content_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let q = query_params(req.uri().query());
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let mut channel_id = q.get("channel_id").cloned().unwrap_or_default();
    let mut client_ids: Vec<String> = Vec::new();
    let mut files: Vec<(String, Bytes)> = Vec::new();
    let read_error = || {
        ApiError::new(
            400,
            "api.file.upload_file.read_request.app_error",
            "Unable to upload file(s). Error reading or parsing request data.",
        )
    };
    if is_multipart {
        let mut mp = Multipart::from_request(req, &shared)
            .await
            .map_err(|_| read_error())?;
        while let Some(field) = mp.next_field().await.map_err(|_| read_error())? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            match (name.as_str(), file_name) {
                ("channel_id", None) => {
                    channel_id = field.text().await.map_err(|_| read_error())?
                }
                ("client_ids", None) => {
                    client_ids.push(field.text().await.map_err(|_| read_error())?)
                }
                ("files", Some(file_name)) => {
                    let bytes = field.bytes().await.map_err(|_| read_error())?;
                    if bytes.len() as u64 > max {
                        return Err(too_large());
                    }
                    files.push((file_name, bytes));
                }
                _ => {}
            }
        }
    } else {
        let filename = q
            .get("filename")
            .cloned()
            .filter(|f| !f.is_empty())
            .ok_or_else(|| ApiError::invalid_param("filename"))?;
        let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|_| read_error())?;
        if bytes.len() as u64 > max {
            return Err(too_large());
        }
        files.push((filename, bytes));
    }
    if channel_id.is_empty() {
        return Err(ApiError::invalid_param("channel_id"));
    }
    let mut st = shared.lock();
    if !st.channels.contains_key(&channel_id) || !st.has_channel_role(&caller, &channel_id) {
        return Err(ApiError::forbidden());
    }
    if files.is_empty() {
        return Err(ApiError::new(
            400,
            "api.file.upload_file.incorrect_number_of_files.app_error",
            "Unable to upload files. Incorrect number of files specified.",
        ));
    }
    if !client_ids.is_empty() && client_ids.len() != files.len() {
        return Err(ApiError::new(
            400,
            "api.file.upload_file.incorrect_number_of_client_ids.app_error",
            "Unable to upload files. Incorrect number of client IDs.",
        ));
    }
    let mut infos = Vec::new();
    for (name, bytes) in files {
        let info = make_info(&caller.id, &channel_id, &name, &bytes);
        infos.push(info.to_json());
        st.files.insert(info.id.clone(), StoredFile { info, bytes });
    }
    Ok(json_response(
        201,
        json!({"file_infos": infos, "client_ids": client_ids}),
    ))
}

/// The uploader, or anyone who can read the file's channel.
fn readable_file<'a>(st: &'a SimState, caller: &User, file_id: &str) -> ApiResult<&'a StoredFile> {
    let file = st
        .files
        .get(file_id)
        .filter(|f| f.info.delete_at == 0)
        .ok_or_else(file_not_found)?;
    let can_read = file.info.user_id == caller.id
        || st
            .channels
            .get(&file.info.channel_id)
            .is_some_and(|c| st.can_read_channel(caller, c));
    if !can_read {
        return Err(ApiError::forbidden());
    }
    Ok(file)
}

/// `GET /files/{file_id}/info`.
pub async fn get_info(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(file_id): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let file = readable_file(&st, &caller, &file_id)?;
    Ok(json_response(200, file.info.to_json()))
}

/// `GET /files/{file_id}[?download=1]`: the raw bytes; only media and PDFs are
/// served inline, everything else as an attachment.
pub async fn get_file(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(file_id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let download = parse_bool(query_params(uri.query()).get("download"));
    let (info, bytes) = {
        let st = shared.lock();
        let file = readable_file(&st, &caller, &file_id)?;
        (file.info.clone(), file.bytes.clone())
    };
    let mime = info.mime_type.as_str();
    let inline_ok = !download
        && (mime.starts_with("image/") && mime != "image/svg+xml"
            || mime.starts_with("video/")
            || mime.starts_with("audio/")
            || mime == "application/pdf");
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline_ok { "inline" } else { "attachment" },
        info.name.replace('"', "")
    );
    let mut resp = Body::from(bytes).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

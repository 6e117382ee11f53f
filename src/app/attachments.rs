//! Files on their way into a chat: received as a stream with a size cap into a temporary
//! file, typed from their content, named for display, then kept beside the chat once the
//! transcript has them. Used for visitors' uploads and for copies of operators' files.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{
    app::App,
    domain::files::{detect, display_name},
    mattermost::{Bridge, MmError},
    storage::{
        blobs::{Blobs, TempBlob},
        files::NewFile,
    },
};

/// A received file, still in `tmp/`.
#[derive(Debug)]
pub struct Upload {
    pub blob: TempBlob,
    pub file: NewFile,
}

/// Why a file could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the file could not be read: {0}")]
    Source(String),
    #[error("the file could not be written: {0}")]
    Disk(#[from] std::io::Error),
}

/// Writes a stream to a temporary file, refusing it as soon as it passes `max` bytes.
pub async fn receive<S, E>(blobs: &Blobs, stream: S, max: u64) -> Result<TempBlob, ReceiveError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    let mut blob = blobs.temp().await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReceiveError::Source(e.to_string()))?;
        if blob.len() + chunk.len() as u64 > max {
            return Err(ReceiveError::TooLarge(max));
        }
        blob.write(&chunk).await?;
    }
    Ok(blob)
}

/// Types a received file from its content and gives it an id and a display name.
pub fn describe(blob: TempBlob, raw_name: &str, mm_file_id: Option<String>) -> Upload {
    let file = NewFile {
        id: uuid::Uuid::new_v4().to_string(),
        name: display_name(raw_name),
        content_type: detect(blob.head()),
        size: blob.len() as i64,
        mm_file_id,
    };
    Upload { blob, file }
}

/// Moves received files beside their chat. On failure the ones already moved are removed.
#[tracing::instrument(skip_all, fields(chat_id, files = uploads.len()))]
pub async fn keep(
    blobs: &Blobs,
    chat_id: &str,
    uploads: Vec<Upload>,
) -> std::io::Result<Vec<NewFile>> {
    let mut kept: Vec<NewFile> = Vec::with_capacity(uploads.len());
    for upload in uploads {
        if let Err(e) = blobs.keep(upload.blob, chat_id, &upload.file.id).await {
            discard(blobs, chat_id, &kept).await;
            return Err(e);
        }
        kept.push(upload.file);
    }
    Ok(kept)
}

/// Removes kept files the transcript did not take after all.
pub async fn discard(blobs: &Blobs, chat_id: &str, files: &[NewFile]) {
    for f in files {
        if let Err(e) = blobs.remove(chat_id, &f.id).await {
            tracing::warn!(file_id = %f.id, error = %e, "could not remove a discarded file");
        }
    }
}

/// An operator's file parley did not copy.
#[derive(Debug)]
pub struct Skipped {
    pub name: String,
    pub size: i64,
}

/// Copies an operator's files from Mattermost, so the transcript keeps them after the channel
/// is deleted. Files over the size limit are skipped (and reported), not half-copied; a file
/// Mattermost no longer has (or refuses) is skipped with a warning. Only errors worth a retry
/// fail the whole post.
#[tracing::instrument(skip_all, fields(files = file_ids.len()))]
pub async fn copy_from_mattermost(
    state: &App,
    bridge: &Bridge,
    file_ids: &[String],
) -> Result<(Vec<Upload>, Vec<Skipped>), MmError> {
    let mut uploads = Vec::new();
    let mut skipped = Vec::new();
    for id in file_ids {
        match copy_one(state, bridge, id).await {
            Ok(Copied::Done(upload)) => uploads.push(*upload),
            Ok(Copied::TooLarge(s)) => skipped.push(s),
            Ok(Copied::Gone) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!(mattermost_file_id = %id, error = %e, "could not copy an operator's file; skipped");
            }
        }
    }
    Ok((uploads, skipped))
}

enum Copied {
    Done(Box<Upload>),
    TooLarge(Skipped),
    Gone,
}

async fn copy_one(state: &App, bridge: &Bridge, id: &str) -> Result<Copied, MmError> {
    let max = state.settings.files.max_bytes;
    let info = bridge.file_info(id).await?;
    let too_large = || {
        Copied::TooLarge(Skipped {
            name: display_name(&info.name),
            size: info.size,
        })
    };
    if info.delete_at > 0 {
        return Ok(Copied::Gone);
    }
    if info.size as u64 > max {
        return Ok(too_large());
    }
    let response = bridge.download_file(id).await?;
    match receive(&state.blobs, response.bytes_stream(), max).await {
        Ok(blob) => Ok(Copied::Done(Box::new(describe(
            blob,
            &info.name,
            Some(info.id.clone()),
        )))),
        Err(ReceiveError::TooLarge(_)) => Ok(too_large()),
        Err(ReceiveError::Source(e)) => Err(MmError::Unreachable(e)),
        // A full disk is worth retrying once space is freed.
        Err(ReceiveError::Disk(e)) => {
            Err(MmError::Unreachable(format!("could not store a file: {e}")))
        }
    }
}

/// A size for people: `512 B`, `1.2 MB`.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

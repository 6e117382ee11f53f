//! The file endpoints of the Mattermost client: upload a visitor's file into a chat channel,
//! and read an operator's file (its FileInfo, then its bytes as a stream).

use std::time::Duration;

use reqwest::{Method, multipart};
use tokio_util::io::ReaderStream;

use super::{
    Client, MmError,
    client::seg,
    wire::{FileInfo, UploadedFiles},
};

/// Files take longer than other calls; a 10 MiB file on a slow link needs time.
const FILE_TIMEOUT: Duration = Duration::from_secs(120);

impl Client {
    /// `POST /files`: uploads one file into a channel, streamed from disk. `channel_id` is
    /// sent before the file so the server can stream it too.
    pub async fn upload_file(
        &self,
        channel_id: &str,
        name: &str,
        file: tokio::fs::File,
        size: u64,
    ) -> Result<FileInfo, MmError> {
        let body = reqwest::Body::wrap_stream(ReaderStream::new(file));
        let part = multipart::Part::stream_with_length(body, size).file_name(name.to_owned());
        let form = multipart::Form::new()
            .text("channel_id", channel_id.to_owned())
            .part("files", part);
        let request = self
            .request(Method::POST, "/files")
            .timeout(FILE_TIMEOUT)
            .multipart(form);
        let uploaded: UploadedFiles = self.send(request).await?;
        uploaded
            .file_infos
            .into_iter()
            .next()
            .ok_or_else(|| MmError::Protocol("the upload answer lists no file".into()))
    }

    /// `GET /files/{id}/info`.
    pub async fn file_info(&self, id: &str) -> Result<FileInfo, MmError> {
        self.send(self.request(Method::GET, &format!("/files/{}/info", seg(id))))
            .await
    }

    /// `GET /files/{id}`: the bytes, as a response to stream from.
    pub async fn download_file(&self, id: &str) -> Result<reqwest::Response, MmError> {
        let request = self
            .request(Method::GET, &format!("/files/{}", seg(id)))
            .timeout(FILE_TIMEOUT);
        // Timed until the answer starts; the caller streams the bytes.
        let (response, timing) = self.execute(request).await;
        let result = match response {
            Ok(response) => Self::success(response).await,
            Err(e) => Err(e),
        };
        self.record(timing, result.as_ref().err());
        result
    }
}

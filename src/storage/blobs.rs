//! The bytes of attached files on disk, under `PARLEY_DATA_DIR/files`: uploads are written to
//! `tmp/` first and moved to `<chat id>/<file id>` only once the database has them, so a
//! failed or refused upload leaves nothing behind.

use std::{
    io,
    path::{Path, PathBuf},
};

use tokio::{fs, io::AsyncWriteExt};

/// Where file bytes live. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    /// Creates the directories and removes temporary files an earlier run left behind.
    pub async fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("files");
        let tmp = root.join("tmp");
        if fs::try_exists(&tmp).await? {
            fs::remove_dir_all(&tmp).await?;
        }
        fs::create_dir_all(&tmp).await?;
        Ok(Self { root })
    }

    /// A new temporary file; it is deleted when dropped unless [`Blobs::keep`] moved it.
    pub async fn temp(&self) -> io::Result<TempBlob> {
        let path = self
            .root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let file = fs::File::create_new(&path).await?;
        Ok(TempBlob {
            path,
            file: Some(file),
            len: 0,
            head: Vec::new(),
        })
    }

    /// Moves a finished temporary file to its place.
    pub async fn keep(&self, mut temp: TempBlob, chat_id: &str, file_id: &str) -> io::Result<()> {
        let target = self.path(chat_id, file_id)?;
        if let Some(mut file) = temp.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        fs::create_dir_all(target.parent().expect("a file path has a parent")).await?;
        fs::rename(&temp.path, &target).await?;
        temp.path = PathBuf::new();
        Ok(())
    }

    /// Opens a stored file for reading.
    pub async fn read(&self, chat_id: &str, file_id: &str) -> io::Result<fs::File> {
        fs::File::open(self.path(chat_id, file_id)?).await
    }

    /// Removes a stored file (missing is fine).
    pub async fn remove(&self, chat_id: &str, file_id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(chat_id, file_id)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every file of a chat (missing is fine).
    pub async fn remove_chat(&self, chat_id: &str) -> io::Result<()> {
        check_id(chat_id)?;
        match fs::remove_dir_all(self.root.join(chat_id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The stored path. Ids are parley's own UUIDs; anything else is refused so that no value
    /// can ever point outside the directory.
    fn path(&self, chat_id: &str, file_id: &str) -> io::Result<PathBuf> {
        check_id(chat_id)?;
        check_id(file_id)?;
        Ok(self.root.join(chat_id).join(file_id))
    }
}

fn check_id(id: &str) -> io::Result<()> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file id"))
    }
}

/// A file being written; deleted on drop unless kept.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    file: Option<fs::File>,
    len: u64,
    head: Vec<u8>,
}

impl TempBlob {
    /// Appends a chunk, remembering the first bytes for type detection.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let room = crate::domain::files::SNIFF_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.len += chunk.len() as u64;
        match &mut self.file {
            Some(f) => f.write_all(chunk).await,
            None => Err(io::Error::other("temporary file already closed")),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first bytes (up to `SNIFF_BYTES`).
    pub fn head(&self) -> &[u8] {
        &self.head
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Best effort; leftovers are removed at the next start.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

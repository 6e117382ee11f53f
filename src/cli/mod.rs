//! What the commands besides `serve` and `migrate` share: they use the database the server
//! uses and never create one (a command run in the wrong directory would otherwise leave a
//! new, empty database there and report on it as if it were the server's).

pub mod departments;

use crate::{config::Settings, storage::Store};

/// Why a command found no database.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoDatabase(pub String);

/// Opens the server's database, or says which one was looked for and how to point the
/// command at the right one.
pub async fn open_existing_store(settings: &Settings) -> anyhow::Result<Store> {
    match Store::open_existing(&settings.database).await {
        Ok(Some(store)) => Ok(store),
        Ok(None) => Err(NoDatabase(missing_database(settings)).into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "could not open the database {}",
            settings.database.describe()
        ))),
    }
}

fn missing_database(settings: &Settings) -> String {
    let data_dir =
        std::path::absolute(&settings.data_dir).unwrap_or_else(|_| settings.data_dir.clone());
    format!(
        "no parley database at {} (data directory {}, from PARLEY_DATA_DIR or its default \
         ./data in the current directory); this command does not create one. Run it where the \
         server runs, with the same settings: PARLEY_DATA_DIR=/path/to/parley/data, \
         PARLEY_DATABASE_URL=…, or PARLEY_CONFIG=/path/to/parley.toml (the file the server \
         reads). On a new installation, `parley migrate` creates the database.",
        settings.database.describe(),
        data_dir.display(),
    )
}

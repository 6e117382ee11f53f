//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the migration folders at
//! compile time, and cargo does not watch directories for new files by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

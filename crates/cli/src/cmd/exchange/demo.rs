//! The exchange's part of `shmex demo`.

/// The exchange's part of `shmex demo`.
pub fn demo() -> anyhow::Result<()> {
    Ok(())
}

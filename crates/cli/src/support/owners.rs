//! `--allow-owner USER`: the users whose existing segments a command may
//! attach to besides the caller's own (design rule 8). Whoever owns a
//! segment can change any byte of it at any moment, so attaching to
//! another user's segment trusts that user; shmex refuses it unless told.

use crate::support::error::BadInput;

/// The flag, for every command that attaches to existing segments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AllowOwner {
    /// Also attach to existing segments owned by USER (a name or a uid;
    /// repeat it, or separate several with commas). By default only your
    /// own segments are attached to: whoever owns a segment can change any
    /// byte of it.
    #[arg(
        long = "allow-owner",
        value_name = "USER",
        env = "SHMEX_ALLOW_OWNER",
        value_delimiter = ',',
        global = true
    )]
    pub users: Vec<String>,
}

impl AllowOwner {
    /// Allows the named owners for the rest of this process.
    ///
    /// # Errors
    ///
    /// [`BadInput`] for a user that does not exist.
    pub fn apply(&self) -> Result<(), BadInput> {
        for user in self
            .users
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
        {
            let uid = shm::user_id(user).ok_or_else(|| {
                BadInput(format!(
                    "--allow-owner: no user {user:?} on this machine: give a user name or a uid"
                ))
            })?;
            shm::allow_owner(uid);
        }
        Ok(())
    }
}

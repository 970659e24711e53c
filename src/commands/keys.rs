//! `fedstake keys ...`: Ethereum identities in encrypted JSON keystores
//! (scrypt + AES-128-CTR, the format geth, foundry and wallets read).

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};

use super::chain::{KeyArgs, password};

/// Creates a new random key in `dir` (as `name`, or its UUID) and prints
/// its address.
pub fn new(dir: &Path, name: Option<&str>, password_file: Option<&Path>) -> anyhow::Result<()> {
    if let Some(name) = name {
        let target = dir.join(name);
        if target.exists() {
            bail!("{} already exists; choose another --name", target.display());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let password = password(password_file, true)?;
    let (signer, id) =
        PrivateKeySigner::new_keystore(dir, &mut rand08::thread_rng(), password, name)
            .with_context(|| format!("cannot write a keystore in {}", dir.display()))?;
    let path: PathBuf = dir.join(name.unwrap_or(&id));
    println!("address  {}", signer.address());
    println!("keystore {}", path.display());
    Ok(())
}

/// Prints the address of a keystore (after checking the password).
pub fn show(key: &KeyArgs) -> anyhow::Result<()> {
    println!("{}", key.signer()?.address());
    Ok(())
}

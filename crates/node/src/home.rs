//! The home folder: the device key, the index file and the lock that makes one
//! process its owner.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;

use crate::NodeError;

const KEY_FILE: &str = "identity.key";
const LOCK_FILE: &str = "lock";
/// The index file's name inside the home.
pub(crate) const INDEX_FILE: &str = "index.sqlite";
/// Where files uploaded from a browser for a quick share are kept (they are
/// served from there while their links live).
pub(crate) const DROP_DIR: &str = "Shared files";

/// An opened home folder.
pub struct Home {
    dir: PathBuf,
    keypair: Keypair,
    lock: Option<File>,
}

impl Home {
    /// The default home: the platform's data folder for Peerbox.
    pub fn default_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "Peerbox").map(|d| d.data_dir().to_owned())
    }

    /// Opens `dir` (creating it and the device key on first use) without taking
    /// ownership: enough to know who we are.
    pub fn open(dir: &Path) -> Result<Self, NodeError> {
        create_private_dir(dir)?;
        let keypair = load_or_create_key(&dir.join(KEY_FILE))?;
        Ok(Self { dir: dir.to_owned(), keypair, lock: None })
    }

    /// Takes ownership of the home for this process. Fails when another process
    /// holds it.
    pub fn lock(&mut self) -> Result<(), NodeError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NodeError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                self.lock = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::HomeBusy(self.dir.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(NodeError::io(&path, e)),
        }
    }

    /// Whether this process owns the home.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The device key.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The device id.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.keypair.public().to_peer_id()
    }
}

fn create_private_dir(dir: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| NodeError::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn load_or_create_key(path: &Path) -> Result<Keypair, NodeError> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(|e| NodeError::io(path, e))?;
            Keypair::from_protobuf_encoding(&bytes).map_err(|_| NodeError::BadKey(path.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|_| NodeError::BadKey(path.to_owned()))?;
            // Write to a temp name with 0600 from the start, then rename: a crash
            // never leaves a half-written or world-readable key.
            let tmp = path.with_extension("tmp");
            let mut opts = OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(|e| NodeError::io(&tmp, e))?;
            f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(|e| NodeError::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| NodeError::io(path, e))?;
            Ok(key)
        }
        Err(e) => Err(NodeError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_private_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let a = Home::open(d.path()).unwrap().peer_id();
        let b = Home::open(d.path()).unwrap().peer_id();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_second_owner_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut a = Home::open(d.path()).unwrap();
        a.lock().unwrap();
        let mut b = Home::open(d.path()).unwrap();
        assert!(matches!(b.lock(), Err(NodeError::HomeBusy(_))));
        drop(a);
        b.lock().unwrap();
    }

    #[test]
    fn a_corrupt_key_is_an_error_not_a_new_identity() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(KEY_FILE), b"junk").unwrap();
        assert!(matches!(Home::open(d.path()), Err(NodeError::BadKey(_))));
        assert_eq!(std::fs::read(d.path().join(KEY_FILE)).unwrap(), b"junk");
    }
}

//! A step's local scratch folder, removed however the step ends.
//!
//! Lambda keeps `/tmp` between invocations of a warm sandbox, so a folder left behind by a failed
//! step would fill it for every later one. The folder's path is fixed per step and source (not
//! random) so that a retry first clears what an attempt killed mid-way (a timeout skips every
//! destructor) left there.

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// An empty folder at `path`: whatever was there is removed first.
    pub async fn new(path: PathBuf) -> std::io::Result<Scratch> {
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tokio::fs::create_dir_all(&path).await?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Unlinking is quick even for large renders; nothing here blocks on their contents.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_folder_is_emptied_first_and_removed_on_every_exit() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("step");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("stale.mp4"), b"left by a killed attempt").unwrap();

        let failing = async {
            let s = Scratch::new(path.clone()).await?;
            assert_eq!(
                std::fs::read_dir(s.path())?.count(),
                0,
                "stale files cleared"
            );
            std::fs::write(s.join("part.mp4"), b"half a render")?;
            Err::<(), std::io::Error>(std::io::Error::other("the step failed"))
        };
        assert!(failing.await.is_err());
        assert!(!path.exists(), "a failed step leaves no scratch folder");
    }
}

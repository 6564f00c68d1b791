//! Where served files come from: a key resolved beneath a root directory,
//! refusing every way out of it.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// A key could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The key is no relative path beneath the root (`..`, an absolute
    /// path, a NUL byte, an empty or `.` component, a backslash), or it
    /// leads out of the root through a symbolic link (answer 400).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// No regular file under that key (answer 404).
    #[error("no such file")]
    NotFound,
    /// The file system failed.
    #[error(transparent)]
    Io(io::Error),
}

/// A file opened for serving, with what its response headers need.
#[derive(Debug)]
pub struct OpenedFile {
    /// Opened read-only (never `O_DIRECT`: sendfile reads the page cache).
    pub file: File,
    /// Its length when it was opened.
    pub len: u64,
    /// Its last modification, where the file system keeps one.
    pub modified: Option<SystemTime>,
}

/// Resolves keys (`dir/name.bin`) to regular files beneath a root
/// directory. On Linux the open itself refuses to leave the root
/// (`openat2` with `RESOLVE_BENEATH`: no `..` above it, no absolute
/// symbolic link, no `/proc` magic link), so a link swapped in while a
/// request is served cannot lead out; elsewhere the resolved path is
/// checked against the root before it is opened.
#[derive(Debug)]
pub struct DirResolver {
    root: PathBuf,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    dir: File,
}

impl DirResolver {
    /// A resolver of files beneath `root` (which must be a directory).
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            dir: File::open(&root)?,
            root,
        })
    }

    /// The root directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the regular file under `key`.
    pub fn open(&self, key: &str) -> Result<OpenedFile, ResolveError> {
        check_key(key)?;
        let file = self.open_beneath(key)?;
        let meta = file.metadata().map_err(ResolveError::Io)?;
        if !meta.is_file() {
            return Err(ResolveError::NotFound);
        }
        Ok(OpenedFile {
            len: meta.len(),
            modified: meta.modified().ok(),
            file,
        })
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn open_beneath(&self, key: &str) -> Result<File, ResolveError> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match openat2(&self.dir, key, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::XDEV | Errno::LOOP) => {
                Err(ResolveError::InvalidKey("it leads out of the root"))
            }
            Err(Errno::NOENT | Errno::NOTDIR) => Err(ResolveError::NotFound),
            // A kernel before 5.6: check the resolved path instead.
            Err(Errno::NOSYS) => self.open_checked(key),
            Err(e) => Err(ResolveError::Io(e.into())),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn open_beneath(&self, key: &str) -> Result<File, ResolveError> {
        self.open_checked(key)
    }

    /// Resolves every link of the path, checks it is still beneath the
    /// root, and opens what it resolved to.
    fn open_checked(&self, key: &str) -> Result<File, ResolveError> {
        let resolved = match self.root.join(key).canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ResolveError::NotFound),
            Err(e) => return Err(ResolveError::Io(e)),
        };
        if !resolved.starts_with(&self.root) {
            return Err(ResolveError::InvalidKey("it leads out of the root"));
        }
        File::open(&resolved).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ResolveError::NotFound,
            _ => ResolveError::Io(e),
        })
    }
}

/// Refuses keys that are no plain relative path.
fn check_key(key: &str) -> Result<(), ResolveError> {
    if key.is_empty() {
        return Err(ResolveError::InvalidKey("empty"));
    }
    if key.contains('\0') {
        return Err(ResolveError::InvalidKey("a NUL byte"));
    }
    if key.contains('\\') {
        return Err(ResolveError::InvalidKey("a backslash"));
    }
    if key.starts_with('/')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(ResolveError::InvalidKey("not a plain relative path"));
    }
    let plain = Path::new(key)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(ResolveError::InvalidKey("not a plain relative path"));
    }
    Ok(())
}

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
        // Opened non-blocking (for FIFOs); a regular file reads as usual.
        #[cfg(unix)]
        {
            use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
            let flags = fcntl_getfl(&file).map_err(|e| ResolveError::Io(e.into()))?;
            fcntl_setfl(&file, flags - OFlags::NONBLOCK).map_err(|e| ResolveError::Io(e.into()))?;
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
        // Non-blocking: opening a FIFO must not wait for a writer (it is
        // refused as no regular file right after).
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match openat2(&self.dir, key, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(File::from(fd)),
                // A rename raced `..` inside the root: the kernel asks for a
                // retry.
                Err(Errno::AGAIN) if attempts < 3 => {}
                // A kernel before 5.6, or a sandbox that forbids openat2:
                // check the resolved path instead.
                Err(Errno::NOSYS | Errno::PERM) => return self.open_checked(key),
                Err(e) => return Err(map_open_error(e.into())),
            }
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn open_beneath(&self, key: &str) -> Result<File, ResolveError> {
        self.open_checked(key)
    }

    /// Resolves every link of the path, checks it is still beneath the
    /// root, and opens what it resolved to.
    /// (A link swapped in between the check and the open can still lead
    /// out; the final component is never followed.)
    fn open_checked(&self, key: &str) -> Result<File, ResolveError> {
        let resolved = self.root.join(key).canonicalize().map_err(map_open_error)?;
        if !resolved.starts_with(&self.root) {
            return Err(ResolveError::InvalidKey("it leads out of the root"));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
            options.custom_flags(flags.bits() as i32);
        }
        options.open(&resolved).map_err(map_open_error)
    }
}

/// What a failed open means for the request.
fn map_open_error(e: io::Error) -> ResolveError {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let code = e.raw_os_error();
        let is = |errno: Errno| code == Some(errno.raw_os_error());
        if is(Errno::XDEV) || is(Errno::LOOP) {
            return ResolveError::InvalidKey("it leads out of the root");
        }
        if is(Errno::NAMETOOLONG) {
            return ResolveError::InvalidKey("too long");
        }
        // Missing, a file used as a directory, no permission, a device
        // without a driver: nothing to serve under that key.
        if is(Errno::NOENT) || is(Errno::NOTDIR) || is(Errno::ACCESS) || is(Errno::NXIO) {
            return ResolveError::NotFound;
        }
    }
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => ResolveError::NotFound,
        _ => ResolveError::Io(e),
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

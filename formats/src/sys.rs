//! Every system call the workspace makes through `libc`, as safe functions: this is the only module with
//! `unsafe` code (each block allowed one by one, with the reason it is sound). Callers say what they want
//! (start writing back a range, send part of a file to a socket, map a file); how the kernel is asked stays
//! here. Calls that only some kernels or filesystems have report that plainly (see [`DontCacheWrite`]) so
//! callers can fall back.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading without following a symlink in its last component (`O_NOFOLLOW`: one there is
/// refused, see [`is_symlink_refusal`]), without blocking on a fifo (`O_NONBLOCK`) and without making a
/// terminal the controlling one (`O_NOCTTY`).
pub fn open_read_no_follow(path: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// True when an open failed because the last component of the path is a symlink and
/// [`open_read_no_follow`] refused to follow it (`ELOOP`).
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Asks the C allocator (glibc) to keep up to `bytes` of freed memory per arena and to map directly only
/// allocations larger than that (`M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD`). Call before other threads start.
/// A no-op with another allocator; a setting glibc refuses leaves its default, which is only slower.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory(bytes: i32) {
    // SAFETY: mallopt takes plain integers and only changes glibc's tunables; the caller calls it before
    // other threads allocate, as glibc recommends.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        libc::mallopt(libc::M_TRIM_THRESHOLD, bytes);
    }
}

/// Nothing to tune with this allocator.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory(_bytes: i32) {}

/// The most one [`send_file`] call sends (the kernel's own limit is just under 2 GiB).
pub const SEND_FILE_MAX: usize = 1 << 30;

/// Sends up to `len` bytes (at most [`SEND_FILE_MAX`]) of the file `file` from `offset` to the socket
/// `socket` with `sendfile(2)`, straight from the page cache; returns the bytes sent (0 at the end of the
/// file). A non-blocking socket that cannot take more fails with [`io::ErrorKind::WouldBlock`]. Both
/// descriptors must be open for the call (a closed one fails with `EBADF`; the caller owns them).
pub fn send_file(socket: RawFd, file: RawFd, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    send_file_raw(socket, file, &mut off, len.min(SEND_FILE_MAX))
}

#[allow(unsafe_code)]
fn send_file_raw(
    socket: RawFd,
    file: RawFd,
    off: &mut libc::off_t,
    len: usize,
) -> io::Result<usize> {
    // SAFETY: sendfile reads no memory of this process but `off`, a valid local the kernel may update; the
    // descriptors are plain integers (a wrong one is an error, not undefined behaviour).
    let sent = unsafe { libc::sendfile(socket, file, off, len) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// Reads this process's limit of open files (`RLIMIT_NOFILE`) as (soft, hard), after setting the soft limit
/// to `soft` when given (which may not exceed the hard one). `u64::MAX` stands for unlimited.
#[allow(unsafe_code)]
pub fn open_file_limits(soft: Option<u64>) -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit and a valid one for setrlimit; neither call
    // keeps the pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(soft) = soft {
            limit.rlim_cur = soft;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, without waiting (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Best effort: it only makes a later fsync shorter, so a failure
/// is ignored, and elsewhere it does nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range takes no pointers; the descriptor stays open while `file` is borrowed.
    let _ignored = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Elsewhere the fsync at commit does all the writing.
#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// What [`write_at_dont_cache`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DontCacheWrite {
    /// This many bytes were written, from the start of the slices (possibly fewer than all of them).
    Written(usize),
    /// The kernel or filesystem has no `RWF_DONTCACHE` (Linux before 6.14, or a filesystem without it):
    /// nothing was written; write through the page cache instead.
    Unsupported,
}

/// Writes `bufs` in order at `offset` of `file` with one `pwritev2`, asking the kernel to drop the pages from
/// its cache once they are on disk (`RWF_DONTCACHE`). Interrupted calls are retried.
#[cfg(target_os = "linux")]
pub fn write_at_dont_cache(
    file: &File,
    bufs: &[IoSlice<'_>],
    offset: u64,
) -> io::Result<DontCacheWrite> {
    let at = libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset past i64"))?;
    let count = libc::c_int::try_from(bufs.len()).unwrap_or(libc::c_int::MAX);
    loop {
        match pwritev2_dont_cache(file, bufs, count, at) {
            Ok(n) => return Ok(DontCacheWrite::Written(n)),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                    return Ok(DontCacheWrite::Unsupported);
                }
                _ => return Err(e),
            },
        }
    }
}

/// Elsewhere there is no such flag.
#[cfg(not(target_os = "linux"))]
pub fn write_at_dont_cache(
    _file: &File,
    _bufs: &[IoSlice<'_>],
    _offset: u64,
) -> io::Result<DontCacheWrite> {
    Ok(DontCacheWrite::Unsupported)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn pwritev2_dont_cache(
    file: &File,
    bufs: &[IoSlice<'_>],
    count: libc::c_int,
    at: libc::off_t,
) -> io::Result<usize> {
    // SAFETY: `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix; the `count` (at most
    // `bufs.len()`) slices are borrowed, alive and unchanged for the call, and the kernel only reads them.
    // The descriptor stays open while `file` is borrowed.
    let n = unsafe {
        libc::pwritev2(
            file.as_raw_fd(),
            bufs.as_ptr().cast::<libc::iovec>(),
            count,
            at,
            libc::RWF_DONTCACHE,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A shared read-only mapping of the start of a file (`mmap(PROT_READ, MAP_SHARED)`), unmapped when dropped.
///
/// Reading it works like reading memory, but a disk error, or the file shrinking behind the mapping, is a
/// `SIGBUS` instead of an error: map only files nobody changes in place (content-addressed blobs), and hand
/// the bytes to readers that tolerate that (the kernel, through [`send_file`], reads the file, not the map).
#[derive(Debug)]
pub struct ReadOnlyMap {
    /// The mapping's address (a plain number, so the map can move between threads).
    addr: usize,
    len: usize,
}

impl ReadOnlyMap {
    /// Maps the first `len` bytes of `file` (`len` > 0). The mapping stays valid after `file` is closed.
    #[allow(unsafe_code)]
    pub fn new(file: &File, len: usize) -> io::Result<ReadOnlyMap> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty file cannot be mapped; read it instead",
            ));
        }
        // SAFETY: a fresh read-only shared mapping of an open file at an address the kernel chooses; the
        // result is checked before use, and unmapped once, in `drop`.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ReadOnlyMap {
            addr: addr as usize,
            len,
        })
    }

    /// The address of the first mapped byte.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// How many bytes are mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty mapping cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for ReadOnlyMap {
    #[allow(unsafe_code)]
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `addr..addr+len` is mapped readable for as long as `self` lives (see the type's docs about
        // files changed behind the mapping).
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl Drop for ReadOnlyMap {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; nothing borrows it any more (borrows of `self`
        // have ended).
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn a_mapping_reads_the_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"mapped bytes").unwrap();
        let map = ReadOnlyMap::new(f.as_file(), 12).unwrap();
        assert_eq!(map.as_ref(), b"mapped bytes");
        assert_eq!((map.len(), map.addr() != 0), (12, true));
        let empty = tempfile::NamedTempFile::new().unwrap();
        assert!(ReadOnlyMap::new(empty.as_file(), 0).is_err());
    }

    #[test]
    fn send_file_copies_a_range_to_a_socket() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"0123456789").unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sent = send_file(b.as_raw_fd(), f.as_file().as_raw_fd(), 3, 4).unwrap();
        assert_eq!(sent, 4);
        drop(b);
        let mut got = String::new();
        a.read_to_string(&mut got).unwrap();
        assert_eq!(got, "3456");
        let err = send_file(-1, f.as_file().as_raw_fd(), 0, 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn writes_without_cache_land_or_say_they_cannot() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let bufs = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
        let mut text = String::new();
        match write_at_dont_cache(f.as_file(), &bufs, 2).unwrap() {
            DontCacheWrite::Written(n) => {
                assert_eq!(n, 4);
                File::open(f.path())
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                assert_eq!(text, "\0\0abcd");
            }
            DontCacheWrite::Unsupported => {
                assert_eq!(std::fs::metadata(f.path()).unwrap().len(), 0);
            }
        }
        start_writeback(f.as_file(), 0, 6);
    }

    #[test]
    fn open_file_limits_are_read_and_the_soft_one_set() {
        let (soft, hard) = open_file_limits(None).unwrap();
        assert!(soft <= hard);
        assert_eq!(open_file_limits(Some(soft)).unwrap(), (soft, hard));
    }

    #[test]
    fn a_symlink_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        std::os::unix::fs::symlink("file", dir.path().join("link")).unwrap();
        assert!(open_read_no_follow(&dir.path().join("file")).is_ok());
        let err = open_read_no_follow(&dir.path().join("link")).unwrap_err();
        assert!(is_symlink_refusal(&err), "{err}");
    }
}

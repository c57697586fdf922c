//! Plain-TCP connections that send blob bodies with `sendfile(2)`.
//!
//! The filesystem store hands out large blobs as views of a file mapping (`storage::mapped`, through
//! `Storage::send_blob`, which the server uses when it does not serve TLS). hyper queues body
//! frames as they are and writes them with vectored writes; [`SendfileStream`] recognises a slice lying in a
//! mapping and has the kernel send that part of the file straight from the page cache, so a blob is neither read
//! into nor copied out of this process. Every other slice (status line, headers, small bodies) is written as
//! usual. Measured in the R2 and M1 benchmark rows (docs/registry-maintenance.md).

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::storage::mapped;

/// Bytes this process has sent with `sendfile`, over all connections.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes this process has sent with `sendfile` so far, over all connections (for tests and diagnostics).
pub fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// A TCP connection whose writes of mapped blob bytes become `sendfile` calls.
pub struct SendfileStream {
    inner: TcpStream,
}

impl SendfileStream {
    /// Wraps an accepted connection.
    pub fn new(inner: TcpStream) -> Self {
        SendfileStream { inner }
    }

    /// Sends up to `len` bytes of file `fd` from `offset`, once the socket can take them.
    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        fd: RawFd,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let socket = self.inner.as_raw_fd();
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_io(Interest::WRITABLE, || {
                formats::sys::send_file(socket, fd, offset, len)
            }) {
                Ok(0) if len > 0 => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a blob file ended before its mapped length (changed while being served)",
                    )));
                }
                Ok(n) => {
                    SENT.fetch_add(n as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match mapped::lookup(buf) {
            Some((fd, offset)) => self.poll_send_file(cx, fd, offset, buf.len()),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    /// Writes the leading run of ordinary slices with one vectored write, or sends the first slice with
    /// `sendfile` when it is mapped; the caller comes back for the rest.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        let bufs = &bufs[first..];
        if let Some((fd, offset)) = mapped::lookup(&bufs[0]) {
            return self.poll_send_file(cx, fd, offset, bufs[0].len());
        }
        let plain = bufs[1..]
            .iter()
            .position(|b| mapped::lookup(b).is_some())
            .map_or(bufs.len(), |i| i + 1);
        Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..plain])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

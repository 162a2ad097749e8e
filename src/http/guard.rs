//! Connections of the public listener that stop moving are closed, so a client cannot
//! hold memory or a connection by going quiet:
//!
//! - **write stall** (`http.write_stall_timeout_ms`): the client accepts no bytes of a
//!   response for that long (it stopped reading; its answer would sit in our buffers);
//! - **idle** (`http.idle_timeout_ms`): no bytes move in either direction for that long
//!   (an idle keep-alive connection, or a client that stopped sending half way through
//!   its headers or body). An SSE stream is not idle: its keep-alive comments are
//!   written every 15 s.
//!
//! Neither the server nor hyper (as axum serves it) has such timeouts, so they are
//! kept here, in the connection's I/O: a read or write that cannot make progress
//! polls a timer, and an expired timer turns into an I/O error that ends the
//! connection (and drops whatever the request held).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// A listener whose connections are [`Guarded`].
pub struct GuardedListener {
    inner: TcpListener,
    write_stall: Duration,
    idle: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, write_stall: Duration, idle: Duration) -> GuardedListener {
        GuardedListener {
            inner,
            write_stall,
            idle,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (Guarded::new(stream, self.write_stall, self.idle), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails once it has not moved for too long.
pub struct Guarded {
    inner: TcpStream,
    write_stall: Duration,
    idle: Duration,
    /// Bytes last moved in either direction.
    last_progress: Instant,
    /// A write has been waiting for the client since then.
    write_blocked_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(inner: TcpStream, write_stall: Duration, idle: Duration) -> Guarded {
        let now = Instant::now();
        Guarded {
            inner,
            write_stall,
            idle,
            last_progress: now,
            write_blocked_since: None,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    fn deadline(&self) -> Instant {
        let idle = self.last_progress + self.idle;
        match self.write_blocked_since {
            Some(since) => idle.min(since + self.write_stall),
            None => idle,
        }
    }

    /// Called when the inner stream is not ready: an error once the deadline passed,
    /// otherwise `Pending` with the timer armed to wake the connection at the deadline.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.deadline();
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        ready!(self.timer.as_mut().poll(cx));
        let reason = if self
            .write_blocked_since
            .is_some_and(|since| since + self.write_stall <= deadline)
        {
            "the client stopped reading the response"
        } else {
            "the connection was idle"
        };
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, reason))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_progress = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.wait(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.written();
                Poll::Ready(result)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.written();
                Poll::Ready(result)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Guarded {
    fn written(&mut self) {
        self.last_progress = Instant::now();
        self.write_blocked_since = None;
    }

    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.write_blocked_since.get_or_insert_with(Instant::now);
        self.wait(cx).map(Err)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair(write_stall: Duration, idle: Duration) -> (Guarded, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Guarded::new(server, write_stall, idle), client)
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_after_the_write_stall() {
        let (mut server, _client) = pair(Duration::from_millis(200), Duration::from_secs(60)).await;
        let started = std::time::Instant::now();
        let chunk = vec![0u8; 64 * 1024];
        // The client never reads: the socket buffers fill, then writes stall.
        let err = loop {
            if let Err(err) = server.write_all(&chunk).await {
                break err;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never cut off");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("stopped reading"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_traffic_keeps_it_open() {
        let (mut server, mut client) =
            pair(Duration::from_secs(10), Duration::from_millis(300)).await;
        let mut byte = [0u8; 1];
        for _ in 0..4 {
            // Traffic every 150 ms keeps it alive past the 300 ms idle limit.
            tokio::time::sleep(Duration::from_millis(150)).await;
            client.write_all(b"x").await.unwrap();
            server.read_exact(&mut byte).await.unwrap();
        }
        let started = std::time::Instant::now();
        let err = server.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("idle"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}

//! The HTTP/1.1 server shared by the agent's control API and the metrics
//! endpoint of the flat run mode: hyper on a current-thread tokio runtime in
//! a thread of its own, on TCP or a unix socket. Handlers that wait (on an
//! I/O thread, on nft) run on tokio's blocking pool, never on the server's
//! thread.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::datapath::sys;

/// Where a server listens.
#[derive(Debug)]
pub enum Listener {
    /// A TCP address.
    Tcp(std::net::TcpListener),
    /// A unix socket at this path (removed when the server stops).
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl Listener {
    /// Binds a TCP address.
    ///
    /// # Errors
    /// The address cannot be bound (one line naming it).
    pub fn tcp(addr: SocketAddr) -> Result<Self, String> {
        std::net::TcpListener::bind(addr)
            .map(Listener::Tcp)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    }

    /// Binds a unix socket at `path`, mode 0600, replacing a stale socket
    /// file there (but never another kind of file).
    ///
    /// # Errors
    /// The path holds something else or cannot be bound.
    pub fn unix(path: &Path) -> Result<Self, String> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "cannot listen on unix:{}: a file that is not a socket is there",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot replace the stale socket {}: {e}", path.display()))?;
        }
        // Created 0600 from the start: no window in which others may connect.
        sys::with_umask(0o177, || std::os::unix::net::UnixListener::bind(path))
            .map(|l| Listener::Unix(l, path.to_path_buf()))
            .map_err(|e| format!("cannot listen on unix:{}: {e}", path.display()))
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => write!(f, "{a}"),
                Err(_) => write!(f, "tcp"),
            },
            Listener::Unix(_, p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A response body: whole chunks first, then (for a stream) whatever a
/// channel brings until its sender goes.
#[derive(Debug)]
pub struct Reply {
    chunks: VecDeque<Bytes>,
    stream: Option<mpsc::Receiver<Bytes>>,
}

impl Reply {
    /// A whole body.
    pub fn full(body: impl Into<Bytes>) -> Self {
        Reply {
            chunks: VecDeque::from([body.into()]),
            stream: None,
        }
    }

    /// `first`, then the chunks `rx` brings.
    pub fn stream(first: VecDeque<Bytes>, rx: Option<mpsc::Receiver<Bytes>>) -> Self {
        Reply {
            chunks: first,
            stream: rx,
        }
    }
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match &mut self.stream {
            None => Poll::Ready(None),
            Some(rx) => rx.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.stream {
            None => SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum()),
            Some(_) => SizeHint::default(),
        }
    }
}

/// A response with `status`, a content type and a whole body.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Reply> {
    let mut r = Response::new(Reply::full(body));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// What answers requests.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Reply>> + Send>>
        + Send
        + Sync,
>;

/// A running server; [`stop`](Server::stop) (or dropping it) ends it.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    unix_path: Option<PathBuf>,
}

impl Server {
    /// Serves `handler` on `listener` in a thread of its own.
    ///
    /// # Errors
    /// The thread or its runtime cannot be made.
    pub fn start(listener: Listener, handler: Handler) -> io::Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let unix_path = match &listener {
            Listener::Unix(_, p) => Some(p.clone()),
            Listener::Tcp(_) => None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(64)
            .build()?;
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gossip-http".into())
            .spawn(move || rt.block_on(accept_loop(listener, handler, flag)))?;
        Ok(Server {
            stop,
            thread: Some(thread),
            unix_path,
        })
    }

    /// Stops accepting, drops open connections, removes a unix socket file.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = self.unix_path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

async fn accept_loop(listener: Listener, handler: Handler, stop: Arc<AtomicBool>) {
    enum L {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let l = match listener {
        Listener::Tcp(l) => l
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(l))
            .map(L::Tcp),
        Listener::Unix(l, _) => l
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixListener::from_std(l))
            .map(L::Unix),
    };
    let l = match l {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gossip-node: HTTP server: {e}");
            return;
        }
    };
    // The stop flag is polled: the owner sets it from a plain thread.
    while !stop.load(Ordering::Relaxed) {
        let accepted = tokio::time::timeout(Duration::from_millis(50), async {
            match &l {
                L::Tcp(l) => l.accept().await.map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    serve(TokioIo::new(s), handler.clone())
                }),
                L::Unix(l) => l
                    .accept()
                    .await
                    .map(|(s, _)| serve(TokioIo::new(s), handler.clone())),
            }
        })
        .await;
        if let Ok(Err(e)) = accepted {
            // Out of descriptors and the like: wait rather than spin.
            eprintln!("gossip-node: HTTP accept: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn serve<S>(io: TokioIo<S>, handler: Handler)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let h = handler.clone();
        async move { Ok::<_, Infallible>(h(req).await) }
    });
    tokio::spawn(async move {
        let conn = hyper::server::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .header_read_timeout(Duration::from_secs(10))
            .timer(hyper_util::rt::TokioTimer::new())
            .serve_connection(io, service);
        // A client gone mid-request is not the server's error.
        let _ = conn.await;
    });
}

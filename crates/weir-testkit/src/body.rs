//! `ScriptedBody`: a response body sent in chunks, each after an optional delay, that may end in
//! an error (which makes hyper abort the connection mid-body).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// One step of a scripted body.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Send these bytes after the delay.
    Data(Duration, Bytes),
    /// Fail the body (the connection breaks).
    Fail,
}

/// A body made of scripted chunks.
#[derive(Debug)]
pub(crate) struct ScriptedBody {
    chunks: VecDeque<Chunk>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ScriptedBody {
    /// The whole body at once.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::chunks([Chunk::Data(Duration::ZERO, bytes.into())])
    }

    /// A body of scripted chunks.
    pub fn chunks(chunks: impl IntoIterator<Item = Chunk>) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
            sleep: None,
        }
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
                return match this.chunks.pop_front() {
                    Some(Chunk::Data(_, bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                    Some(Chunk::Fail) => Poll::Ready(Some(Err(broken()))),
                    None => Poll::Ready(None),
                };
            }
            match this.chunks.front() {
                None => return Poll::Ready(None),
                Some(Chunk::Fail) => {
                    this.chunks.clear();
                    return Poll::Ready(Some(Err(broken())));
                }
                Some(Chunk::Data(delay, _)) if !delay.is_zero() => {
                    this.sleep = Some(Box::pin(tokio::time::sleep(*delay)));
                }
                Some(Chunk::Data(..)) => {
                    if let Some(Chunk::Data(_, bytes)) = this.chunks.pop_front() {
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.sleep.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Exact only when every chunk is data (a failing body keeps its promised length header).
        let mut len = 0u64;
        for c in &self.chunks {
            match c {
                Chunk::Data(_, b) => len += b.len() as u64,
                Chunk::Fail => return SizeHint::default(),
            }
        }
        SizeHint::with_exact(len)
    }
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "scripted body failure")
}

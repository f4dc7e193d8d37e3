//! Streaming responses (watches) end cleanly when the server shuts down,
//! as kube-apiserver ends its watches: clients see the stream close and
//! watch again (elsewhere, or after the restart) instead of the connection
//! being cut when the grace period runs out. Bodies of a known size are
//! never cut short.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::watch;

type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wraps `resp`'s body when it is a stream of unknown length.
pub fn end_on_shutdown(resp: Response, stop: &watch::Receiver<bool>) -> Response {
    if resp.body().size_hint().exact().is_some() {
        return resp;
    }
    let mut stop = stop.clone();
    let fut: Stop = Box::pin(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    resp.map(|inner| Body::new(UntilStop { inner, stop: fut }))
}

struct UntilStop {
    inner: Body,
    stop: Stop,
}

impl HttpBody for UntilStop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // Data already produced goes out first; the stop only ends a wait.
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {}
            ready => return ready,
        }
        match self.stop.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_ends_at_shutdown_and_sized_bodies_are_untouched() {
        let (tx, rx) = watch::channel(false);
        let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let streaming = Response::new(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(chunks_rx),
        ));
        let mut body = end_on_shutdown(streaming, &rx).into_body();
        chunks_tx
            .send(Ok(Bytes::from_static(b"event\n")))
            .await
            .unwrap();
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert_eq!(
            first.unwrap().unwrap().into_data().unwrap(),
            Bytes::from_static(b"event\n")
        );
        tx.send(true).unwrap();
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none(), "stream still open after shutdown");

        let sized = end_on_shutdown(Response::new(Body::from("whole")), &rx);
        let bytes = axum::body::to_bytes(sized.into_body(), 100).await.unwrap();
        assert_eq!(bytes, Bytes::from_static(b"whole"));
    }
}

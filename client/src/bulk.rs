//! Bulk streams: one QUIC stream per file upload or download beside the control stream.
//! A stream starts with a framed [`BulkRequest`]; the relay answers with framed
//! [`BulkReply`]s, and the file's bytes follow unframed (see docs/protocol.md).

use phoned_proto::codec::{decode, encode_framed};
use phoned_proto::{BulkReply, BulkRequest, DecodeError, FrameDecoder, FrameError};
use thiserror::Error;

use crate::client::{Client, ClientError};

#[derive(Debug, Error)]
pub enum BulkError {
    /// The connection or the stream went away.
    #[error(transparent)]
    Link(#[from] ClientError),
    /// The request cannot be framed (this side's fault, say a name over the frame limit).
    #[error("bulk request: {0}")]
    Encode(FrameError),
    /// The relay's reply does not decode.
    #[error("bulk reply: {0}")]
    Decode(#[from] DecodeError),
}

fn lost(e: impl std::fmt::Display) -> BulkError {
    BulkError::Link(ClientError::Lost(e.to_string()))
}

/// A bulk stream whose request has been sent.
pub struct Bulk {
    /// Where an upload's bytes go (finish it after the last one).
    pub send: quinn::SendStream,
    /// Where a download's bytes come from, after [`Bulk::take_rest`].
    pub recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl Client {
    /// Opens a bulk stream on this connection and sends `request` on it.
    pub async fn open_bulk(&self, request: &BulkRequest) -> Result<Bulk, BulkError> {
        let mut head = Vec::new();
        encode_framed(&mut head, request).map_err(BulkError::Encode)?;
        let (mut send, recv) = self.conn.open_bi().await.map_err(lost)?;
        send.write_all(&head).await.map_err(lost)?;
        Ok(Bulk {
            send,
            recv,
            decoder: FrameDecoder::new(),
        })
    }
}

impl Bulk {
    /// Waits for the relay's next reply on this stream.
    pub async fn reply(&mut self) -> Result<BulkReply, BulkError> {
        let mut buf = vec![0u8; 4096];
        loop {
            if let Some(body) = self.decoder.next_frame().map_err(DecodeError::from)? {
                return Ok(decode(body)?);
            }
            match self.recv.read(&mut buf).await {
                Ok(Some(n)) => self.decoder.push(&buf[..n]),
                Ok(None) => return Err(lost("the relay closed the transfer")),
                Err(e) => return Err(lost(e)),
            }
        }
    }

    /// What arrived after the last reply: the first bytes of a download.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.decoder.take_rest()
    }
}

//! Files through the relay's store and forward, on bulk streams, as a device sends and
//! fetches them.

use phoned_proto::codec::{decode, encode_framed};
use phoned_proto::{BulkReply, BulkRequest, FileKind, FrameDecoder, MessageId};
use phoned_tests::client::Client;
use sha2::Digest;

async fn reply(recv: &mut quinn::RecvStream, dec: &mut FrameDecoder) -> BulkReply {
    let mut buf = vec![0u8; 4096];
    loop {
        if let Some(body) = dec.next_frame().expect("bulk frame") {
            return decode(body).expect("bulk reply");
        }
        let n = recv
            .read(&mut buf)
            .await
            .expect("bulk read")
            .expect("bulk stream ended before a reply");
        dec.push(&buf[..n]);
    }
}

/// Uploads `data` as file `name` for number `to`; returns the relay's id once stored.
pub async fn upload(from: &Client, to: &str, name: &str, data: &[u8]) -> MessageId {
    let (mut send, mut recv) = from.conn.open_bi().await.expect("bulk stream");
    let mut head = Vec::new();
    let request = BulkRequest::Upload {
        client_id: format!("upload-{name}"),
        to: to.into(),
        name: name.into(),
        size: data.len() as u64,
        sha256: sha2::Sha256::digest(data).into(),
        kind: FileKind::File,
    };
    encode_framed(&mut head, &request).expect("encode");
    send.write_all(&head).await.expect("send request");
    let mut dec = FrameDecoder::new();
    match reply(&mut recv, &mut dec).await {
        BulkReply::Resume { offset: 0 } => {}
        other => panic!("upload: {other:?}"),
    }
    send.write_all(data).await.expect("send data");
    send.finish().expect("finish");
    match reply(&mut recv, &mut dec).await {
        BulkReply::Stored { id } => id,
        other => panic!("upload: {other:?}"),
    }
}

/// Downloads file `id` of the logged-in account of `to`, whole.
pub async fn download(to: &Client, id: MessageId) -> Vec<u8> {
    let (mut send, mut recv) = to.conn.open_bi().await.expect("bulk stream");
    let mut head = Vec::new();
    encode_framed(&mut head, &BulkRequest::Download { id, offset: 0 }).expect("encode");
    send.write_all(&head).await.expect("send request");
    send.finish().expect("finish");
    let mut dec = FrameDecoder::new();
    match reply(&mut recv, &mut dec).await {
        BulkReply::Sending { offset: 0, .. } => {}
        other => panic!("download: {other:?}"),
    }
    let mut data = dec.take_rest();
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = recv.read(&mut buf).await.expect("bulk read") {
        data.extend_from_slice(&buf[..n]);
    }
    data
}

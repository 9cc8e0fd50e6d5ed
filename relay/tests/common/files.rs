//! Files through the relay's store and forward, on bulk streams, as a device sends and
//! fetches them.

use phoned_proto::{BulkReply, BulkRequest, FileKind, MessageId};
use phoned_tests::client::Client;
use sha2::Digest;

/// Uploads `data` as file `name` for number `to`; returns the relay's id once stored.
pub async fn upload(from: &Client, to: &str, name: &str, data: &[u8]) -> MessageId {
    let request = BulkRequest::Upload {
        client_id: format!("upload-{name}"),
        to: to.into(),
        name: name.into(),
        size: data.len() as u64,
        sha256: sha2::Sha256::digest(data).into(),
        kind: FileKind::File,
    };
    let mut bulk = from.open_bulk(&request).await.expect("bulk stream");
    match bulk.reply().await.expect("bulk reply") {
        BulkReply::Resume { offset: 0 } => {}
        other => panic!("upload: {other:?}"),
    }
    bulk.send.write_all(data).await.expect("send data");
    bulk.send.finish().expect("finish");
    match bulk.reply().await.expect("bulk reply") {
        BulkReply::Stored { id } => id,
        other => panic!("upload: {other:?}"),
    }
}

/// Downloads file `id` of the logged-in account of `to`, whole.
pub async fn download(to: &Client, id: MessageId) -> Vec<u8> {
    let mut bulk = to
        .open_bulk(&BulkRequest::Download { id, offset: 0 })
        .await
        .expect("bulk stream");
    bulk.send.finish().expect("finish");
    match bulk.reply().await.expect("bulk reply") {
        BulkReply::Sending { offset: 0, .. } => {}
        other => panic!("download: {other:?}"),
    }
    let mut data = bulk.take_rest();
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = bulk.recv.read(&mut buf).await.expect("bulk read") {
        data.extend_from_slice(&buf[..n]);
    }
    data
}

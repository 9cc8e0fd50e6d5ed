//! The link's beat and watch (docs/protocol.md §16.7, `phoned_proto::liveness`): the
//! connection keeps alive over QUIC only as often as a NAT needs
//! ([`phoned_client::KeepAlive::Beat`]); the device's beat is the UDP path's keep-alive
//! each second while the relay answers there, else a `Ping` on the control connection.
//! Anything from the relay (a QUIC packet of any kind, a plane echo or media) feeds the
//! watchdog; after [`SILENT_AFTER`] (4 s) of silence the link is taken as lost, and the
//! daemon reconnects as it does after any loss. The relay is asked to watch the device the
//! same way (`Request::Watch`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use phoned_client::Client;
use phoned_proto::liveness::{Heartbeat, SILENT_AFTER, Watchdog};

use super::media::MediaLink;

/// How often the watch looks.
const TICK: Duration = Duration::from_millis(250);

/// Beats and watches until the relay has been silent for [`SILENT_AFTER`]; then returns.
pub async fn watch(client: &Arc<Client>, media: &MediaLink) {
    // The relay watches this session too; its own task, as the relay may not answer.
    let asking = client.clone();
    smol::spawn(async move {
        match asking.ask_watch(SILENT_AFTER).await {
            Ok(true) => tracing::debug!("the relay watches this session's beat"),
            Ok(false) => tracing::info!(
                "the relay does not watch this device (an older relay): a vanished device stays online there until its idle timeout"
            ),
            Err(e) => tracing::debug!("asking the relay to watch: {e}"),
        }
    })
    .detach();
    let epoch = Instant::now();
    let mut dog = Watchdog::new(Duration::ZERO);
    let mut heart = Heartbeat::new();
    loop {
        let now = epoch.elapsed();
        dog.count(now, client.conn.stats().udp_rx.datagrams);
        let plane = media
            .udp_heard()
            .map(|at| at.saturating_duration_since(epoch));
        if let Some(at) = plane {
            dog.heard(at);
        }
        if dog.is_dead(now) {
            return;
        }
        if heart.ping_due(now, plane) {
            // Its own task: on a stalled connection the write may wait, and the watch
            // must not (a write cut short would break the stream's framing).
            let client = client.clone();
            smol::spawn(async move {
                if let Err(e) = client.beat().await {
                    tracing::debug!("ping: {e}");
                }
            })
            .detach();
        }
        smol::Timer::after(TICK).await;
    }
}

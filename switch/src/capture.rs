//! `ctl capture`: frames of one port, copied in the PMD loop without
//! stopping it, written as pcap.
//!
//! The port's [`Mirror`](pmd::mirror::Mirror) hands each received burst
//! and each burst about to be transmitted to a [`CaptureSink`] on the PMD
//! thread, which applies the filter and copies matching frames (whole: a
//! 64 KB GSO segment is one pcap record, as tcpdump on the interface shows
//! it) into a bounded queue. A full queue drops the copy and counts it;
//! the PMD thread never waits for the reader.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use byteorder_slice::LittleEndian;
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};
use pmd::mirror::{Direction, MirrorSink};
use pmd::PortCounters;

use crate::control::protocol::CaptureRequest;
use crate::daemon::Switch;
use crate::filter::FrameMatch;

/// Longest record: a 64 KB IPv4 segment with its Ethernet header and a
/// VLAN tag fits; 262144 is tcpdump's own maximum snaplen.
const SNAPLEN: u32 = 262_144;
/// Frames a capture queues for its writer before it drops copies.
const QUEUE_FRAMES: usize = 4096;
/// Bytes a capture queues before it drops copies (64 KB segments would
/// otherwise let 4096 frames hold 256 MB).
const QUEUE_BYTES: usize = 16 << 20;
/// How often the writer looks up from an empty queue.
const POLL: Duration = Duration::from_millis(200);

/// One copied frame.
struct Captured {
    ts: Duration,
    data: Vec<u8>,
}

/// Frames a capture could not queue (its reader was behind).
#[derive(Debug, Clone, Default)]
pub struct Missed(Arc<AtomicU64>);

impl Missed {
    /// Frames missed so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The PMD thread's side of a capture.
struct CaptureSink {
    filter: FrameMatch,
    tx: Sender<Captured>,
    queued_bytes: Arc<AtomicUsize>,
    missed: Missed,
}

impl MirrorSink for CaptureSink {
    fn offer(&self, _dir: Direction, frame: &[u8]) {
        if !self.filter.matches(frame) {
            return;
        }
        let len = frame.len().min(SNAPLEN as usize);
        if self.queued_bytes.load(Ordering::Relaxed) + len > QUEUE_BYTES {
            self.missed.0.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let c = Captured {
            ts,
            data: frame[..len].to_vec(),
        };
        match self.tx.try_send(c) {
            Ok(()) => {
                self.queued_bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(channel::TrySendError::Full(_)) => {
                self.missed.0.fetch_add(1, Ordering::Relaxed);
            }
            // The capture ended; the mirror is being disarmed.
            Err(channel::TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A capture in progress: armed under the runtime lock, streamed after it
/// is released (so a long capture blocks no other command). Dropping it
/// disarms the port.
pub struct CaptureStream {
    port: String,
    /// The port's queues: one per PMD thread that polls it.
    counters: Vec<Arc<PortCounters>>,
    rx: Receiver<Captured>,
    queued_bytes: Arc<AtomicUsize>,
    missed: Missed,
    count: Option<u64>,
}

/// Arms a capture on the port `req.port` names (a `[[port]]` or an
/// endpoint).
pub fn start(switch: &Switch, req: &CaptureRequest) -> Result<CaptureStream> {
    let filter = FrameMatch::new(&req.filter)?;
    let counters = switch
        .port_named(&req.port)
        .and_then(|id| switch.dataplane().port_counters(id))
        .with_context(|| format!("capture: no port or endpoint named {:?}", req.port))?
        .to_vec();
    let (tx, rx) = channel::bounded(QUEUE_FRAMES);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let missed = Missed::default();
    let sink = CaptureSink {
        filter,
        tx,
        queued_bytes: queued_bytes.clone(),
        missed: missed.clone(),
    };
    let sink: Arc<CaptureSink> = Arc::new(sink);
    for (armed, c) in counters.iter().enumerate() {
        if let Err(e) = c.mirror.arm(sink.clone()) {
            for c in &counters[..armed] {
                c.mirror.disarm();
            }
            return Err(e).with_context(|| format!("capture on {}", req.port));
        }
    }
    Ok(CaptureStream {
        port: req.port.clone(),
        counters,
        rx,
        queued_bytes,
        missed,
        count: req.count,
    })
}

impl CaptureStream {
    /// Frames this capture missed because its queue was full; readable
    /// after `write_to` returned.
    pub fn missed(&self) -> Missed {
        self.missed.clone()
    }

    /// Writes a pcap header, then every captured frame, until the count is
    /// reached, `out` fails, or `gone` says the client hung up (looked at
    /// while no frame matches, so a capture of a quiet port does not stay
    /// armed after its client left); disarms on return. Returns the frames
    /// written.
    pub fn write_to(self, mut out: &mut dyn Write, gone: &dyn Fn() -> bool) -> Result<u64> {
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            endianness: Endianness::Little,
            ts_resolution: TsResolution::MicroSecond,
            ..PcapHeader::default()
        };
        header
            .write_to(&mut out)
            .context("writing the pcap header")?;
        out.flush().context("writing the pcap header")?;
        let mut written = 0u64;
        while self.count.is_none_or(|c| written < c) {
            let c = match self.rx.recv_timeout(POLL) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) if gone() => break,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.queued_bytes.fetch_sub(c.data.len(), Ordering::Relaxed);
            let p = PcapPacket::new(c.ts, c.data.len() as u32, &c.data);
            // A failed write is the client gone: the capture ends there.
            if p.write_to::<_, LittleEndian>(&mut out, TsResolution::MicroSecond, SNAPLEN)
                .is_err()
                || out.flush().is_err()
            {
                break;
            }
            written += 1;
        }
        let missed = self.missed.get();
        if missed > 0 {
            tracing::warn!(
                "capture on {}: {missed} frames missed (the reader fell behind)",
                self.port
            );
        }
        Ok(written)
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        for c in &self.counters {
            c.mirror.disarm();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(frames: usize) -> (CaptureSink, Receiver<Captured>) {
        let (tx, rx) = channel::bounded(frames);
        let s = CaptureSink {
            filter: FrameMatch::default(),
            tx,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            missed: Missed::default(),
        };
        (s, rx)
    }

    #[test]
    fn a_full_queue_drops_the_copy_and_counts_it_instead_of_waiting() {
        let (s, rx) = sink(4);
        for _ in 0..10 {
            s.offer(Direction::Rx, &[0u8; 60]);
        }
        assert_eq!(rx.len(), 4, "queued");
        assert_eq!(s.missed.get(), 6, "missed");
    }

    #[test]
    fn queued_bytes_are_bounded_even_when_frames_are_few() {
        let (s, rx) = sink(QUEUE_FRAMES);
        let segment = vec![0u8; 65_000];
        for _ in 0..300 {
            s.offer(Direction::Tx, &segment);
        }
        assert_eq!(rx.len(), QUEUE_BYTES / 65_000, "queued");
        assert_eq!(s.missed.get(), 300 - (QUEUE_BYTES / 65_000) as u64);
    }
}

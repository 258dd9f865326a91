//! A UDP socket that coalesces the engine's datagrams into UDP GSO sends.
//!
//! Why: webrtc 0.21's driver sends each SCTP packet with its own `sendmsg` and only batches a
//! run of 16 or more written in one pass, which a data channel rarely produces; a bulk transfer
//! made one syscall and one trip through the kernel's UDP stack per 1,200-byte datagram (about
//! a third of the CPU of a transfer between two daemons on loopback). Here a send only queues
//! its datagram; a task of the socket wakes, takes everything queued, and sends every
//! run of same-sized datagrams to one address as one GSO `sendmsg` (the kernel splits it, or
//! hands it to a receiver with UDP GRO as one buffer). Order is kept; a send waits when the
//! queue holds [`MAX_QUEUED_BYTES`], as it would on a full socket buffer.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use webrtc::runtime::{AsyncUdpSocket, EcnCodepoint, RecvMeta, Transmit};

/// Bytes a socket's queue holds before senders wait.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;
/// A datagram this small goes out at once when nothing is queued before it: an idle link's
/// keepalives, ICE checks and SACKs gain nothing from a batch, and the hop through the send
/// task raised an idle daemon's CPU (10 rooms × 5 peers: about 1.5 → 2.6 %). Bulk SCTP packets
/// are about 1,200 bytes.
const MAX_INLINE_BYTES: usize = 600;
/// Bytes one GSO send carries at most (a UDP datagram's size limit).
const MAX_GSO_BYTES: usize = 65_535;
/// Segments one GSO send carries at most. The kernel takes 64, but a receiver that keeps the
/// default socket buffer (coturn does) drops part of a 64-datagram burst — each 1,200-byte
/// datagram costs about 3 KB of its 208 KiB — and a TURN-relayed link stalled on the losses.
const MAX_GSO_SEGMENTS: usize = 16;

/// One queued send, as the engine asked for it.
struct Queued {
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    /// Set when the engine already made this a GSO batch: sent as it is.
    segment_size: Option<usize>,
    contents: Vec<u8>,
}

impl Queued {
    /// The send as the engine asked for it.
    fn transmit(&self) -> Transmit<'_> {
        Transmit {
            destination: self.destination,
            ecn: self.ecn,
            contents: &self.contents,
            segment_size: self.segment_size,
            src_ip: self.src_ip,
        }
    }

    /// Whether `next` can follow this datagram in one GSO send of `segment`-byte segments.
    fn joins(&self, next: &Queued, segment: usize) -> bool {
        self.segment_size.is_none()
            && next.segment_size.is_none()
            && next.destination == self.destination
            && next.ecn == self.ecn
            && next.src_ip == self.src_ip
            && !next.contents.is_empty()
            && next.contents.len() <= segment
    }
}

#[derive(Default)]
struct Queue {
    sends: Vec<Queued>,
    bytes: usize,
    /// A drain is sending what it took: a datagram sent past it would overtake those.
    draining: bool,
    /// Senders waiting for room.
    waiting: Vec<Waker>,
}

/// The socket the engine sees.
pub struct CoalescingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    queue: Mutex<Queue>,
    flush: Arc<tokio::sync::Notify>,
}

impl fmt::Debug for CoalescingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalescingSocket")
            .field("inner", &self.inner)
            .finish()
    }
}

impl CoalescingSocket {
    /// Wraps `inner` and starts its sending task (which ends when the socket is dropped).
    pub fn wrap(inner: Arc<dyn AsyncUdpSocket>) -> Arc<dyn AsyncUdpSocket> {
        let flush = Arc::new(tokio::sync::Notify::new());
        let socket = Arc::new(CoalescingSocket {
            inner,
            queue: Mutex::new(Queue::default()),
            flush: flush.clone(),
        });
        tokio::spawn(send_loop(Arc::downgrade(&socket), flush));
        socket
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends everything queued, same-sized runs to one address as one GSO send each.
    async fn drain(&self) {
        let (sends, waiting) = {
            let mut q = self.lock();
            q.bytes = 0;
            q.draining = true;
            (std::mem::take(&mut q.sends), std::mem::take(&mut q.waiting))
        };
        for w in waiting {
            w.wake();
        }
        let max_segments = self.inner.max_gso_segments().min(MAX_GSO_SEGMENTS);
        let mut batch = Vec::new();
        let mut i = 0;
        while i < sends.len() {
            let first = &sends[i];
            let segment = first.contents.len();
            let mut end = i + 1;
            if max_segments > 1 && segment > 0 {
                let mut total = segment;
                while end < sends.len()
                    && end - i < max_segments
                    && first.joins(&sends[end], segment)
                    && total + sends[end].contents.len() <= MAX_GSO_BYTES
                {
                    total += sends[end].contents.len();
                    end += 1;
                    // A shorter datagram can only be the last segment.
                    if sends[end - 1].contents.len() < segment {
                        break;
                    }
                }
            }
            let mut transmit = first.transmit();
            if end - i > 1 {
                batch.clear();
                for s in &sends[i..end] {
                    batch.extend_from_slice(&s.contents);
                }
                transmit.contents = &batch;
                transmit.segment_size = Some(segment);
            }
            // UDP: a datagram the kernel refuses is lost like any other, and SCTP, ICE and
            // SRTP all live with loss.
            if let Err(e) = std::future::poll_fn(|cx| self.inner.poll_send(cx, &transmit)).await {
                tracing::debug!(error = %e, to = %first.destination, "UDP send failed");
            }
            i = end;
        }
        self.lock().draining = false;
    }
}

/// Waits for queued sends and sends them, until the socket is gone.
async fn send_loop(socket: Weak<CoalescingSocket>, flush: Arc<tokio::sync::Notify>) {
    loop {
        // No yield before draining: waiting for the engine to finish its burst made bigger
        // batches but left SACKs queued behind busy tasks, and a stream of small messages
        // stalled on SCTP's timers (the compare bench's rate profile). What the engine writes
        // while a drain sends is taken by the next one.
        flush.notified().await;
        let Some(socket) = socket.upgrade() else {
            return;
        };
        socket.drain().await;
    }
}

impl Drop for CoalescingSocket {
    fn drop(&mut self) {
        // What the engine wrote last (a closing connection's DTLS alert and SCTP abort, which
        // tell the peer at once that the link is gone) goes now, as far as the kernel takes it
        // without waiting.
        let sends = std::mem::take(&mut self.lock().sends);
        let mut cx = Context::from_waker(Waker::noop());
        for s in &sends {
            let _ = self.inner.poll_send(&mut cx, &s.transmit());
        }
        // Wakes the send loop, which finds the socket gone and ends.
        self.flush.notify_one();
    }
}

impl AsyncUdpSocket for CoalescingSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let mut q = self.lock();
        if transmit.contents.len() <= MAX_INLINE_BYTES && q.sends.is_empty() && !q.draining {
            // A small datagram with nothing ahead of it: straight to the kernel.
            drop(q);
            return self.inner.poll_send(cx, transmit);
        }
        if q.bytes >= MAX_QUEUED_BYTES {
            q.waiting.push(cx.waker().clone());
            return Poll::Pending;
        }
        let was_empty = q.sends.is_empty();
        q.bytes += transmit.contents.len();
        q.sends.push(Queued {
            destination: transmit.destination,
            ecn: transmit.ecn,
            src_ip: transmit.src_ip,
            segment_size: transmit.segment_size,
            contents: transmit.contents.to_vec(),
        });
        drop(q);
        if was_empty {
            self.flush.notify_one();
        }
        Poll::Ready(Ok(transmit.contents.len()))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

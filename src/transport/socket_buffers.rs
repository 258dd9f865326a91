//! A webrtc runtime that gives every ICE socket large kernel buffers, and sends its datagrams
//! coalesced (`coalesce`).
//!
//! With Linux's default 208 KiB receive buffer, a burst of SCTP data on loopback overflows the
//! socket before the driver drains it (`RcvbufErrors` in /proc/net/snmp); SCTP then recovers the
//! loss by retransmission timers and a bulk transfer drops from ~80 to ~15 MB/s. Everything else
//! is delegated to the crate's tokio runtime.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// Kernel buffer size asked for each UDP socket (the kernel caps it at `net.core.rmem_max`).
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Tokio runtime whose UDP sockets get [`SOCKET_BUFFER_BYTES`] of send and receive buffer.
pub struct SocketBufferRuntime {
    inner: TokioRuntime,
    /// Whether sockets coalesce datagrams into GSO sends.
    coalesce: bool,
}

impl SocketBufferRuntime {
    /// The runtime, shared by every connection of a transport: sockets coalesce their sends.
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(Self {
            inner: TokioRuntime,
            coalesce: true,
        })
    }

    /// The runtime for connections that only use TURN relays: one `sendmsg` per datagram. A
    /// TURN server with the default socket buffer (coturn) loses part of the bursts coalesced
    /// sends make, and a relayed link stalled on the losses.
    pub fn relayed() -> Arc<dyn Runtime> {
        Arc::new(Self {
            inner: TokioRuntime,
            coalesce: false,
        })
    }
}

impl fmt::Debug for SocketBufferRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SocketBufferRuntime")
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for SocketBufferRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = socket2::SockRef::from(&socket);
        // Best effort: a smaller buffer than asked for still works, only slower under load.
        if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
            tracing::debug!("SO_RCVBUF: {e}");
        }
        if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
            tracing::debug!("SO_SNDBUF: {e}");
        }
        let socket = self.inner.wrap_udp_socket(socket)?;
        if !self.coalesce {
            return Ok(socket);
        }
        Ok(super::coalesce::CoalescingSocket::wrap(socket))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> BoxFuture<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn name(&self) -> &'static str {
        "tokio+socket-buffers"
    }
}

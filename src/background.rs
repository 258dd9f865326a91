//! Work the node does for others at a lower scheduling priority than its data path: the
//! signaling thread (a relay's flood) and the catch-up reader (a peer's history requests). When
//! the cores are short, that work waits; peers' frames and API calls do not.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// How much lower a background thread's priority is (a nice value, applied per thread on Linux).
pub const NICE: libc::c_int = 10;

/// Lowers the calling thread's priority by [`NICE`]. A thread cannot raise it back without
/// privileges, so only threads that do nothing else call this.
pub fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id.
    let failed = unsafe {
        let tid = libc::gettid();
        let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, now + NICE) != 0
    };
    if failed {
        tracing::debug!("could not lower a background thread's priority");
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads running catch-up reads (each a bounded scan of the store).
const READERS: usize = 2;

/// Makes the calling thread run only on cycles nothing else wants (`SCHED_IDLE`). A thread at a
/// nice value still holds a core for a scheduler slice (milliseconds) when a data-path thread
/// wakes; an idle-class thread gives it up at once.
pub fn idle_priority() {
    // SAFETY: a plain syscall on the calling thread (pid 0) with a valid, zeroed sched_param.
    let failed = unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0
    };
    if failed {
        tracing::debug!("could not make a reader thread idle-class");
        lower_priority();
    }
}

/// Runs `job` on one of the node's idle-class reader threads (started on first use).
pub fn spawn_read(job: impl FnOnce() + Send + 'static) {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..READERS {
            let rx = Arc::clone(&rx);
            let started = std::thread::Builder::new()
                .name(format!("meshrtc-reader-{i}"))
                .spawn(move || {
                    idle_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = started {
                tracing::warn!("could not start a reader thread: {e}");
            }
        }
        Mutex::new(tx)
    });
    let sent = queue.lock().map(|tx| tx.send(Box::new(job)));
    if !matches!(sent, Ok(Ok(()))) {
        tracing::warn!("the reader threads are gone: a catch-up read was not run");
    }
}

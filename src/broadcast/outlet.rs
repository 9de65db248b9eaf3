//! A plain TCP socket written by two parties without interleaving: its own connection task
//! (welcome, acks, pings, close, all through the WebSocket library) and the broadcaster,
//! which writes each tick's pre-encoded stats frame straight into the socket with one
//! non-blocking `write` from wherever it runs.
//!
//! Why: a per-socket task wake-up per tick (a `watch` channel, `select!` re-registration,
//! the library's frame encoding) cost about as much as the kernel's send path itself;
//! measured in docs/performance.md ("Broadcast"). Writing from the broadcaster leaves one
//! syscall per frame and no wake-up at all for a socket whose writer is idle.
//!
//! The rule that keeps frames whole: every write goes through [`Outlet::state`]'s lock.
//! The broadcaster writes only at a frame boundary (the task's writer is not inside a
//! frame) and when nothing is queued; otherwise, or when its write is partial or would
//! block, it leaves the frame (or the unwritten rest) queued here and wakes the task, which
//! writes it before anything else of its own. A frame the task has not started is
//! replaced by a newer one: stats supersede each other, so at most two are ever queued and
//! a slow socket costs no more memory than that. The task gives up on a client that takes
//! nothing for its send timeout, exactly as for its own frames.
//!
//! Filed under the broadcast it serves, yet a leaf (tokio and bytes only, layered below
//! `tally` in scripts/check-modules.py), so the campaign's registry can live in its tally.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use bytes::Bytes;
use rustix::io::Errno;
use rustix::net::SendFlags;
use slab::Slab;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// One socket shared by its task and the broadcaster.
///
/// `repr(C)`, the stream first: the broadcaster's usual visit (lock, check, write) reads
/// only the first two cache lines of each socket's outlet.
#[repr(C)]
pub struct Outlet {
    stream: TcpStream,
    state: Mutex<State>,
}

#[derive(Default)]
#[repr(C)]
struct State {
    /// The task's own writer stopped inside a frame: only it may write next.
    mid_frame: bool,
    /// The task is closing: the broadcaster writes nothing more (a close frame is last).
    closed: bool,
    /// A whole frame for the task to write; a newer one replaces it.
    next: Option<Bytes>,
    /// A frame partly written (bytes from the offset on are still to go): nothing else may
    /// be written before its end.
    rest: Option<(Bytes, usize)>,
    /// The task, while it waits for a frame left to it ([`Outlet::poll_queued`]). Kept
    /// here, not in a `Notify`: a waker is 16 bytes and its waiting future is nothing, and
    /// both are paid by every idle socket.
    task: Option<Waker>,
}

impl State {
    fn queued(&self) -> bool {
        self.next.is_some() || self.rest.is_some()
    }
}

/// Wakes the task waiting for a queued frame, after releasing the lock it would take.
fn wake(mut st: MutexGuard<'_, State>) {
    let task = st.task.take();
    drop(st);
    if let Some(task) = task {
        task.wake();
    }
}

/// What [`Outlet::offer`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Written whole by the caller.
    Written,
    /// Left (whole or its rest) for the socket's task.
    Queued,
    /// The socket is closing or broken.
    Skipped,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outlet {
    pub fn new(stream: TcpStream) -> Arc<Self> {
        Arc::new(Self {
            stream,
            state: Mutex::new(State::default()),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes a complete frame now if the socket takes it, else leaves it to the task.
    /// Never waits.
    pub fn offer(&self, frame: &Bytes) -> Offer {
        let mut st = lock(&self.state);
        if st.closed {
            return Offer::Skipped;
        }
        if st.mid_frame || st.queued() {
            st.next = Some(frame.clone());
            wake(st);
            return Offer::Queued;
        }
        // `send(2)` on the descriptor itself, not tokio's `try_write`: that one first reads
        // the readiness tokio keeps in another allocation, a cache miss per socket per tick
        // (3% of the broadcast's CPU in `perf`). A write that would block tells the same
        // thing; tokio learns of it from the task's next write.
        match rustix::net::send(&self.stream, frame, SendFlags::NOSIGNAL) {
            Ok(n) if n == frame.len() => return Offer::Written,
            Ok(n) => st.rest = Some((frame.clone(), n)),
            Err(Errno::AGAIN | Errno::INTR) => st.next = Some(frame.clone()),
            // Broken: the task finds out on its next read and ends.
            Err(_) => return Offer::Skipped,
        }
        wake(st);
        Offer::Queued
    }

    /// Ready while a frame is left for the task to write.
    pub fn poll_queued(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = lock(&self.state);
        if st.queued() {
            return Poll::Ready(());
        }
        match &mut st.task {
            Some(w) => w.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// From now on the broadcaster writes nothing; what it left is dropped unless a part of
    /// it is already out (that rest still goes first, so the stream stays well-formed).
    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        st.next = None;
    }

    /// Writes what the broadcaster left, unless the task's writer is inside a frame (it
    /// must finish that first). Ready once nothing is queued.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut st = lock(&self.state);
            if st.mid_frame {
                return Poll::Ready(Ok(()));
            }
            let (frame, at) = match (st.rest.take(), st.next.take()) {
                (Some(rest), next) => {
                    st.next = next;
                    rest
                }
                (None, Some(next)) => (next, 0),
                (None, None) => return Poll::Ready(Ok(())),
            };
            match self.stream.try_write(&frame[at..]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) if at + n == frame.len() => {}
                Ok(n) => st.rest = Some((frame, at + n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.rest = Some((frame, at));
                    drop(st);
                    ready!(self.stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// The task's own write (the WebSocket library's): after anything queued, and noting
    /// whether it stopped inside a frame. The library hands over its whole output buffer
    /// each time, which always ends at a frame boundary, so a partial write is the only way
    /// to stop inside one.
    fn poll_write_own(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_drain(cx))?;
            let mut st = lock(&self.state);
            if !st.mid_frame && (st.rest.is_some() || st.next.is_some()) {
                continue; // the broadcaster left another frame meanwhile
            }
            match self.stream.try_write(buf) {
                Ok(n) => {
                    st.mid_frame = n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(st);
                    ready!(self.stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The task's end of an [`Outlet`]: the stream its WebSocket runs over.
pub struct OutletIo(pub Arc<Outlet>);

impl AsyncRead for OutletIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let stream = &self.0.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            match stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for OutletIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.poll_write_own(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // nothing is buffered here
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The stream closes when the last holder drops it; a half-close is not needed.
        Poll::Ready(Ok(()))
    }
}

/// Shards of a registry: a broadcast holds one shard's lock while it writes that shard,
/// so a socket opening or closing meanwhile waits for a sixteenth of a tick at most.
const SHARDS: usize = 16;

/// Below this many sockets per thread a broadcast is not split (a thread costs tens of
/// microseconds to start; 2,000 writes take milliseconds).
const MIN_SOCKETS_PER_THREAD: usize = 2_000;

/// The cores this process may use, read once.
fn parallelism() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Offers each socket of `shards` its frame (see [`Outlets::offer`]).
fn offer_shards(shards: &[Shard], wires: Wires<'_>) -> Offered {
    let mut counts = Offered::default();
    for shard in shards {
        let shard = lock_shard(shard);
        for (_, (outlet, audience)) in shard.iter() {
            let frame = match *audience {
                Audience::Viewer => wires.viewer,
                Audience::Operator => wires.operator,
                Audience::Unit(place) => match wires.units.get(place as usize) {
                    Some(Some(frame)) => Some(frame),
                    _ => wires.viewer,
                },
            };
            let Some(frame) = frame else { continue };
            match outlet.offer(frame) {
                Offer::Written => counts.written += 1,
                Offer::Queued => counts.queued += 1,
                Offer::Skipped => {}
            }
        }
    }
    counts
}

/// One shard: sockets, each with the frame it gets.
type Shard = Mutex<Slab<(Arc<Outlet>, Audience)>>;

/// The outlets of one campaign's sockets, each with the frame it gets (viewer or operator).
pub struct Outlets {
    shards: Box<[Shard]>,
    next: AtomicUsize,
}

/// Which of a tick's frames a socket gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Viewer,
    Operator,
    /// A viewer in a unit of the campaign's org (its place's number on this node): the
    /// viewer frame, followed by its unit's frame when that changed (`Wires::units`).
    Unit(u32),
}

/// What one offer writes to each audience (`None`: nothing this time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wires<'a> {
    pub viewer: Option<&'a Bytes>,
    pub operator: Option<&'a Bytes>,
    /// By place number: what a unit's viewers get instead of `viewer` (`None`: `viewer`).
    pub units: &'a [Option<Bytes>],
}

/// Counts of one [`Outlets::offer`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    pub written: u64,
    pub queued: u64,
}

impl Default for Outlets {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

fn lock_shard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outlets {
    /// Adds a socket; it gets every offer until the returned registration is dropped.
    pub fn register(&self, outlet: Arc<Outlet>, audience: Audience) -> Registration<'_> {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let key = lock_shard(&self.shards[shard]).insert((outlet, audience));
        Registration {
            outlets: self,
            shard,
            key,
        }
    }

    /// Offers each socket its frame. Returns how many were written here and how many were
    /// left to their tasks.
    ///
    /// A large campaign's shards are split over one thread per core (scoped threads, the
    /// caller's among them), so a tick's writes take a fraction of the time where cores
    /// are free; a small one is written by the caller alone.
    pub fn offer(&self, viewer: &Bytes, operator: &Bytes) -> Offered {
        self.offer_wires(Wires {
            viewer: Some(viewer),
            operator: Some(operator),
            units: &[],
        })
    }

    /// [`Outlets::offer`] with frames for unit viewers, or for some audiences only.
    pub fn offer_wires(&self, wires: Wires<'_>) -> Offered {
        let threads = parallelism().min(self.len() / MIN_SOCKETS_PER_THREAD);
        self.offer_on(wires, threads)
    }

    /// [`Outlets::offer_wires`] on `threads` threads (at least one, at most one per shard).
    pub fn offer_on(&self, wires: Wires<'_>, threads: usize) -> Offered {
        let threads = threads.clamp(1, SHARDS);
        if threads == 1 {
            return offer_shards(&self.shards, wires);
        }
        let per = SHARDS.div_ceil(threads);
        let mut groups = self.shards.chunks(per);
        let own = groups.next().unwrap_or_default();
        std::thread::scope(|scope| {
            let others: Vec<_> = groups
                .map(|group| scope.spawn(move || offer_shards(group, wires)))
                .collect();
            let mut counts = offer_shards(own, wires);
            for other in others {
                // A panic in a write is a bug; the shard's sockets miss one frame.
                let theirs = other.join().unwrap_or_default();
                counts.written += theirs.written;
                counts.queued += theirs.queued;
            }
            counts
        })
    }

    /// Sockets registered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock_shard(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a socket in its campaign's [`Outlets`]; dropping it takes the socket out.
pub struct Registration<'a> {
    outlets: &'a Outlets,
    shard: usize,
    key: usize,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut shard = lock_shard(&self.outlets.shards[self.shard]);
        if let Some((outlet, _)) = shard.try_remove(self.key) {
            outlet.close();
        }
    }
}

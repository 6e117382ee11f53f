//! Bounds the password-hash work of the whole process. Each Argon2id check holds 19 MiB for
//! tens of milliseconds, and sign-in is open to anyone: without a bound, a burst of sign-ins
//! made the process grow by gigabytes (and the allocator kept the memory afterwards). At most
//! `slots` checks run at once; at most `queue` more wait for a slot; anything beyond is refused
//! at once ([`Busy`]), so the peak is `slots × 19 MiB` whatever the flood.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::Semaphore;

/// The gate is full: the request is refused without hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The process-wide limit on concurrent password hashing.
#[derive(Debug)]
pub struct PasswordWork {
    /// Permits to hash (one per running check).
    slots: Arc<Semaphore>,
    /// Permits to be running or waiting; taken without waiting, so the queue is bounded.
    admitted: Arc<Semaphore>,
    slot_count: usize,
    capacity: usize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl PasswordWork {
    /// `slots` checks at once, `queue` more waiting.
    pub fn new(slots: usize, queue: usize) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            admitted: Arc::new(Semaphore::new(slots + queue)),
            slot_count: slots,
            capacity: slots + queue,
            running: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// Sized from the machine: one slot per core (at least two), eight waiting per slot (a
    /// check takes ~50 ms, so a full queue clears in well under a second).
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = cores.max(2);
        Self::new(slots, slots * 8)
    }

    /// A place in the queue, or [`Busy`] when the queue is full (answered at once).
    pub fn admit(&self) -> Result<Ticket<'_>, Busy> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        Ok(Ticket {
            work: self,
            _admitted: admitted,
        })
    }

    /// Admits and runs `work` in one step.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        self.admit()?.run(work).await
    }

    /// How many checks may run at once.
    pub fn slots(&self) -> usize {
        self.slot_count
    }

    /// How many checks may run or wait at once (beyond that: [`Busy`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most checks that ran at once since start.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// An admitted request's place: it waits for a slot, then runs its work.
#[derive(Debug)]
pub struct Ticket<'a> {
    work: &'a PasswordWork,
    _admitted: tokio::sync::OwnedSemaphorePermit,
}

impl Ticket<'_> {
    /// Runs `work` (a hash or a check) on the blocking pool once a slot is free. The slot is
    /// held until `work` ends, even when the caller gives up waiting (a client that
    /// disconnects does not free the memory in use).
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let gate = self.work;
        let slot = gate
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
        gate.peak.fetch_max(now, Ordering::SeqCst);
        let running = gate.running.clone();
        let done = tokio::task::spawn_blocking(move || {
            let out = work();
            running.fetch_sub(1, Ordering::SeqCst);
            drop(slot);
            out
        })
        .await;
        done.map_err(|e| {
            tracing::error!(error = %e, "a password check panicked");
            Busy
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_slots_run_and_the_queue_is_bounded() {
        let gate = Arc::new(PasswordWork::new(2, 3));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    gate.run(|| std::thread::sleep(Duration::from_millis(200)))
                        .await
                })
            })
            .collect();
        let mut done = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => done += 1,
                Err(Busy) => busy += 1,
            }
        }
        assert!(gate.peak() <= 2, "peak {}", gate.peak());
        assert!(done >= 5, "the slots and the queue are used: {done}");
        assert!(busy > 0, "beyond the queue, requests are refused");
        assert_eq!(done + busy, 20);
    }
}

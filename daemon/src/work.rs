//! The blocking work D-Bus callers can ask of the daemon (reading the files they send,
//! encoding WAVs, listing audio devices; recording and playing voice messages on a queue
//! of their own), bounded: a few jobs run at a time on the
//! `blocking` thread pool, a few more wait, and a caller beyond that is told `Busy` at
//! once. Without the bound every call took a thread of its own (the pool grows to 500),
//! and calls that never finish (a FIFO nobody writes to) starved everything else that
//! uses the pool, the relay address lookup among them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use smol::lock::Semaphore;
use thiserror::Error;

/// Jobs that run at once: reading files is bound by the disk, not the CPU.
pub const RUNNING: usize = 2;
/// Jobs that may wait for a place, beyond those running.
pub const WAITING: usize = 14;

/// Every place is taken: the caller should try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the daemon is busy with {0} other jobs of this kind; try again when they are done")]
pub struct Busy(pub usize);

/// A bounded queue of blocking jobs (see the module's comment).
pub struct Work {
    running: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    limit: usize,
}

/// A place in the queue (waiting or running), given back when dropped.
pub struct Place {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Work {
    fn default() -> Self {
        Work::new(RUNNING, WAITING)
    }
}

impl Work {
    /// At most `running` jobs at once and `waiting` more in line.
    pub fn new(running: usize, waiting: usize) -> Work {
        Work {
            running: Arc::new(Semaphore::new(running.max(1))),
            admitted: Arc::new(AtomicUsize::new(0)),
            limit: running.max(1) + waiting,
        }
    }

    /// Takes a place in line, or fails at once with [`Busy`] when there is none.
    pub fn admit(&self) -> Result<Place, Busy> {
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .map_err(Busy)?;
        debug_assert!(taken < self.limit);
        Ok(Place {
            admitted: self.admitted.clone(),
        })
    }

    /// Runs `job` on a blocking thread once a place to run is free; [`Busy`] at once if
    /// the line is full. The place is held by the job itself, so a caller that stops
    /// waiting does not let more jobs run than the bound.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let place = self.admit()?;
        let permit = self.running.acquire_arc().await;
        Ok(blocking::unblock(move || {
            let _held = (place, permit);
            job()
        })
        .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_line_is_busy_until_a_place_is_given_back() {
        let work = Work::new(2, 3);
        let places: Vec<Place> = (0..5).map(|_| work.admit().unwrap()).collect();
        assert_eq!(work.admit().err(), Some(Busy(5)));
        drop(places);
        assert!(work.admit().is_ok());
    }

    #[test]
    fn jobs_run_and_give_their_places_back() {
        let work = Work::new(1, 0);
        let out = smol::block_on(async {
            let a = work.run(|| 1).await.unwrap();
            let b = work.run(|| 2).await.unwrap();
            a + b
        });
        assert_eq!(out, 3);
        assert!(work.admit().is_ok(), "a place was not given back");
    }

    #[test]
    fn no_more_than_the_bound_run_at_once() {
        let work = Arc::new(Work::new(2, 30));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        smol::block_on(async {
            let jobs = (0..32).map(|_| {
                let (work, now, most) = (work.clone(), now.clone(), most.clone());
                smol::spawn(async move {
                    work.run(move || {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            });
            for job in jobs.collect::<Vec<_>>() {
                job.await.unwrap();
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?}");
    }
}

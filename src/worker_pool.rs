// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A fixed pool of worker threads fed through a channel (`--thread-pool-size`).

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// One unit of work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Fixed-size thread pool. Dropping it lets queued jobs finish, then joins the threads.
#[derive(Debug)]
pub struct WorkerPool {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `size` (at least one) worker threads.
    pub fn new(size: usize) -> io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = (0..size.max(1))
            .map(|i| {
                let receiver = Arc::clone(&receiver);
                thread::Builder::new()
                    .name(format!("fs-worker-{i}"))
                    .spawn(move || run_worker(&receiver))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(WorkerPool {
            sender: Some(sender),
            threads,
        })
    }

    /// Number of worker threads.
    pub fn size(&self) -> usize {
        self.threads.len()
    }

    /// Queues `job`. If the pool is shutting down the job runs on the calling thread, so it is
    /// never lost (a lost job would leave a descriptor chain unanswered).
    pub fn execute(&self, job: Job) {
        let rejected = match &self.sender {
            Some(sender) => sender.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = rejected {
            job();
        }
    }
}

fn run_worker(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only while receiving, not while running the job.
        let job = match receiver.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // channel closed: the pool is being dropped
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        drop(self.sender.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    #[test]
    fn runs_jobs_concurrently_and_drains_on_drop() {
        let pool = WorkerPool::new(3).unwrap();
        assert_eq!(pool.size(), 3);
        // Three jobs that can only finish if they run at the same time.
        let barrier = Arc::new(Barrier::new(3));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let barrier = Arc::clone(&barrier);
            let done = Arc::clone(&done);
            pool.execute(Box::new(move || {
                barrier.wait();
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn zero_means_one_thread() {
        assert_eq!(WorkerPool::new(0).unwrap().size(), 1);
    }
}

//! Group commit: many tasks' small writes done as one statement.
//!
//! A [`Batcher`] takes items from any number of tasks ([`Batcher::submit`]) and
//! hands them, in order, to one `flush` at a time: the items that arrive while a
//! flush runs go together into the next. Under light load each item is flushed at
//! once, alone (no timer, no added wait); under heavy load a flush carries as many
//! as came meanwhile, so the number of commits grows more slowly than the load.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// At most this many items go into one flush.
const MAX_BATCH: usize = 256;

/// Why a submitted item has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E> {
    /// The flush that carried the item failed, with every item in it.
    #[error(transparent)]
    Failed(Arc<E>),
    /// The batcher's task has ended (the runtime is shutting down).
    #[error("the batch writer has stopped")]
    Stopped,
}

type Waiter<O, E> = oneshot::Sender<Result<O, BatchError<E>>>;

/// Hands submitted items to `flush` in batches; see the module's doc.
pub struct Batcher<I, O, E> {
    items: mpsc::UnboundedSender<(I, Waiter<O, E>)>,
}

impl<I, O, E> Batcher<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Spawns the task that flushes; it ends when the batcher is dropped. `flush`
    /// gets the items of a batch and returns one outcome per item, in their order.
    pub fn spawn<F, Fut>(flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, E>> + Send,
    {
        let (items, mut queue) = mpsc::unbounded_channel::<(I, Waiter<O, E>)>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (inputs, waiters): (Vec<I>, Vec<Waiter<O, E>>) = batch.drain(..).unzip();
                match flush(inputs).await {
                    Ok(outcomes) if outcomes.len() == waiters.len() => {
                        for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                            let _ = waiter.send(Ok(outcome));
                        }
                    }
                    Ok(_) => {
                        log::error!("a batch flush returned the wrong number of outcomes");
                        // Dropped waiters answer Stopped.
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for waiter in waiters {
                            let _ = waiter.send(Err(BatchError::Failed(e.clone())));
                        }
                    }
                }
            }
        });
        Self { items }
    }

    /// `item`'s outcome, once the batch that carries it is flushed.
    pub async fn submit(&self, item: I) -> Result<O, BatchError<E>> {
        let (waiter, outcome) = oneshot::channel();
        self.items
            .send((item, waiter))
            .map_err(|_| BatchError::Stopped)?;
        outcome.await.unwrap_or(Err(BatchError::Stopped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn items_submitted_together_share_flushes_and_each_gets_its_own_outcome() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let counted = flushes.clone();
        let doubler = Arc::new(Batcher::spawn(move |items: Vec<u32>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::task::yield_now().await;
                Ok::<_, String>(items.into_iter().map(|n| n * 2).collect())
            }
        }));
        let tasks: Vec<_> = (0..100u32)
            .map(|n| {
                let doubler = doubler.clone();
                tokio::spawn(async move { (n, doubler.submit(n).await) })
            })
            .collect();
        for task in tasks {
            let (n, doubled) = task.await.expect("the task ran");
            assert_eq!(doubled.expect("flushed"), n * 2);
        }
        assert!(
            flushes.load(Ordering::Relaxed) < 100,
            "no batching happened"
        );
    }

    #[tokio::test]
    async fn a_failed_flush_fails_every_item_in_it() {
        let batcher = Batcher::spawn(|_items: Vec<u32>| async { Err::<Vec<u32>, _>("down") });
        match batcher.submit(1).await {
            Err(BatchError::Failed(e)) => assert_eq!(*e, "down"),
            other => panic!("expected the flush's error, got {other:?}"),
        }
    }
}

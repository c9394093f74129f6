//! A job's reporter: the signed callbacks that tell print-service how the job is
//! going, in order, each retried until taken (`kit::webhook::deliver`).

use pixpress_domain::printer::{CallbackStatus, PrinterCallback, PrinterJob};
use pixpress_kit::webhook::{deliver, Delivery};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Entry, Gateway};

impl Gateway {
    /// Sends the job's callbacks in order as they become due, until the last.
    pub(super) async fn report(&self, id: Uuid, mut woken: mpsc::UnboundedReceiver<()>) {
        loop {
            while let Some((job, (status, detail))) = self
                .with_job(id, |t| t.next_callback().map(|next| (t.job.clone(), next)))
                .flatten()
            {
                if !self.deliver(&job, status, detail).await {
                    return;
                }
                self.with_job(id, |t| t.reported.push(status));
                self.store
                    .record(&Entry::Reported {
                        correlation_id: id,
                        status,
                    })
                    .await;
            }
            if self.with_job(id, |t| t.fully_reported()).unwrap_or(true) {
                return;
            }
            if woken.recv().await.is_none() {
                return;
            }
        }
    }

    /// Sends one signed callback, retrying while print-service is down or failing.
    /// `true` once print-service answered it (taken, or refused for good: it would
    /// refuse it again); `false` when the gateway gave up.
    async fn deliver(
        &self,
        job: &PrinterJob,
        status: CallbackStatus,
        detail: Option<String>,
    ) -> bool {
        let label = match status {
            CallbackStatus::Printing => "printing",
            CallbackStatus::Completed => "completed",
            CallbackStatus::Failed => "failed",
        };
        let count = |outcome: &str| {
            self.metrics
                .callbacks
                .with_label_values(&[label, outcome])
                .inc()
        };
        let body = match serde_json::to_vec(&PrinterCallback { status, detail }) {
            Ok(body) => body,
            Err(e) => {
                log::error!("cannot encode a callback: {e}");
                return false;
            }
        };
        let delivery = deliver(
            &self.callbacks,
            &job.callback_url,
            body,
            self.secret.as_ref(),
            || count("retried"),
        )
        .await;
        match delivery {
            Delivery::Taken => count("taken"),
            // print-service would refuse it again: as good as answered.
            Delivery::Refused(_) => count("refused"),
            Delivery::GaveUp => {
                log::error!(
                    "giving up on the {label} callback for {} until a restart",
                    job.correlation_id
                );
                count("gave_up");
            }
        }
        delivery != Delivery::GaveUp
    }
}

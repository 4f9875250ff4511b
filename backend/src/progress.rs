//! Terminal progress: an indicatif bar that shows training events (loss,
//! accuracy, learning rate, images/s, ETA) and plain counters for bulk
//! work. The browser gets the same events over the websocket instead.

use flukeid_shared::api::TrainEvent;
use indicatif::{ProgressBar, ProgressStyle};

/// A bar driven by [`TrainEvent`]s.
pub struct TrainBar {
    bar: ProgressBar,
}

impl TrainBar {
    pub fn new() -> Self {
        let style = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} steps {msg} [{elapsed_precise}]",
        )
        .expect("the template is valid");
        Self {
            bar: ProgressBar::new(0).with_style(style),
        }
    }

    /// Updates the bar, printing a line per epoch and state change.
    pub fn show(&self, event: &TrainEvent) {
        match event {
            TrainEvent::Step(s) => {
                self.bar.set_length(s.total_steps as u64);
                self.bar.set_position(s.global_step as u64);
                self.bar.set_message(format!(
                    "loss {:.3} acc {:.2} lr {:.1e} {:.1} img/s ETA {:.0}s",
                    s.loss, s.accuracy, s.lr, s.images_per_sec, s.eta_secs
                ));
            }
            TrainEvent::Epoch(e) => self.bar.println(format!(
                "epoch {}/{}: loss {:.4} acc {:.3} | val loss {} acc {} MAP@5 {} ({:.0}s)",
                e.epoch + 1,
                e.n_epochs,
                e.train_loss,
                e.train_accuracy,
                optional(e.val_loss),
                optional(e.val_accuracy),
                optional(e.val_map5),
                e.secs
            )),
            TrainEvent::State { state, message } => {
                self.bar.println(format!("{state:?}: {message}"));
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for TrainBar {
    fn default() -> Self {
        Self::new()
    }
}

/// A counting bar for bulk work such as embedding.
pub fn counter(len: u64, label: &str) -> ProgressBar {
    let template = format!("{label} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta}}]");
    let style = ProgressStyle::with_template(&template).expect("the template is valid");
    ProgressBar::new(len).with_style(style)
}

fn optional(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.3}"))
}

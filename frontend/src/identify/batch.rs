//! A batch of photos on their way to identification, and their results as
//! they arrive. Each photo is sent with its own batch tag, `<group>-<n>`;
//! the identification websocket streams every result, and a result whose
//! tag carries this batch's group belongs to photo `n`. The HTTP answer to
//! each upload is the same result again, so a dropped socket loses
//! nothing: whichever arrives first fills the photo in.

use flukeid_shared::api::IdentifyResponse;

/// Where one photo of the batch stands.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoState {
    /// Chosen, not sent yet.
    Waiting,
    /// Bytes going up; `sent` of `total`.
    Uploading {
        sent: f64,
        total: f64,
    },
    /// Sent; the server is cropping and embedding it.
    Embedding,
    Done(IdentifyResponse),
    Failed(String),
}

/// The photos of one batch and their states, in the order chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    group: String,
    states: Vec<PhotoState>,
}

/// Counts of photos by state, for a one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub waiting: usize,
    pub busy: usize,
    pub done: usize,
    pub failed: usize,
}

impl PhotoState {
    /// Share of the work done, from 0 to 1: uploading fills the first
    /// nine tenths, embedding the rest.
    pub fn progress(&self) -> f64 {
        match self {
            PhotoState::Waiting => 0.0,
            PhotoState::Uploading { sent, total } if *total > 0.0 => 0.9 * (sent / total).min(1.0),
            PhotoState::Uploading { .. } => 0.0,
            PhotoState::Embedding => 0.95,
            PhotoState::Done(_) | PhotoState::Failed(_) => 1.0,
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self, PhotoState::Done(_) | PhotoState::Failed(_))
    }
}

impl Batch {
    /// An empty batch whose tags start with `group` (letters, digits and
    /// `_` only, so the tag stays a plain name the server accepts).
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_string(),
            states: Vec::new(),
        }
    }

    /// Adds a photo; returns its index.
    pub fn add(&mut self) -> usize {
        self.states.push(PhotoState::Waiting);
        self.states.len() - 1
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn state(&self, photo_idx: usize) -> Option<&PhotoState> {
        self.states.get(photo_idx)
    }

    /// The tag to send with photo `photo_idx`.
    pub fn tag(&self, photo_idx: usize) -> String {
        format!("{}-{photo_idx}", self.group)
    }

    /// The photo a tag names, when it is one of this batch's.
    pub fn photo_of(&self, tag: &str) -> Option<usize> {
        let (group, idx) = tag.rsplit_once('-')?;
        let idx: usize = idx.parse().ok()?;
        (group == self.group && idx < self.states.len()).then_some(idx)
    }

    /// Upload progress of a photo; a finished photo stays finished.
    pub fn uploading(&mut self, photo_idx: usize, sent: f64, total: f64) {
        let done_sending = total > 0.0 && sent >= total;
        let next = if done_sending {
            PhotoState::Embedding
        } else {
            PhotoState::Uploading { sent, total }
        };
        self.set_unless_finished(photo_idx, next);
    }

    /// The server's answer to photo `photo_idx`'s upload.
    pub fn answered(&mut self, photo_idx: usize, response: IdentifyResponse) {
        self.set_unless_finished(photo_idx, PhotoState::Done(response));
    }

    /// A photo that could not be identified, with the reason.
    pub fn failed(&mut self, photo_idx: usize, message: String) {
        self.set_unless_finished(photo_idx, PhotoState::Failed(message));
    }

    /// Puts a finished or failed photo back in line to be sent again
    /// (after its box changed, or to retry); a photo on its way is left
    /// alone.
    pub fn again(&mut self, photo_idx: usize) {
        if let Some(state) = self.states.get_mut(photo_idx) {
            if state.is_finished() {
                *state = PhotoState::Waiting;
            }
        }
    }

    /// A result from the websocket; `Some(photo)` when it belongs to this
    /// batch. Results of other people's photos are ignored.
    pub fn streamed(&mut self, response: IdentifyResponse) -> Option<usize> {
        let photo_idx = self.photo_of(response.batch.as_deref()?)?;
        self.answered(photo_idx, response);
        Some(photo_idx)
    }

    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for state in &self.states {
            match state {
                PhotoState::Waiting => tally.waiting += 1,
                PhotoState::Uploading { .. } | PhotoState::Embedding => tally.busy += 1,
                PhotoState::Done(_) => tally.done += 1,
                PhotoState::Failed(_) => tally.failed += 1,
            }
        }
        tally
    }

    fn set_unless_finished(&mut self, photo_idx: usize, next: PhotoState) {
        if let Some(state) = self.states.get_mut(photo_idx) {
            if !state.is_finished() {
                *state = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(upload_id: i64, batch: Option<&str>) -> IdentifyResponse {
        IdentifyResponse {
            upload_id,
            run_id: "run-0001".into(),
            batch: batch.map(str::to_string),
            candidates: vec![],
            probably_new: true,
        }
    }

    #[test]
    fn tags_name_the_photo_and_only_this_batch_claims_them() {
        let mut batch = Batch::new("b7f3a");
        batch.add();
        batch.add();
        assert_eq!(batch.tag(1), "b7f3a-1");
        assert_eq!(batch.photo_of("b7f3a-1"), Some(1));
        assert_eq!(batch.photo_of("b7f3a-2"), None);
        assert_eq!(batch.photo_of("other-1"), None);
        assert_eq!(batch.photo_of("b7f3a-x"), None);
        assert_eq!(batch.photo_of("b7f3a"), None);
    }

    #[test]
    fn streamed_results_fill_in_their_photo_and_the_answer_changes_nothing() {
        let mut batch = Batch::new("g");
        let first = batch.add();
        let second = batch.add();
        batch.uploading(second, 10.0, 100.0);
        assert_eq!(batch.streamed(response(7, Some("g-1"))), Some(second));
        assert_eq!(batch.streamed(response(8, Some("someone-0"))), None);
        assert_eq!(batch.streamed(response(9, None)), None);
        batch.answered(second, response(7, Some("g-1")));
        assert_eq!(
            batch.state(second),
            Some(&PhotoState::Done(response(7, Some("g-1"))))
        );
        assert_eq!(batch.state(first), Some(&PhotoState::Waiting));
        assert_eq!(
            batch.tally(),
            Tally {
                waiting: 1,
                busy: 0,
                done: 1,
                failed: 0
            }
        );
    }

    #[test]
    fn late_progress_never_undoes_a_result() {
        let mut batch = Batch::new("g");
        let photo = batch.add();
        batch.streamed(response(1, Some("g-0")));
        batch.uploading(photo, 100.0, 100.0);
        batch.failed(photo, "late".into());
        assert!(matches!(batch.state(photo), Some(PhotoState::Done(_))));
    }

    #[test]
    fn finished_photos_can_be_sent_again_but_busy_ones_cannot() {
        let mut batch = Batch::new("g");
        let (done, busy) = (batch.add(), batch.add());
        batch.answered(done, response(1, Some("g-0")));
        batch.uploading(busy, 1.0, 100.0);
        batch.again(done);
        batch.again(busy);
        assert_eq!(batch.state(done), Some(&PhotoState::Waiting));
        assert!(matches!(
            batch.state(busy),
            Some(PhotoState::Uploading { .. })
        ));
    }

    #[test]
    fn progress_moves_from_upload_to_embedding() {
        let mut batch = Batch::new("g");
        let photo = batch.add();
        batch.uploading(photo, 50.0, 100.0);
        assert_eq!(batch.state(photo).unwrap().progress(), 0.45);
        batch.uploading(photo, 100.0, 100.0);
        assert_eq!(batch.state(photo), Some(&PhotoState::Embedding));
        assert_eq!(batch.tally().busy, 1);
        batch.failed(photo, "The photo is too large for the server.".into());
        assert_eq!(batch.state(photo).unwrap().progress(), 1.0);
        assert_eq!(batch.tally().failed, 1);
        assert_eq!(
            PhotoState::Uploading {
                sent: 5.0,
                total: 0.0
            }
            .progress(),
            0.0
        );
    }
}

//! The run loop: rounds until the configured number, a checkpoint every `checkpoint_every`
//! rounds, the manifest after each round, and a stop request honoured at the next round
//! boundary (the first Ctrl-C in the CLI), so the outputs are always complete up to the last
//! round run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Lineage, Sim, SimError};

/// Where and how often checkpoints are written.
#[derive(Clone, Debug, Default)]
pub struct CheckpointPolicy {
    /// The folder (`round-NNNNNN.ckpt` files).
    pub dir: PathBuf,
    /// Every this many rounds; 0 = never.
    pub every: u32,
}

/// How a run loop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Every planned round ran.
    Finished,
    /// Stopped by the stop request after `round` rounds.
    Interrupted {
        /// Rounds completed.
        round: u32,
        /// The latest checkpoint, to resume from.
        last_checkpoint: Option<PathBuf>,
    },
}

/// Errors of the run loop: a round, a checkpoint or the manifest failed (the manifest then
/// says where, when it can still be written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A round or the manifest.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// Writing the checkpoint after a round failed; the round's outputs are written, and the
    /// manifest says `failed writing the checkpoint after round N`.
    #[error("writing the checkpoint after round {round} failed: {source}; the outputs hold rounds 1-{round}; {resume}")]
    CheckpointWrite {
        /// The round just completed.
        round: u32,
        /// What to resume from, in words.
        resume: String,
        /// Why the write failed.
        source: Box<crate::checkpoint::CheckpointError>,
    },
}

impl Sim {
    /// Runs the remaining rounds of the configuration (`round`), writing the manifest
    /// (`running` before and after each round, `finished` at the end), a checkpoint by
    /// `checkpoints`, and calling `on_round` after each round. When `stop` is set the loop ends
    /// at the next round boundary with the manifest `interrupted after round N`.
    ///
    /// # Errors
    /// [`RunError`] when a round, checkpoint or manifest write failed; the manifest records
    /// `failed in round N` when a round failed.
    pub fn run_until(
        &mut self,
        stop: &AtomicBool,
        checkpoints: &CheckpointPolicy,
        mut on_round: impl FnMut(&Sim),
    ) -> Result<RunEnd, RunError> {
        let rounds = self.config().round;
        self.write_manifest("running")?;
        while self.round() < rounds {
            if stop.load(Ordering::SeqCst) {
                let last = self
                    .world()
                    .get_resource::<Lineage>()
                    .and_then(|l| l.last.clone());
                self.write_manifest(&format!("interrupted after round {}", self.round()))?;
                tracing::info!(round = self.round(), "interrupted");
                return Ok(RunEnd::Interrupted {
                    round: self.round(),
                    last_checkpoint: last,
                });
            }
            let t = std::time::Instant::now();
            if let Err(e) = self.step() {
                let _ = self.write_manifest(&format!("failed in round {}", self.round()));
                return Err(e.into());
            }
            let round = self.round();
            tracing::info!(round, secs = t.elapsed().as_secs_f64(), "round done");
            if checkpoints.every > 0 && round.is_multiple_of(checkpoints.every) {
                let path = checkpoints.dir.join(format!("round-{round:06}.ckpt"));
                let t = std::time::Instant::now();
                let parent = self
                    .world()
                    .get_resource::<Lineage>()
                    .and_then(|l| l.parent.clone());
                if let Err(source) = crate::checkpoint::save(self, &path, parent.as_deref()) {
                    let last = self
                        .world()
                        .get_resource::<Lineage>()
                        .and_then(|l| l.last.clone());
                    let resume = match last {
                        Some(p) => format!(
                            "once the cause is fixed, resume from {} (the rounds after it run again)",
                            p.display()
                        ),
                        None => "no earlier checkpoint of this run was written".to_string(),
                    };
                    let _ = self.write_manifest(&format!(
                        "failed writing the checkpoint after round {round}"
                    ));
                    tracing::error!(round, path = %path.display(), error = %source, "checkpoint not written");
                    return Err(RunError::CheckpointWrite {
                        round,
                        resume,
                        source: Box::new(source),
                    });
                }
                tracing::info!(path = %path.display(), secs = t.elapsed().as_secs_f64(), "checkpoint written");
                self.world_mut()
                    .get_resource_or_insert_with(Lineage::default)
                    .last = Some(path);
            }
            on_round(self);
            self.write_manifest("running")?;
        }
        self.write_manifest("finished")?;
        Ok(RunEnd::Finished)
    }
}

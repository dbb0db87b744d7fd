//! A ladder's rungs on the worker pool ([`super::pool`]): each rung scales
//! and encodes the pictures it is handed, in order; the ladder hands
//! pictures out (dropping, in realtime mode, for a rung that is behind) and
//! takes results back between packets.

use std::sync::Arc;
use std::time::Duration;

use crate::telemetry::clock;
use crate::telemetry::cpu::thread_cpu;
use crate::transcode::{EncodedFrame, Encoder, Frame, Scaler, StageError};

/// A picture for one rung's thread.
pub(super) struct RungJob {
    pub(super) frame: Arc<Frame>,
    pub(super) force_idr: bool,
}

/// What a rung's thread made of one picture.
pub struct RungOutput {
    pub(super) rung: usize,
    pub(super) pts: i64,
    pub(super) scale: Duration,
    pub(super) encode: Duration,
    pub(super) scale_cpu: Duration,
    pub(super) encode_cpu: Duration,
    pub(super) result: Result<Option<EncodedFrame>, StageError>,
}

/// One picture through one rung: scale, encode, timed (wall and CPU).
pub(super) fn rung_job(
    index: usize,
    scaler: &mut dyn Scaler,
    encoder: &mut dyn Encoder,
    frame: &mut Frame,
    job: RungJob,
) -> RungOutput {
    let (t, c) = (clock::now(), thread_cpu());
    // A rung the source's size encodes the shared picture itself: no copy.
    let same = (job.frame.width, job.frame.height) == (frame.width, frame.height)
        && job.frame.device.is_none();
    let scaled = if same {
        Ok(())
    } else {
        scaler.scale(&job.frame, frame)
    };
    let (t2, c2) = (clock::now(), thread_cpu());
    let input: &Frame = if same { &job.frame } else { frame };
    let result = scaled.and_then(|()| encoder.encode(input, job.force_idr));
    RungOutput {
        rung: index,
        pts: job.frame.pts,
        scale: t2 - t,
        encode: t2.elapsed(),
        scale_cpu: c2.saturating_sub(c),
        encode_cpu: thread_cpu().saturating_sub(c2),
        result,
    }
}

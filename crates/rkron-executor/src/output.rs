//! The shared tail buffer that collects an execution's output, and Dkron's final output text.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ExecuteOutcome;

/// The number of output bytes kept per execution; older bytes are dropped.
pub const OUTPUT_LIMIT: usize = 256_000;

/// Shared tail buffer of an execution's output: stdout and stderr interleaved, keeping the last
/// [`OUTPUT_LIMIT`] bytes.
///
/// Clones share the same buffer, so one clone can be written by the executor while another is
/// read for progress.
#[derive(Debug, Clone, Default)]
pub struct OutputBuffer {
    inner: Arc<Mutex<TailBytes>>,
}

/// The retained bytes and the count of everything ever written.
#[derive(Debug, Default)]
struct TailBytes {
    bytes: VecDeque<u8>,
    total_written: u64,
}

impl OutputBuffer {
    /// Returns an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes`, dropping the oldest bytes beyond [`OUTPUT_LIMIT`].
    pub fn push(&self, bytes: &[u8]) {
        let mut tail = self.lock();
        tail.total_written += bytes.len() as u64;
        let kept = &bytes[bytes.len().saturating_sub(OUTPUT_LIMIT)..];
        let overflow = (tail.bytes.len() + kept.len()).saturating_sub(OUTPUT_LIMIT);
        tail.bytes.drain(..overflow);
        tail.bytes.extend(kept);
        debug_assert!(tail.bytes.len() <= OUTPUT_LIMIT);
    }

    /// Returns the retained output as text, replacing invalid UTF-8 with U+FFFD.
    ///
    /// The text never exceeds [`OUTPUT_LIMIT`] bytes: a character cut in half by the tail limit
    /// is dropped rather than replaced.
    pub fn snapshot(&self) -> String {
        let tail = self.lock();
        let was_truncated = tail.total_written > tail.bytes.len() as u64;
        let mut bytes: Vec<u8> = tail.bytes.iter().copied().collect();
        drop(tail);
        if was_truncated {
            let cut_continuation_bytes = bytes
                .iter()
                .take(3)
                .take_while(|byte| (**byte & 0b1100_0000) == 0b1000_0000)
                .count();
            bytes.drain(..cut_continuation_bytes);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if text.len() <= OUTPUT_LIMIT {
            return text;
        }
        // Replacement characters for invalid bytes can make the text longer than the bytes.
        let mut start = text.len() - OUTPUT_LIMIT;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }

    /// Returns the number of bytes ever pushed, including the dropped ones.
    pub fn total_written(&self) -> u64 {
        self.lock().total_written
    }

    fn lock(&self) -> MutexGuard<'_, TailBytes> {
        // A panic while holding the lock cannot leave the buffer inconsistent, so a poisoned
        // lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Returns Dkron's final output: on failure `"<error>\n<captured output>"`, else the captured
/// output.
pub fn final_output(outcome: &ExecuteOutcome, output: &OutputBuffer) -> String {
    let captured = output.snapshot();
    if outcome.success {
        return captured;
    }
    let error = outcome.error.as_deref().unwrap_or_default();
    format!("{error}\n{captured}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_below_the_limit() {
        let output = OutputBuffer::new();
        output.push(b"hello ");
        output.clone().push(b"world");
        assert_eq!(output.snapshot(), "hello world");
        assert_eq!(output.total_written(), 11);
    }

    #[test]
    fn keeps_the_tail_beyond_the_limit() {
        let output = OutputBuffer::new();
        for index in 0..100_000u32 {
            output.push(format!("{index:08}\n").as_bytes());
        }
        let text = output.snapshot();
        assert_eq!(text.len(), OUTPUT_LIMIT);
        assert!(text.ends_with("00099999\n"));
        assert_eq!(output.total_written(), 900_000);
    }

    #[test]
    fn a_single_huge_push_keeps_its_tail() {
        let output = OutputBuffer::new();
        let mut bytes = vec![b'a'; OUTPUT_LIMIT * 2];
        bytes.push(b'z');
        output.push(&bytes);
        let text = output.snapshot();
        assert_eq!(text.len(), OUTPUT_LIMIT);
        assert!(text.ends_with("az"));
    }

    #[test]
    fn drops_a_character_cut_by_the_limit() {
        let output = OutputBuffer::new();
        output.push("é".repeat(OUTPUT_LIMIT / 2 + 1).as_bytes());
        output.push(b"x");
        let text = output.snapshot();
        assert!(text.len() <= OUTPUT_LIMIT);
        assert!(!text.contains('\u{FFFD}'));
        assert!(text.ends_with("éx"));
    }

    #[test]
    fn invalid_utf8_never_grows_past_the_limit() {
        let output = OutputBuffer::new();
        output.push(&vec![0xFF; OUTPUT_LIMIT]);
        assert!(output.snapshot().len() <= OUTPUT_LIMIT);
    }

    #[test]
    fn final_output_prefixes_the_error_on_failure() {
        let output = OutputBuffer::new();
        output.push(b"some output\n");
        let failed = ExecuteOutcome::failed("exit status 1");
        assert_eq!(
            final_output(&failed, &output),
            "exit status 1\nsome output\n"
        );
        assert_eq!(
            final_output(&ExecuteOutcome::succeeded(), &output),
            "some output\n"
        );
    }
}

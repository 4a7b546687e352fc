//! The accepted-runs journal: a node's memory of the scheduled runs it accepted (and of the
//! newest leader token it has seen) kept in two small files under `data-dir`, so that a node
//! restarted after a crash can still answer a new leader's [`AgentRunner::recent_runs`]
//! question for runs its previous process took.
//!
//! Each accepted run is one appended line, written with a plain `write` before the executor
//! starts: the line is in the kernel's page cache when the process is killed, whatever kills
//! it. It is not synced: a machine crash may lose the tail, so a journal written under another
//! boot (Linux `boot_id`) is not trusted, and the node then knows only what it accepted since
//! it started, as without a journal.
//!
//! Layout: `accepted-runs-<node>.current` is appended to; when it is older than
//! [`RECENT_RUNS_KEPT`] it becomes `accepted-runs-<node>.previous` (replacing the older one) and
//! a new current file starts. Each file opens with a header line stating from which scheduled
//! instant on the files from it onwards hold every accepted run. `accepted-runs-<node>.lock` is
//! held (`flock`) while a process uses the journal, so two processes never share one.
//!
//! [`AgentRunner::recent_runs`]: crate::AgentRunner::recent_runs

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};

use crate::agent::{AcceptedRun, RECENT_RUNS_KEPT};

/// The first word of every journal file's header line.
const MAGIC: &str = "rkron-accepted-runs";
/// The journal format's version, the header's second word.
const VERSION: &str = "1";

/// What a journal held when it was opened.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Loaded {
    /// Accepted runs, oldest first.
    pub(crate) runs: Vec<AcceptedRun>,
    /// The newest leader token seen.
    pub(crate) fence: u64,
    /// The files hold every run accepted for instants at or after this one; `None` when there
    /// was no journal to trust (none yet, another boot, or damaged).
    pub(crate) complete_from: Option<DateTime<Utc>>,
}

/// An open journal (see the module documentation).
#[derive(Debug)]
pub(crate) struct RunJournal {
    current: File,
    current_path: PathBuf,
    previous_path: PathBuf,
    /// When the current file was started (by this process or an earlier one: its age counts
    /// from this process's opening at most, which only keeps files longer).
    started: tokio::time::Instant,
    /// The latest scheduled instant written to any file so far, and of the lines queued.
    latest: Option<DateTime<Utc>>,
    pending_latest: Option<DateTime<Utc>>,
    /// The complete-from instant of the oldest file kept.
    complete_from: DateTime<Utc>,
    /// The complete-from instant in the current file's header.
    current_from: DateTime<Utc>,
    /// Lines queued and not yet written, and the numbers of the last queued and written line.
    pending: Vec<u8>,
    queued: u64,
    written: u64,
    boot_id: String,
    /// Held for the journal's lifetime; the lock goes with the descriptor.
    _lock: File,
}

/// The kernel's id of this boot, or an empty string where there is none to read.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// A node name made safe for a file name: bytes outside `[A-Za-z0-9._-]` become `%XX`.
fn file_stem(node_name: &str) -> String {
    let mut stem = String::from("accepted-runs-");
    for byte in node_name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            stem.push(char::from(byte));
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    stem
}

fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn header(boot_id: &str, complete_from: DateTime<Utc>) -> String {
    format!(
        "{MAGIC} {VERSION} boot={boot_id} complete_from={}\n",
        nanos(complete_from)
    )
}

/// One file's contents; `None` when it cannot be trusted.
#[derive(Debug, Default)]
struct FileContents {
    complete_from: DateTime<Utc>,
    runs: Vec<AcceptedRun>,
    fence: u64,
}

/// Parses one journal file written under `boot_id`; `None` for another boot or damage. A last
/// line without its newline (a write cut short) is ignored.
fn parse(text: &str, boot_id: &str) -> Option<FileContents> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next()?.strip_suffix('\n')?;
    let mut words = first.split(' ');
    if words.next()? != MAGIC || words.next()? != VERSION {
        return None;
    }
    let boot = words.next()?.strip_prefix("boot=")?;
    if boot.is_empty() || boot != boot_id {
        return None;
    }
    let complete_from = words
        .next()?
        .strip_prefix("complete_from=")?
        .parse::<i64>()
        .ok()?;
    let mut contents = FileContents {
        complete_from: DateTime::from_timestamp_nanos(complete_from),
        ..FileContents::default()
    };
    for line in lines {
        let Some(line) = line.strip_suffix('\n') else {
            break;
        };
        let mut fields = line.splitn(4, ' ');
        match fields.next()? {
            "F" => {
                let token = fields.next()?.parse::<u64>().ok()?;
                contents.fence = contents.fence.max(token);
            }
            "R" => {
                let token = fields.next()?.parse::<u64>().ok()?;
                let at = fields.next()?.parse::<i64>().ok()?;
                let job = fields.next()?;
                if job.is_empty() {
                    return None;
                }
                contents.fence = contents.fence.max(token);
                contents
                    .runs
                    .push((job.to_owned(), DateTime::from_timestamp_nanos(at)));
            }
            _ => return None,
        }
    }
    Some(contents)
}

/// Reads a file that may be missing: `Ok(None)` when it is.
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        // Not UTF-8: damaged, so not trusted.
        Err(error) if error.kind() == io::ErrorKind::InvalidData => Ok(Some(String::new())),
        Err(error) => Err(error),
    }
}

impl RunJournal {
    /// Opens (creating `dir` if needed) the journal of `node_name`, loads what it holds and
    /// starts appending. `now` is this process's start: when nothing can be trusted, the
    /// journal starts over, complete from then.
    pub(crate) fn open(
        dir: &Path,
        node_name: &str,
        now: DateTime<Utc>,
    ) -> io::Result<(RunJournal, Loaded)> {
        std::fs::create_dir_all(dir)?;
        let stem = file_stem(node_name);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{stem}.lock")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "another process uses the accepted-runs journal of node {node_name} in {}",
                        dir.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
        let current_path = dir.join(format!("{stem}.current"));
        let previous_path = dir.join(format!("{stem}.previous"));
        let boot_id = boot_id();

        let previous = read_optional(&previous_path)?.map(|text| parse(&text, &boot_id));
        let current = read_optional(&current_path)?.map(|text| parse(&text, &boot_id));
        let trusted = match (previous, current) {
            // Both files, or only the current one (no rotation yet): all must parse.
            (Some(Some(previous)), Some(Some(current))) => Some((Some(previous), current)),
            (None, Some(Some(current))) => Some((None, current)),
            _ => None,
        };
        let mut loaded = Loaded::default();
        let (current, complete_from, current_from) = match trusted {
            Some((previous, current)) => {
                let current_from = current.complete_from;
                let complete_from = previous
                    .as_ref()
                    .map_or(current_from, |file| file.complete_from);
                for file in previous.into_iter().chain(std::iter::once(current)) {
                    loaded.fence = loaded.fence.max(file.fence);
                    loaded.runs.extend(file.runs);
                }
                loaded.complete_from = Some(complete_from);
                let file = OpenOptions::new().append(true).open(&current_path)?;
                (file, complete_from, current_from)
            }
            None => {
                // Nothing to trust: start over, complete from this process's start.
                match std::fs::remove_file(&previous_path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error),
                }
                let file = Self::create(&current_path, &boot_id, now)?;
                (file, now, now)
            }
        };
        let latest = loaded.runs.iter().map(|(_, at)| *at).max();
        let journal = RunJournal {
            current,
            current_path,
            previous_path,
            started: tokio::time::Instant::now(),
            latest,
            complete_from,
            current_from,
            pending: Vec::new(),
            pending_latest: None,
            queued: 0,
            written: 0,
            boot_id,
            _lock: lock,
        };
        Ok((journal, loaded))
    }

    /// Creates (replacing) a journal file holding only its header.
    fn create(path: &Path, boot_id: &str, complete_from: DateTime<Utc>) -> io::Result<File> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        file.write_all(header(boot_id, complete_from).as_bytes())?;
        Ok(file)
    }

    /// Queues an accepted run's line; answers its number for [`RunJournal::flush`]. Lines are
    /// written in groups: the runs of one tick are accepted together, and one `write` for all
    /// of them keeps the journal off the dispatch's path.
    pub(crate) fn queue_run(&mut self, leader_token: u64, run: &AcceptedRun) -> io::Result<u64> {
        let (job, at) = run;
        if job.is_empty() || job.contains(['\n', '\r', ' ']) {
            // Job names are validated to exclude these; one that is not cannot be written.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("job name {job:?} cannot be journaled"),
            ));
        }
        use std::fmt::Write as _;
        let mut line = String::with_capacity(job.len() + 48);
        let _ = writeln!(line, "R {leader_token} {} {job}", nanos(*at));
        self.pending.extend_from_slice(line.as_bytes());
        self.pending_latest = Some(self.pending_latest.map_or(*at, |latest| latest.max(*at)));
        self.queued += 1;
        Ok(self.queued)
    }

    /// Writes the queued lines if line `upto` is not written yet (rotating the files first
    /// when the current one is old enough). A run's line is flushed before its executor starts.
    pub(crate) fn flush(&mut self, upto: u64) -> io::Result<()> {
        if self.written >= upto || self.pending.is_empty() {
            return Ok(());
        }
        self.rotate_if_due()?;
        self.current.write_all(&self.pending)?;
        self.pending.clear();
        self.written = self.queued;
        self.latest = self.latest.max(self.pending_latest.take());
        Ok(())
    }

    /// Appends an accepted run at once.
    #[cfg(test)]
    pub(crate) fn record_run(&mut self, leader_token: u64, run: &AcceptedRun) -> io::Result<()> {
        let line = self.queue_run(leader_token, run)?;
        self.flush(line)
    }

    /// Appends a raised leader fence at once (with any queued runs before it).
    pub(crate) fn record_fence(&mut self, leader_token: u64) -> io::Result<()> {
        self.pending
            .extend_from_slice(format!("F {leader_token}\n").as_bytes());
        self.queued += 1;
        self.flush(self.queued)
    }

    /// Starts a new current file when the current one is [`RECENT_RUNS_KEPT`] old: the current
    /// file becomes the previous one (the older previous one goes), so the files always hold
    /// at least the last [`RECENT_RUNS_KEPT`] of accepted runs.
    fn rotate_if_due(&mut self) -> io::Result<()> {
        if self.started.elapsed() < RECENT_RUNS_KEPT {
            return Ok(());
        }
        // The new current file is complete from past every instant written so far (those are
        // in the files kept now or already dropped) and from past what the files kept claim.
        let next_from = self
            .latest
            .map_or(self.complete_from, |latest| {
                latest + TimeDelta::nanoseconds(1)
            })
            .max(self.complete_from);
        std::fs::rename(&self.current_path, &self.previous_path)?;
        self.current = Self::create(&self.current_path, &self.boot_id, next_from)?;
        // The previous file (the current one until now) keeps its own header: the files from
        // it onwards stay complete from that instant.
        self.complete_from = self.current_from;
        self.current_from = next_from;
        self.started = tokio::time::Instant::now();
        Ok(())
    }

    /// Removes the files after a failed write: they may now miss a run, so a later process
    /// must not trust them.
    pub(crate) fn discard(self) {
        for path in [&self.current_path, &self.previous_path] {
            if let Err(error) = std::fs::remove_file(path)
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::error!(
                    path = %path.display(),
                    "cannot remove the accepted-runs journal after a failed write: {error}; \
                     remove it before this node restarts"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
    }

    #[test]
    fn runs_and_fences_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, loaded) = RunJournal::open(dir.path(), "n1", at(0)).expect("open");
        assert_eq!(loaded, Loaded::default(), "a new journal holds nothing");
        journal.record_run(3, &("a".into(), at(5))).expect("write");
        journal.record_fence(7).expect("write");
        journal.record_run(7, &("b".into(), at(6))).expect("write");
        drop(journal);

        let (_journal, loaded) = RunJournal::open(dir.path(), "n1", at(100)).expect("reopen");
        assert_eq!(loaded.runs, vec![("a".into(), at(5)), ("b".into(), at(6))]);
        assert_eq!(loaded.fence, 7);
        assert_eq!(
            loaded.complete_from,
            Some(at(0)),
            "complete from the first process's start, not the restart"
        );
    }

    #[test]
    fn a_journal_in_use_is_refused_to_a_second_opener() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_journal, _) = RunJournal::open(dir.path(), "n1", at(0)).expect("open");
        let second = RunJournal::open(dir.path(), "n1", at(1));
        assert!(
            matches!(&second, Err(error) if error.kind() == io::ErrorKind::WouldBlock),
            "{second:?}"
        );
        // Another node's journal in the same directory is its own.
        RunJournal::open(dir.path(), "n2", at(1)).expect("another node's journal");
    }

    #[test]
    fn another_boot_or_damage_starts_over_from_the_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, _) = RunJournal::open(dir.path(), "n1", at(0)).expect("open");
        journal.record_run(1, &("a".into(), at(5))).expect("write");
        let path = journal.current_path.clone();
        drop(journal);

        let text = std::fs::read_to_string(&path).expect("read");
        let other_boot = text.replacen(&format!("boot={}", boot_id()), "boot=another", 1);
        assert_ne!(text, other_boot, "the header names the boot");
        std::fs::write(&path, other_boot).expect("write");
        let (journal, loaded) = RunJournal::open(dir.path(), "n1", at(50)).expect("reopen");
        assert_eq!(
            loaded,
            Loaded::default(),
            "another boot's journal is not trusted"
        );
        drop(journal);
        let (journal, loaded) = RunJournal::open(dir.path(), "n1", at(60)).expect("reopen");
        assert_eq!(
            loaded.complete_from,
            Some(at(50)),
            "started over at the restart"
        );
        drop(journal);

        let mut damaged = std::fs::read_to_string(&path).expect("read");
        damaged.push_str("R x y z\nR 1 5 a\n");
        std::fs::write(&path, damaged).expect("write");
        let (_journal, loaded) = RunJournal::open(dir.path(), "n1", at(70)).expect("reopen");
        assert_eq!(
            loaded,
            Loaded::default(),
            "a damaged journal is not trusted"
        );
    }

    #[test]
    fn a_line_cut_short_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, _) = RunJournal::open(dir.path(), "n1", at(0)).expect("open");
        journal.record_run(1, &("a".into(), at(5))).expect("write");
        journal.current.write_all(b"R 1 600000").expect("write");
        drop(journal);
        let (_journal, loaded) = RunJournal::open(dir.path(), "n1", at(9)).expect("reopen");
        assert_eq!(loaded.runs, vec![("a".into(), at(5))]);
        assert_eq!(loaded.complete_from, Some(at(0)));
    }

    #[test]
    fn queued_runs_are_written_together_by_the_first_flush() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, _) = RunJournal::open(dir.path(), "n1", at(0)).expect("open");
        let first = journal.queue_run(1, &("a".into(), at(5))).expect("queue");
        let second = journal.queue_run(1, &("b".into(), at(5))).expect("queue");
        let read = |journal: &RunJournal| {
            let text = std::fs::read_to_string(&journal.current_path).expect("read");
            parse(&text, &boot_id()).expect("parses").runs.len()
        };
        assert_eq!(read(&journal), 0, "queued, not yet written");
        journal.flush(first).expect("flush");
        assert_eq!(read(&journal), 2, "one write for both");
        journal.flush(second).expect("flush");
        assert_eq!(read(&journal), 2, "already written: nothing more");
    }

    #[tokio::test(start_paused = true)]
    async fn rotation_keeps_the_last_window_and_stays_complete() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, _) = RunJournal::open(dir.path(), "n1", at(0)).expect("open");
        journal.record_run(1, &("a".into(), at(10))).expect("write");
        tokio::time::advance(RECENT_RUNS_KEPT).await;
        // Rotates: "a" moves to the previous file.
        journal
            .record_run(1, &("b".into(), at(130)))
            .expect("write");
        drop(journal);
        let (mut journal, loaded) = RunJournal::open(dir.path(), "n1", at(131)).expect("reopen");
        assert_eq!(
            loaded.runs,
            vec![("a".into(), at(10)), ("b".into(), at(130))]
        );
        assert_eq!(loaded.complete_from, Some(at(0)));

        tokio::time::advance(RECENT_RUNS_KEPT).await;
        // Rotates again: "a"'s file goes; the files kept are complete from just after "a".
        journal
            .record_run(1, &("c".into(), at(250)))
            .expect("write");
        drop(journal);
        let (_journal, loaded) = RunJournal::open(dir.path(), "n1", at(251)).expect("reopen");
        assert_eq!(
            loaded.runs,
            vec![("b".into(), at(130)), ("c".into(), at(250))]
        );
        assert_eq!(
            loaded.complete_from,
            Some(at(10) + TimeDelta::nanoseconds(1)),
            "the dropped run's instant is no longer covered"
        );
    }

    #[test]
    fn node_names_become_safe_file_names() {
        assert_eq!(file_stem("node-1.a_b"), "accepted-runs-node-1.a_b");
        assert_eq!(file_stem("a/b c"), "accepted-runs-a%2Fb%20c");
    }
}

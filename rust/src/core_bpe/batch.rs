//! Batches: a list of texts cut into runs of consecutive texts (and long
//! texts into parts), encoded on a pool of threads, each with its piece
//! cache, while the caller reads the next stretch of texts; each run's
//! tokens go to a [`BatchSink`] as soon as they are done.

use std::sync::{Mutex, OnceLock};

use super::{output_capacity, with_thread_cache, CoreError};
use crate::bpe::piece_cache::PieceCache;
use crate::bpe::Rank;
use crate::encode_pool::EncodePool;

/// The tokens of a run of consecutive texts of a batch, in one vector.
pub struct Run {
    /// Index of the run's first text.
    pub start: usize,
    /// Text `start + k` is `ids[ends[k - 1]..ends[k]]` (from 0 for `k == 0`).
    pub ids: Vec<Rank>,
    pub ends: Vec<usize>,
    /// The first of its texts that could not be encoded (a disallowed
    /// special token), by batch index; its tokens are empty.
    pub error: Option<(usize, CoreError)>,
}

impl Run {
    /// The tokens of each text of the run, in order.
    pub fn texts(&self) -> impl Iterator<Item = &[Rank]> + '_ {
        self.ranges().map(|range| &self.ids[range])
    }

    /// Where each text's tokens are in `ids`.
    pub fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.ends.iter().scan(0, |from, &end| {
            let range = *from..end;
            *from = end;
            Some(range)
        })
    }
}

/// Where a batch's results go. Each run of consecutive texts is delivered
/// by a thread of the pool as soon as it is encoded (by the thread that
/// encoded it, or by one delivering already: see [`OneAtATime`]), so the
/// work on the results (building Python lists) runs beside the encoding of
/// the other runs.
pub trait BatchSink: Sync {
    /// Runs `f`, which encodes the batch and returns once every run is
    /// delivered (the Python bindings release the interpreter's lock
    /// meanwhile, for `deliver` to take on the pool's threads).
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R;
    /// Takes the tokens of a run, on a thread of the pool; never two calls at once.
    fn deliver(&self, run: Run);
    /// The fewest bytes of text worth a run of their own (see [`plan_tasks`]):
    /// each run costs a hand-over to `deliver`.
    fn min_run_bytes(&self) -> usize {
        MIN_RUN
    }
}

/// The failure of the batch's text with the lowest index, of those its
/// sink is told of from the pool's threads (a run's error, or one making
/// the run's output): what the batch raises once it is done.
pub struct FirstFailure<E>(Mutex<Option<(usize, E)>>);

impl<E> Default for FirstFailure<E> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<E> FirstFailure<E> {
    /// Keeps `error` of text `index` unless a text before it failed already.
    pub fn record(&self, index: usize, error: E) {
        let mut first = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if first.as_ref().is_none_or(|(k, _)| index < *k) {
            *first = Some((index, error));
        }
    }

    /// Whether any text has failed.
    pub fn any(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The first failure's error, if any.
    pub fn into_error(self) -> Option<E> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner()).map(|(_, e)| e)
    }
}

/// The least a run holds where handing it over costs something (building its
/// Python lists): 16 KB runs lost 4-9% on a batch of short lines, when the
/// calling thread took them over.
pub(super) const MIN_RUN: usize = 1 << 15;

/// Each text's tokens, or the error that stopped it; None until delivered.
type Results = Vec<Option<Result<Vec<Rank>, CoreError>>>;

/// Collects a batch's results in order.
pub(super) struct Collect(pub(super) Mutex<Results>);

impl Collect {
    pub(super) fn new(texts: usize) -> Self {
        Self(Mutex::new((0..texts).map(|_| None).collect()))
    }

    pub(super) fn into_results(self) -> Result<Vec<Vec<Rank>>, CoreError> {
        let results = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        results.into_iter().map(|r| r.expect("every text delivered")).collect()
    }
}

impl BatchSink for Collect {
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
    fn deliver(&self, mut run: Run) {
        let mut results = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (k, ids) in run.texts().enumerate() {
            results[run.start + k] = Some(Ok(ids.to_vec()));
        }
        if let Some((index, e)) = run.error.take() {
            results[index] = Some(Err(e));
        }
    }
}

/// How many bytes [`plan_tasks`] puts in a run (at least `min_run`).
fn run_bytes<S: AsRef<str>>(texts: &[S], threads: usize, min_run: usize) -> usize {
    let total: usize = texts.iter().map(|t| t.as_ref().len()).sum();
    (total / (16 * threads.max(1))).clamp(min_run, 1 << 22)
}

/// A part of a cut text is about this long at least: each costs a hand-over.
const MIN_PART: usize = 1 << 14;

/// One task of a batch: a run of consecutive whole texts `(start, end,
/// bytes)`, or part `index` (bytes `from..to`) of the text `text`, whose
/// parts are put back together in `slot` of the batch's [`Assembly`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Task {
    Run(usize, usize, usize),
    Part { text: usize, from: usize, to: usize, index: usize, slot: usize },
}

impl Task {
    /// The batch index of the task's first text.
    pub(super) fn first_text(&self) -> usize {
        match *self {
            Task::Run(start, ..) => start,
            Task::Part { text, .. } => text,
        }
    }
}

/// Splits a batch into runs of consecutive texts (`Task::Run(start, end,
/// bytes)`): up to sixteen runs per thread, so that the threads finish close
/// together; but at least `min_run` bytes each, as each run costs a
/// hand-over (see [`BatchSink::min_run_bytes`]). With `cuttable` (the split pattern's pieces
/// stop at a newline after a letter, and no special token spans one)
/// and two threads or more, a text of two parts' length or more is cut into
/// parts of about half a run (at least [`MIN_PART`]) at such newlines, which
/// the threads share. Eight documents of 50 KB on two threads left one
/// thread idle for part of the last document (1.72-1.77 CPUs in use); cut
/// in three, 1.80. Returns the tasks and how many parts each cut text has.
pub(super) fn plan_tasks<S: AsRef<str>>(
    texts: &[S],
    threads: usize,
    cuttable: bool,
    min_run: usize,
) -> (Vec<Task>, Vec<usize>) {
    let per_run = run_bytes(texts, threads, min_run);
    let part_bytes = (per_run / 2).max(MIN_PART);
    let cut = cuttable && threads >= 2;
    let mut tasks = Vec::new();
    let mut parts_of = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, t) in texts.iter().enumerate() {
        let text = t.as_ref().as_bytes();
        let cuts =
            if cut && text.len() >= 2 * part_bytes { cuts_of(text, text.len() / part_bytes) } else { Vec::new() };
        if !cuts.is_empty() {
            if start < i {
                tasks.push(Task::Run(start, i, size));
            }
            let slot = parts_of.len();
            let mut from = 0;
            for (index, &to) in cuts.iter().chain(std::iter::once(&text.len())).enumerate() {
                tasks.push(Task::Part { text: i, from, to, index, slot });
                from = to;
            }
            parts_of.push(cuts.len() + 1);
            (start, size) = (i + 1, 0);
            continue;
        }
        size += text.len() + 16;
        if size >= per_run {
            tasks.push(Task::Run(start, i + 1, size));
            (start, size) = (i + 1, 0);
        }
    }
    if start < texts.len() {
        tasks.push(Task::Run(start, texts.len(), size));
    }
    (tasks, parts_of)
}

/// Where to cut `text` into about `n` parts of equal length: the first
/// newline after a letter from each `k / n` of the way, if one comes before
/// the next.
fn cuts_of(text: &[u8], n: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::new();
    for k in 1..n {
        let (target, limit) = (k * text.len() / n, (k + 1) * text.len() / n);
        let after = cuts.last().map_or(0, |&c| c + 1);
        if let Some(cut) = crate::chunking::first_newline_cut(text, target.max(after), limit) {
            cuts.push(cut);
        }
    }
    cuts
}

/// The parts of one cut text as they are encoded; the thread that adds the
/// last joins them into the text's [`Run`]. Of several parts' errors, the
/// text's is the first part's (the whole text's, as a disallowed special
/// token is the first found).
struct Assembly(Mutex<(Vec<Vec<Rank>>, usize, Option<(usize, CoreError)>)>);

impl Assembly {
    fn new(parts: usize) -> Self {
        Self(Mutex::new(((0..parts).map(|_| Vec::new()).collect(), 0, None)))
    }

    /// Adds part `index` of text `text`; the whole text's run once every part is in.
    fn add(&self, text: usize, index: usize, part: Result<Vec<Rank>, CoreError>) -> Option<Run> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (parts, done, error) = &mut *state;
        match part {
            Ok(ids) => parts[index] = ids,
            Err(e) => {
                if error.as_ref().is_none_or(|(first, _)| index < *first) {
                    *error = Some((index, e));
                }
            }
        }
        *done += 1;
        if *done < parts.len() {
            return None;
        }
        let error = error.take().map(|(_, e)| (text, e.in_batch(text)));
        // A text that could not be encoded has no tokens, as in `encode_run`.
        let ids: Vec<Rank> = if error.is_some() { Vec::new() } else { parts.concat() };
        Some(Run { start: text, ends: vec![ids.len()], ids, error })
    }
}

/// Encodes one part of a cut text on this thread, with its piece cache.
fn encode_part<S: AsRef<str>>(
    id: u64,
    texts: &[S],
    text: usize,
    from: usize,
    to: usize,
    f: &EncodeInto<'_>,
) -> Result<Vec<Rank>, CoreError> {
    with_thread_cache(id, to - from, |cache| {
        let mut ids = Vec::with_capacity(output_capacity(to - from));
        f(&texts[text].as_ref()[from..to], &mut ids, cache).map(|()| ids)
    })
}

/// The threads a batch runs on when not told: `RAYON_NUM_THREADS` where it
/// is set (read once, as rayon reads it for its global pool), else one per
/// CPU this process may use.
fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let from_env = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok());
        from_env.filter(|&n| n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Appends the tokens of one text to the vector it is given.
type EncodeInto<'a> = dyn Fn(&str, &mut Vec<Rank>, &mut PieceCache) -> Result<(), CoreError> + Sync + 'a;

/// Encodes a run of a batch's texts (`texts`, the first of them text
/// `run.start`) into `run` at once: their tokens, ends and first error.
pub(super) type EncodeTexts<'a> = dyn Fn(&[&str], &mut Run, &mut PieceCache) + Sync + 'a;

/// Encodes the texts `start..end` of `texts` (`size` bytes), the first of
/// which is text `base` of the batch, on this thread, with its piece cache:
/// by `whole` where given, else one by one by `f`.
fn encode_run(
    id: u64,
    texts: &[&str],
    base: usize,
    (start, end, size): (usize, usize, usize),
    f: &EncodeInto<'_>,
    whole: Option<&EncodeTexts<'_>>,
) -> Run {
    with_thread_cache(id, size, |cache| {
        let start_in_batch = base + start;
        let mut run = Run {
            start: start_in_batch,
            ids: Vec::with_capacity(output_capacity(size)),
            ends: Vec::new(),
            error: None,
        };
        if let Some(whole) = whole {
            whole(&texts[start..end], &mut run, cache);
            debug_assert_eq!(run.ends.len(), end - start);
            return run;
        }
        for (k, t) in texts[start..end].iter().enumerate() {
            let from = run.ids.len();
            if let Err(e) = f(t, &mut run.ids, cache) {
                run.ids.truncate(from);
                let index = start_in_batch + k;
                run.error.get_or_insert((index, e.in_batch(index)));
            }
            run.ends.push(run.ids.len());
        }
        run
    })
}

/// Hands a batch's runs to its sink one thread at a time: a thread that
/// finishes a run while another delivers leaves it to that one and goes on
/// encoding. Two threads delivering at once would wait on each other for
/// the Python interpreter's lock, and a thread woken while the one that
/// woke it runs on can wait milliseconds for a core on this VM.
#[derive(Default)]
struct OneAtATime {
    /// Whether a thread is delivering, and the runs left for it.
    state: Mutex<(bool, Vec<Run>)>,
}

impl OneAtATime {
    fn deliver(&self, run: Run, sink: &impl BatchSink) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.0 {
                state.1.push(run);
                return;
            }
            state.0 = true;
        }
        let mut run = run;
        loop {
            sink.deliver(run);
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.1.pop() {
                Some(next) => run = next,
                None => {
                    state.0 = false;
                    return;
                }
            }
        }
    }
}

/// Where a batch's texts come from. A batch asks for them a stretch at a
/// time, and its threads start on each stretch as it comes: so reading them
/// (the Python bindings take a reference to each str and find its UTF-8, a
/// cache miss a text, with the interpreter's lock held) overlaps the
/// encoding of those read before. On a batch of 256 KB of short lines that
/// reading took a fifth of the call, with both threads waiting.
pub trait TextFeed<'t> {
    /// How many texts the batch has.
    fn count(&self) -> usize;
    /// Puts the batch's next texts into `slots`, from its start, until they
    /// hold `bytes` bytes or more or `slots` is full (at least one text):
    /// how many it put. None stops the batch, and nothing more is asked:
    /// the feed keeps why, and the sink is not given every text.
    fn read(&mut self, slots: &mut [&'t str], bytes: usize) -> Option<usize>;
}

/// The texts of a slice, all in one stretch.
pub struct SliceFeed<'t, S> {
    texts: &'t [S],
    next: usize,
}

impl<'t, S: AsRef<str>> SliceFeed<'t, S> {
    pub fn new(texts: &'t [S]) -> Self {
        Self { texts, next: 0 }
    }
}

impl<'t, S: AsRef<str>> TextFeed<'t> for SliceFeed<'t, S> {
    fn count(&self) -> usize {
        self.texts.len()
    }

    fn read(&mut self, slots: &mut [&'t str], _bytes: usize) -> Option<usize> {
        let texts = &self.texts[self.next..];
        for (slot, text) in slots.iter_mut().zip(texts) {
            *slot = text.as_ref();
        }
        let read = slots.len().min(texts.len());
        self.next += read;
        Some(read)
    }
}

/// A stretch of a batch's texts as read, which its tasks share: `texts`
/// start at text `base` of the batch, and the tasks' indices are into
/// `texts`; `assemblies` are its cut texts' (see [`plan_tasks`]).
struct Stretch<'s> {
    texts: &'s [&'s str],
    base: usize,
    assemblies: Vec<Assembly>,
}

/// The first stretch read of a batch holds this many runs' worth of bytes,
/// each later one twice the one before: the threads start early, and later
/// stretches are planned as whole batches were.
const FIRST_STRETCH_RUNS: usize = 2;

/// The tasks of a batch that have been handed to the pool and not yet finished.
#[derive(Default)]
struct Unfinished {
    count: Mutex<usize>,
    none_left: std::sync::Condvar,
}

impl Unfinished {
    fn add(&self, n: usize) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += n;
    }

    fn finish_one(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            self.none_left.notify_all();
        }
    }

    fn wait(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            count = self.none_left.wait(count).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `f` of each text of `feed` on a pool of `num_threads` threads (None: see
/// [`default_threads`]), each run delivered to `sink` by a thread of the
/// pool as it is encoded (see [`OneAtATime`]). The calling thread reads the
/// texts a stretch at a time, setting the pool to work on each (see
/// [`TextFeed`]), and then only waits: woken to build lists or to encode
/// beside the pool, it or the thread it woke often waited milliseconds for
/// a CPU on this VM (see `encode_pool`), and the lists were mostly built
/// after the encoding, on one CPU. With one thread every text is read first
/// and encoded on the calling thread. A panic in `f` or in `deliver` is
/// raised again here once every run has finished.
/// `cuttable`: long texts may be cut into parts (see [`plan_tasks`]);
/// `whole`: what encodes a run of texts at once, where not `f` one by one
/// (a part of a cut text is `f`'s).
pub(super) fn stream_texts<'t>(
    id: u64,
    feed: &mut dyn TextFeed<'t>,
    num_threads: Option<usize>,
    f: &EncodeInto<'_>,
    whole: Option<&EncodeTexts<'_>>,
    sink: &impl BatchSink,
    cuttable: bool,
) -> Result<(), CoreError> {
    let threads = num_threads.filter(|&n| n > 0).unwrap_or_else(default_threads);
    // One thread runs the tasks on the calling thread (below): no pool to make and keep.
    let pool = if threads > 1 { Some(EncodePool::sized(threads).map_err(CoreError::ThreadPool)?) } else { None };
    let min_run = sink.min_run_bytes();
    let n = feed.count();
    let mut slots: Vec<&'t str> = vec![""; n];
    let mut unread: &mut [&'t str] = &mut slots;
    let mut base = 0;
    // The next stretch of texts and its tasks; None once every text is read,
    // or the feed has stopped the batch.
    let mut next_stretch = |bytes: usize| {
        if unread.is_empty() {
            return None;
        }
        let read = feed.read(unread, bytes)?;
        assert!((1..=unread.len()).contains(&read), "a feed reads at least one text and no more than asked");
        let (texts, rest) = std::mem::take(&mut unread).split_at_mut(read);
        unread = rest;
        let texts: &[&str] = texts;
        let (tasks, parts_of) = plan_tasks(texts, threads, cuttable, min_run);
        let stretch = Stretch { texts, base, assemblies: parts_of.iter().map(|&n| Assembly::new(n)).collect() };
        base += read;
        Some((stretch, tasks))
    };
    // The first text of the first task that panicked.
    let panicked = Mutex::new(None::<usize>);
    let deliveries = OneAtATime::default();
    let run_task = |stretch: &Stretch<'_>, task: Task| {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match task {
            Task::Run(start, end, size) => {
                deliveries.deliver(encode_run(id, stretch.texts, stretch.base, (start, end, size), f, whole), sink)
            }
            Task::Part { text, from, to, index, slot } => {
                let part = encode_part(id, stretch.texts, text, from, to, f);
                if let Some(run) = stretch.assemblies[slot].add(stretch.base + text, index, part) {
                    deliveries.deliver(run, sink);
                }
            }
        }));
        if done.is_err() {
            let mut first = panicked.lock().unwrap_or_else(|e| e.into_inner());
            let k = stretch.base + task.first_text();
            *first = Some(first.map_or(k, |j| j.min(k)));
        }
    };
    match &pool {
        // One thread: every text read, then the tasks in order on this one.
        // Handed to a pool's thread, which must be woken first, a batch of
        // ten short texts took 78 us, where two threads took 26.
        None => {
            if let Some((stretch, tasks)) = next_stretch(usize::MAX) {
                sink.wait(|| tasks.into_iter().for_each(|task| run_task(&stretch, task)));
            }
        }
        Some(pool) => {
            let first_bytes = FIRST_STRETCH_RUNS * min_run;
            let Some(first) = next_stretch(first_bytes) else { return Ok(()) };
            let unfinished = Unfinished::default();
            // More than one task, where more texts are to come.
            let jobs = if first.0.base + first.0.texts.len() < n { usize::MAX } else { first.1.len() };
            pool.in_place_scope(jobs, |scope| {
                let reading = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut stretch = Some(first);
                    let mut bytes = first_bytes;
                    while let Some((read, tasks)) = stretch {
                        let read = std::sync::Arc::new(read);
                        unfinished.add(tasks.len());
                        for task in tasks {
                            let (read, run_task, unfinished) = (std::sync::Arc::clone(&read), &run_task, &unfinished);
                            scope.spawn(move |_| {
                                pool.settle();
                                run_task(&read, task);
                                unfinished.finish_one();
                            });
                        }
                        bytes = bytes.saturating_mul(2);
                        stretch = next_stretch(bytes);
                    }
                }));
                // The pool's deliveries may need what the sink releases while
                // it waits (the interpreter's lock): so even after a panic in
                // reading, which the scope would raise only once they are done.
                sink.wait(|| unfinished.wait());
                if let Err(panic) = reading {
                    std::panic::resume_unwind(panic);
                }
            });
        }
    }
    if let Some(start) = panicked.into_inner().unwrap_or_else(|e| e.into_inner()) {
        panic!("encoding the batch's texts from index {start} panicked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_texts_error_is_its_first_failed_parts() {
        // The first part's error is the text's, whatever order the parts end in.
        let assembly = Assembly::new(3);
        assert!(assembly.add(7, 2, Err(CoreError::DisallowedSpecial("late".into()))).is_none());
        assert!(assembly.add(7, 1, Err(CoreError::DisallowedSpecial("first".into()))).is_none());
        let run = assembly.add(7, 0, Ok(vec![1])).unwrap();
        assert!(matches!(&run.error, Some((7, e)) if e.to_string().contains("first")), "{:?}", run.error);
    }
}

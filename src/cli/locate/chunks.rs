//! The CSV job in parallel: the file read in chunks cut at record boundaries, each chunk
//! parsed, located and formatted by a worker, the chunks written back in input order. Memory
//! stays flat in the file's size (a few chunks in flight) and the output is the same bytes as a
//! row-by-row pass.

use csv_core::ReadRecordResult;
use memchr::memchr3;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

/// Bytes of input per chunk (a chunk holds whole records, so it can be longer).
pub(super) const CHUNK: usize = 1 << 20;

/// Reads CSV in chunks of whole records, finding where records end with the same rules as the
/// `csv` crate's reader (quoted fields may hold line breaks).
pub(super) struct Chunker<R> {
    src: R,
    pool: Pool,
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned, and the end of the last whole record in it.
    scanned: usize,
    last_end: usize,
    core: csv_core::Reader,
    eof: bool,
    /// Scratch for the scanner's output (fields are not kept here).
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> Chunker<R> {
    pub(super) fn new(src: R, pool: Pool) -> Self {
        Chunker {
            src,
            pool,
            buf: Vec::new(),
            scanned: 0,
            last_end: 0,
            core: csv_core::Reader::new(),
            eof: false,
            out: vec![0; 1 << 16],
            ends: vec![0; 1 << 10],
        }
    }

    /// Read up to [`CHUNK`] more bytes; at the end of the input, mark it.
    fn fill(&mut self) -> io::Result<()> {
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let mut n = 0;
        while old + n < self.buf.len() {
            match self.src.read(&mut self.buf[old + n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(old + n);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }

    /// Scan on to the end of the next record; false when the input has no more records.
    fn next_record(&mut self) -> io::Result<bool> {
        loop {
            if self.scanned == self.buf.len() && !self.eof {
                self.fill()?;
            }
            let (res, nin, _, _) =
                self.core
                    .read_record(&self.buf[self.scanned..], &mut self.out, &mut self.ends);
            self.scanned += nin;
            match res {
                ReadRecordResult::InputEmpty
                | ReadRecordResult::OutputFull
                | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record => {
                    self.last_end = self.scanned;
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
            }
        }
    }

    /// Hand out the bytes up to the end of the last whole record.
    fn take(&mut self) -> Vec<u8> {
        let mut rest = self.pool.get();
        rest.extend_from_slice(&self.buf[self.last_end..]);
        let mut chunk = std::mem::replace(&mut self.buf, rest);
        chunk.truncate(self.last_end);
        self.scanned -= self.last_end;
        self.last_end = 0;
        chunk
    }

    /// Where no quote can hide a line break, skip the scanner: a line end outside quotes ends a
    /// record. From a record's end, with at least a chunk's bytes read and none of them a quote,
    /// move to just past the last line feed.
    fn skip_plain(&mut self) -> io::Result<()> {
        while self.buf.len() - self.last_end < CHUNK && !self.eof {
            self.fill()?;
        }
        if self.scanned != self.last_end {
            return Ok(());
        }
        let rest = &self.buf[self.scanned..];
        let rest = &rest[..rest.len().min(CHUNK)];
        if memchr::memchr(b'"', rest).is_none()
            && let Some(i) = memchr::memrchr(b'\n', rest)
        {
            self.scanned += i + 1;
            self.last_end = self.scanned;
        }
        Ok(())
    }

    /// The first record's bytes (empty for an empty input).
    pub(super) fn first_record(&mut self) -> io::Result<Vec<u8>> {
        self.next_record()?;
        Ok(self.take())
    }

    /// The next chunk of whole records, or None at the end.
    pub(super) fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.skip_plain()?;
        while self.last_end < CHUNK && self.next_record()? {}
        Ok((self.last_end > 0).then(|| self.take()))
    }
}

/// The output file, written chunk by chunk; write-back to the disk is started every few
/// megabytes (Linux `sync_file_range`), so the closing `fsync` waits only for the tail.
pub(super) struct OutFile {
    file: std::fs::File,
    written: u64,
    started: u64,
}

impl OutFile {
    const STEP: u64 = 8 << 20;

    pub(super) fn new(file: std::fs::File) -> Self {
        OutFile {
            file,
            written: 0,
            started: 0,
        }
    }

    pub(super) fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.file.write_all(b)?;
        self.written += b.len() as u64;
        if self.written - self.started >= Self::STEP {
            #[cfg(target_os = "linux")]
            {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid open descriptor and a range within the file; the call only
                // starts write-back (an error here is not an error of the write: fsync decides)
                unsafe {
                    libc::sync_file_range(
                        self.file.as_raw_fd(),
                        self.started as libc::off64_t,
                        (self.written - self.started) as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WRITE,
                    );
                }
            }
            self.started = self.written;
        }
        Ok(())
    }

    /// Everything on the disk.
    pub(super) fn finish(self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// The records of one chunk, with each record's bytes as read. A chunk without quotes or
/// carriage returns is split at line feeds and commas directly (what the `csv` reader would do
/// there, blank lines skipped); any other goes through the `csv` reader.
pub(super) enum Records<'b> {
    Plain {
        bytes: &'b [u8],
        pos: usize,
    },
    Csv {
        bytes: &'b [u8],
        rd: csv::Reader<&'b [u8]>,
    },
}

impl<'b> Records<'b> {
    pub(super) fn new(bytes: &'b [u8]) -> Self {
        if memchr::memchr2(b'"', b'\r', bytes).is_none() {
            Records::Plain { bytes, pos: 0 }
        } else {
            let rd = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes);
            Records::Csv { bytes, rd }
        }
    }

    /// Read the next record into `rec`; its raw bytes, or None at the end.
    pub(super) fn next(&mut self, rec: &mut csv::ByteRecord) -> csv::Result<Option<&'b [u8]>> {
        match self {
            Records::Plain { bytes, pos } => loop {
                let bytes: &'b [u8] = bytes;
                if *pos >= bytes.len() {
                    return Ok(None);
                }
                let end = memchr::memchr(b'\n', &bytes[*pos..]).map_or(bytes.len(), |i| *pos + i);
                let line = &bytes[*pos..end];
                *pos = end + 1;
                if line.is_empty() {
                    continue;
                }
                rec.clear();
                // lines are short: a plain loop beats a vector search per field
                let mut from = 0;
                for (i, &b) in line.iter().enumerate() {
                    if b == b',' {
                        rec.push_field(&line[from..i]);
                        from = i + 1;
                    }
                }
                rec.push_field(&line[from..]);
                return Ok(Some(line));
            },
            Records::Csv { bytes, rd } => {
                if !rd.read_byte_record(rec)? {
                    return Ok(None);
                }
                let start = rec.position().map_or(0, |p| p.byte() as usize);
                let end = rd.position().byte() as usize;
                Ok(Some(bytes.get(start..end).unwrap_or_default()))
            }
        }
    }
}

/// Byte buffers handed back for reuse, so the pipeline does not keep asking the system for
/// fresh pages.
#[derive(Clone, Default)]
pub(super) struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    /// An empty buffer, reused when one is free.
    pub(super) fn get(&self) -> Vec<u8> {
        let v = self.0.lock().ok().and_then(|mut p| p.pop());
        v.map_or_else(
            || Vec::with_capacity(3 * CHUNK),
            |mut v| {
                v.clear();
                v
            },
        )
    }

    /// Give a buffer back (a few are kept).
    pub(super) fn put(&self, v: Vec<u8>) {
        if let Ok(mut p) = self.0.lock()
            && p.len() < 32
        {
            p.push(v);
        }
    }
}

/// Write one output row: the record's fields (its raw bytes when they need no quoting, so a
/// plain row is copied as read), `pad` empty fields, then `added`; quoted as the `csv` crate
/// quotes (only fields holding a comma, a quote or a line break).
pub(super) fn write_row<'a>(
    out: &mut Vec<u8>,
    raw: &[u8],
    fields: impl Iterator<Item = &'a [u8]>,
    pad: usize,
    added: [&[u8]; 3],
) {
    let eol = |b: &u8| *b == b'\r' || *b == b'\n';
    let end = raw.len() - raw.iter().rev().take_while(|b| eol(b)).count();
    let raw = &raw[..end];
    let raw = &raw[raw.iter().take_while(|b| eol(b)).count()..];
    if !raw.is_empty() && memchr3(b'"', b'\r', b'\n', raw).is_none() {
        out.extend_from_slice(raw);
    } else {
        for (i, f) in fields.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_field(out, f);
        }
    }
    for _ in 0..pad {
        out.push(b',');
    }
    for f in added {
        out.push(b',');
        write_field(out, f);
    }
    out.push(b'\n');
}

/// One field, quoted when it holds a comma, a quote or a line break.
fn write_field(out: &mut Vec<u8>, b: &[u8]) {
    if memchr3(b',', b'"', b'\n', b).is_none() && memchr::memchr(b'\r', b).is_none() {
        out.extend_from_slice(b);
        return;
    }
    out.push(b'"');
    for &c in b {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// Map `work` over the items `next` yields, on `threads` workers (each with a state made by
/// `init`), and give the results to `sink` in the order of the items. At most a few items per
/// worker are in flight. The first error of `next` or `sink` stops everything and is returned.
pub(super) fn ordered_map<T: Send, U: Send, S, E: Send>(
    threads: usize,
    mut next: impl FnMut() -> Result<Option<T>, E> + Send,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, T) -> U + Sync,
    mut sink: impl FnMut(U) -> Result<(), E>,
) -> Result<(), E> {
    let threads = threads.max(1);
    std::thread::scope(|s| {
        let (job_tx, job_rx) = sync_channel::<(u64, T)>(threads);
        let (res_tx, res_rx) = sync_channel::<(u64, U)>(threads);
        let reader = s.spawn(move || -> Result<(), E> {
            let mut seq = 0u64;
            while let Some(t) = next()? {
                if job_tx.send((seq, t)).is_err() {
                    break;
                }
                seq += 1;
            }
            Ok(())
        });
        // the workers own the receiving end, so when they stop the reader's send fails
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..threads {
            let (rx, tx, init, work) = (Arc::clone(&job_rx), res_tx.clone(), &init, &work);
            s.spawn(move || {
                let mut state = init();
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, t)) = job else { break };
                    if tx.send((seq, work(&mut state, t))).is_err() {
                        break;
                    }
                }
            });
        }
        drop((job_rx, res_tx));
        let mut pending = BTreeMap::new();
        let mut want = 0u64;
        let mut result = Ok(());
        'recv: while let Ok((seq, u)) = res_rx.recv() {
            pending.insert(seq, u);
            while let Some(u) = pending.remove(&want) {
                want += 1;
                if let Err(e) = sink(u) {
                    result = Err(e);
                    break 'recv;
                }
            }
        }
        drop(res_rx);
        let read = match reader.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        result.and(read)
    })
}

/// Fuzzing entry (`wangge::fuzz::csv_rows`): cut `data` into chunks as a run does, read every
/// record of each and write it back; the chunks must give back every byte after the header,
/// and every row written must be one CSV record.
pub(crate) fn fuzz_rows(data: &[u8]) {
    let mut chunker = Chunker::new(std::io::Cursor::new(data), Pool::default());
    let Ok(head) = chunker.first_record() else {
        return;
    };
    let mut seen = head.len();
    let mut rec = csv::ByteRecord::new();
    while let Ok(Some(chunk)) = chunker.next_chunk() {
        seen += chunk.len();
        let mut records = Records::new(&chunk);
        while let Ok(Some(raw)) = records.next(&mut rec) {
            let mut out = Vec::new();
            write_row(&mut out, raw, rec.iter(), 1, [b"g", b"c", b"a, \"b\""]);
            let back = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&out[..])
                .byte_records()
                .count();
            assert!(back <= 1 || raw.contains(&b'\r'), "one row became {back}");
        }
    }
    assert!(
        seen <= data.len(),
        "chunks gave {seen} of {} bytes",
        data.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records cut across chunks, quoted line breaks and a last record without a line end:
    /// the chunks put back together are the input, and each chunk parses to whole records.
    #[test]
    fn chunks_end_at_record_ends() {
        let mut text = String::from("id,lon,lat,note\n");
        for i in 0..60_000 {
            let note = if i % 7 == 0 {
                format!("\"line one\nline, two {i}\"")
            } else {
                format!("plain {i}")
            };
            text.push_str(&format!("{i},116.{i:06},39.9,{note}\r\n"));
        }
        text.push_str("last,1,2,\"no line end\"");
        let mut ch = Chunker::new(text.as_bytes(), Pool::default());
        let head = ch.first_record().unwrap();
        assert_eq!(head, b"id,lon,lat,note\n");
        let mut all = head.clone();
        let mut records = 0;
        let mut chunks = 0;
        while let Some(c) = ch.next_chunk().unwrap() {
            chunks += 1;
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(&c[..]);
            for r in rd.records() {
                assert_eq!(r.unwrap().len(), 4);
                records += 1;
            }
            all.extend_from_slice(&c);
        }
        assert!(chunks > 2, "{chunks}");
        assert_eq!(records, 60_001);
        assert_eq!(all, text.as_bytes());
    }

    /// The direct split gives the records, fields and rows the `csv` reader gives.
    #[test]
    fn plain_records_are_the_csv_readers() {
        let text = b"1,116.1,39.9,a b\n\n2,,39.8\n3,116.3,39.7,x,y,z\n  4 , 116.4 ,39.6, \n5,116.5,39.5,last";
        let mut plain = Records::new(text);
        assert!(matches!(plain, Records::Plain { .. }));
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&text[..]);
        let (mut a, mut b) = (csv::ByteRecord::new(), csv::ByteRecord::new());
        let mut n = 0;
        while let Some(raw) = plain.next(&mut a).unwrap() {
            assert!(rd.read_byte_record(&mut b).unwrap());
            assert_eq!(a, b);
            assert!(!raw.contains(&b'\n'));
            n += 1;
        }
        assert!(!rd.read_byte_record(&mut b).unwrap());
        assert_eq!(n, 5);
        // quoted text goes through the reader, raw bytes included
        let quoted = b"1,\"a,\"\"b\"\"\",2\r\n3,4,5\r\n";
        let mut r = Records::new(quoted);
        assert!(matches!(r, Records::Csv { .. }));
        let raw = r.next(&mut a).unwrap().unwrap();
        assert_eq!(&a[1], b"a,\"b\"");
        assert!(raw.starts_with(b"1,\"a"));
        // a record's bytes may carry the line ends around it (write_row trims them)
        let raw = r.next(&mut a).unwrap().unwrap();
        assert_eq!(raw.trim_ascii(), b"3,4,5");
        let mut out = Vec::new();
        write_row(&mut out, raw, a.iter(), 1, [b"g", b"c", b"n, with a comma"]);
        assert_eq!(out, b"3,4,5,,g,c,\"n, with a comma\"\n");
        assert!(r.next(&mut a).unwrap().is_none());
    }

    #[test]
    fn ordered_map_keeps_order_and_stops_on_error() {
        let mut i = 0;
        let mut got = Vec::new();
        let r: Result<(), String> = ordered_map(
            3,
            || {
                i += 1;
                Ok((i <= 1000).then_some(i))
            },
            || 0u64,
            |n: &mut u64, x: i32| {
                *n += 1;
                x * 2
            },
            |y| {
                got.push(y);
                Ok(())
            },
        );
        assert!(r.is_ok());
        assert_eq!(got, (1..=1000).map(|x| x * 2).collect::<Vec<_>>());
        let mut j = 0;
        let r: Result<(), String> = ordered_map(
            2,
            || {
                j += 1;
                Ok(Some(j))
            },
            || (),
            |(), x: i32| x,
            |y| {
                if y == 50 {
                    Err(format!("stop at {y}"))
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err("stop at 50".to_string()));
    }
}

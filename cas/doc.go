// Package cas is rustypipe's content-addressed store: the task cache.
//
// It holds two kinds of things. A blob is content addressed by its BLAKE3
// digest (stdout, stderr, output files). An action result records one task
// run under its key (the BLAKE3 key of everything that went into the task):
// exit code, output files with their modes and digests, the blobs of its
// stdout and stderr, and the caller's key preimage for `rustypipe explain`.
// Keys and digests cross this package's API as [32]byte; callers convert
// hashing.Key and hashing.Digest, which this package does not import.
//
// # Sessions and modes
//
// The caller opens the store for a short session and closes it, so that
// other rustypipe processes can take their turn; no process should hold it
// for a whole build. There are three ways to open it:
//
//   - writable (default): exclusive, one process at a time; puts, GC.
//     Open+Close costs about 3.5–5 ms, and a session that wrote about
//     8 ms (BenchmarkOpenClose, BenchmarkOpenPutClose).
//   - Lookup: shared with other Lookup and ReadOnly stores; reads, hits
//     recorded in v1/uses.log for the next writable session, and puts
//     appended to the journal, v1/journal.log (see journal.go), which the
//     next writable session merges into the index. Open+Close costs about
//     0.4–0.5 ms (BenchmarkLookupSession); a put costs one append. When
//     the journal is full (256 KiB), puts fail with ErrJournalFull and the
//     caller stores through a writable session.
//   - ReadOnly: like Lookup, but nothing is written at all.
//
// Lookup and ReadOnly stores that find a valid key filter (v1/keys.filter,
// see filter.go) open the index only when something needs it: a lookup of
// a key the filter does not hold is a miss without it, and journal puts of
// blobs given to the store need none, so a build that re-runs a changed
// task never opens the index.
//
// A directory that cannot be written, or whose file system is nearly full,
// is opened read-only whatever was asked.
//
// # On-disk layout
//
//	DIR/README.txt            what this is, that it is safe to delete, how to trim
//	DIR/v1/FORMAT             the format version ("1"); a larger one is refused
//	DIR/v1/lock               the directory lock; an exclusive holder's pid
//	DIR/v1/lockwait           locked (shared) by processes waiting for the lock,
//	                          so that the holder knows (Store.Contended)
//	DIR/v1/index/             badger: actions, last-use times, small blobs
//	DIR/v1/blobs/ab/abcd…     blobs larger than Options.BlobInline (32 KiB)
//	DIR/v1/tmp/               temporary files, renamed into blobs/ when complete
//	DIR/v1/uses.log           hits of Lookup stores, merged by the next writer
//	DIR/v1/journal.log        puts of Lookup stores, merged by the next writer
//	DIR/v1/keys.filter        a Bloom filter of the index's action keys, written by
//	                          writers as they close (absent while one is open)
//
// Index keys: "a/"+key → action record (JSON, version 1); "u/"+key → last
// use (8 bytes, big-endian Unix nanoseconds), written for a use an hour or
// more after the last one (an action without it, or with an older one, was
// last used when it was created); "b/"+digest → blob content.
// A future incompatible format lives beside v1 (v2/…), so older builds miss
// cleanly; FORMAT guards changes made within v1.
//
// # Invariants
//
//   - A blob is verified whenever it is read: bytes that do not hash to
//     their name are reported as ErrCorrupt (which also matches ErrNotFound:
//     corrupt content is a miss, never restored) and removed.
//   - A blob file appears under its digest only complete: it is written to
//     v1/tmp while being hashed, checked against the expected digest and
//     size, fsynced and renamed. A failed write (disk full, cancel, digest
//     mismatch) removes its temporary file and stores nothing.
//   - An action is written only after every blob it names is stored
//     (PutAction checks), or together with them: PutActionInline writes
//     the small blobs it is given and the action in one index
//     transaction, and in the journal an action and the inline blobs it
//     names are one line, written with one append and checked by a
//     checksum, so a line cut short is a miss, never a partial entry. A crash in between leaves only unreferenced blobs,
//     which GC removes. GetAction reports a miss, and drops the action, if a
//     named blob has gone.
//   - GC never removes a blob that a put in this session stored and no
//     stored action names yet (pins), so storing blobs and then the action
//     on one Store is safe against GC in another goroutine.
//   - One process holds a directory at a time for writing. Open waits for
//     the holder (Options.LockWait, Options.OnWait) and never shows badger's
//     lock error. The lock is flock(2) on v1/lock (LockFileEx on Windows),
//     taken before badger's own, so a killed holder releases it.
//   - Durability: blob files are fsynced; index writes are not synced.
//     Badger writes its log into a shared memory mapping, so an
//     acknowledged write survives the process being killed (tested by
//     killing a child process mid-write, TestKillSafety); after a power
//     loss the newest actions may be lost, which is a miss. The next Open
//     replays badger's log without any cleanup from the caller.
//   - Badger kills the process (SIGBUS) when it writes its mapped files on
//     a full disk, so index writes are refused with ErrNoSpace when less
//     than 16 MiB is free, and Open falls back to read-only below 4 MiB.
//   - Garbage in the index, in an action record or in FORMAT gives a clear
//     error (ErrCorrupt, ErrUnsupportedVersion) or a miss, never a panic
//     from this package. Index tables are checked before badger opens them,
//     since badger panics, in goroutines of its own, on a table whose footer
//     is damaged; damage deeper inside a table is badger's to report.
//
// # Index upkeep
//
// A writable session that wrote leaves one level-0 table behind (Close
// flushes the memtable), and badger's own compactor starts only after up to
// a second, which short sessions never reach; so Close compacts level 0
// once it has eight tables. A hit writes nothing unless the recorded last
// use is an hour old. GC flattens the index and runs value-log GC, so that
// deleted entries give their space back.
//
// Lock order inside a Store: dbMu, then pinMu, then usedMu; jnMu after dbMu. No callback
// (List's fn, Verify's report, GCOptions.Keep) runs inside an index
// transaction or under these locks.
package cas

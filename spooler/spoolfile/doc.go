// Package spoolfile reads and writes uWSGI spool files, byte for byte as
// uWSGI 2.0.21 does, so that gospool and uWSGI spoolers can share a spool
// directory in both directions.
//
// [Encode] and [Decode] are the codec. [Writer] creates files with uWSGI's
// names and write protocol. [Open] locks a file and reads it for running
// its task; [IsLocked] and [ReadFile] look without locking.
//
// # File format
//
// A spool file has a 4-byte header, a block of key/value pairs (the "vars")
// and an optional body running to the end of the file. All lengths are
// little-endian on every host. There is no magic, checksum or terminator.
//
//	offset 0   1        3   4                                        4+N      EOF
//	       +---+--------+---+----------------------------------------+--------+
//	       |x11| N u16le|x00| vars: N bytes                          | body   |
//	       +---+--------+---+----------------------------------------+--------+
//	                        | klen u16le | key | vlen u16le | value | ... repeated
//
// Keys are 1 to 65535 bytes, values 0 to 65535, the vars block at most
// [MaxVarsLen] bytes; the body is unlimited and has no length field. Pairs
// keep their order and keys may repeat. The special keys `priority` and `at`
// stay in the vars block; the body is what uWSGI's `body` key becomes.
// Example: {"hello": "world"} is
//
//	11 0e 00 00  05 00 68 65 6c 6c 6f  05 00 77 6f 72 6c 64
//
// # Locking
//
// uWSGI spoolers exclude each other with one thing only: a POSIX record
// write lock (fcntl F_SETLK) over the whole file, taken without waiting by a
// reader before it runs a task, and with waiting by a writer from just after
// create until close. This package takes the same locks, but as Linux
// open-file-description (OFD) locks, F_OFD_SETLK and F_OFD_SETLKW:
//
//   - OFD locks and classic fcntl locks conflict with each other, so uWSGI
//     and gospool exclude each other. flock() locks would not.
//   - Classic locks belong to the process and are all dropped when it closes
//     any descriptor of the file, e.g. a log or inspect helper that reads it.
//     OFD locks belong to the open file and are dropped only when the last
//     descriptor of that open file is closed.
//   - Two Files of one process exclude each other, so goroutines behave like
//     separate spooler processes.
//
// The kernel drops the lock of a process that dies, so a crashed task is run
// again by the next spooler: delivery is at least once.
//
// # Caveats
//
//   - Linux only for [Writer], [Open], [IsLocked] and [ReadFile] (OFD locks);
//     the codec builds everywhere.
//   - A reader can open a new file between its create and its lock and see 0
//     bytes; [Decode] then returns [ErrShortHeader] and the file must be kept.
//   - The modifier bytes are not checked, as uWSGI does not check them.
//   - [Decode] returns slices of its input, not copies.
//   - uWSGI compares the `at` mtime before taking the lock, so a spooler that
//     looks at a file before its mtime is set may run it early. Readers here
//     get [File.ModTime] after the lock and can check again.
//   - uWSGI uses `priority` as a directory name unchecked; gospool accepts
//     only digits.
//   - Record locks on NFS work only where NFS locking works.
package spoolfile

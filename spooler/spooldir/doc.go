// Package spooldir keeps track of the pending spool files of a spool
// directory the way a spooler needs them: which are due, in what order,
// and when the next one falls due, without rescanning the directory for
// every task.
//
// A full scan reads the directory once (at start, then every
// spooler-frequency seconds as a safety net); in between, inotify events
// keep the set current: a file that is closed after writing
// (IN_CLOSE_WRITE, which is also how a uWSGI spooler's lock is released),
// moved in, deleted or re-timed (IN_ATTRIB: `at` is the mtime). Taking the
// next due file is a heap operation, so the cost per task does not grow
// with the number of pending files.
//
// # uWSGI's rules
//
// Only names that start with "uwsgi_spoolfile_on_" are tasks. With Ordered
// set (uWSGI's --spooler-ordered), sub-directories whose names are all
// digits are priority directories, scanned too, lower numbers first; a task
// in DIR/5/ runs before one in DIR/10/, and both before the tasks at the top
// level (all-digit names sort before "uwsgi_" in uWSGI's versionsort). Without
// Ordered, priority directories are ignored, as uWSGI does. A file whose
// mtime is in the future (its `at`) is not due. Within one priority, files
// are taken oldest mtime first, then by name: a FIFO across writers, which
// uWSGI's order is not.
//
// # Concurrency
//
// A Dir is safe for concurrent use: its watcher goroutine updates the set
// while the spooler takes entries from it.
package spooldir

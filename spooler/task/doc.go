// Package task is gospool's task model: what a worker hands to a spooler.
//
// A [Task] is an ordered list of (key, value) byte pairs plus an optional
// body, exactly what uWSGI's spooler carries. Order is kept and duplicate keys
// are allowed, because uWSGI's file format allows them; lookups return the
// last value for a key, the way the Python dict that uWSGI builds does.
//
// The special keys keep uWSGI's meaning and have accessors:
//
//   - spooler: the spool directory that should run the task ([Task.Spooler]);
//   - priority: a numeric sub-directory, lower runs first ([Task.Priority]);
//   - at: a unix time before which the task must not run, "1700000000.5"
//     accepted as uWSGI accepts it ([Task.At]);
//   - body: raw bytes carried after the pairs ([Task.Body]).
//
// The [Result] values are uWSGI's SPOOL_OK, SPOOL_RETRY and SPOOL_IGNORE.
//
// # Concurrency
//
// A Task is a plain value: it is not safe for concurrent mutation, and the
// byte slices it holds may alias a buffer that the code that produced the task
// owns (see the decoders' documentation).
package task

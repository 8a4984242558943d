// Package worker is the worker side of gospool: what a process started by
// the gospool master gets ([Worker], from [Open]: the inherited listeners,
// [Worker.Spool] into the spool directories' rings, [Worker.Serve] for a
// graceful net/http server, request tracking for harakiri and max-requests),
// the contract between the master and its children (env.go: environment
// variables and descriptor numbers, for workers in any language), and a
// client for uWSGI's remote spool protocol, [SpoolRemote].
//
// # Remote spooling
//
// [SpoolRemote] sends a task to any uWSGI instance with a spooler and the
// spooler plugin (Debian: --plugin spooler) on one of its uwsgi-protocol
// sockets (--socket, not --http-socket), or to a gospool process serving
// spooler/remote. One connection per task, as uWSGI closes after each
// request. The request is a spool file without a body:
//
//	offset 0   1        3   4                                    4+N
//	       +---+--------+---+------------------------------------+
//	       |x11| N u16le|x00| vars: N bytes                      |
//	       +---+--------+---+------------------------------------+
//	                        | klen u16le | key | vlen u16le | value | ... repeated
//
// N must be at most the server's --buffer-size, 4096 by default: uWSGI
// closes the connection without a word on a bigger packet. The answer is
// exactly 4 bytes:
//
//	+---+-------+---+
//	|xff| 00 00 |x01|   stored
//	+---+-------+---+
//	|xff| 00 00 |x00|   refused (no such `spooler`, no spooler configured,
//	+---+-------+---+   or, from gospool, a Spool error or malformed vars)
//
// Example: {"hello": "world"} is sent as
//
//	11 0e 00 00  05 00 68 65 6c 6c 6f  05 00 77 6f 72 6c 64
//
// There is no body: uWSGI never reads past the vars block, so big data must
// go elsewhere (a shared store, with its key in the task). The special keys
// work as in a local spool call: `spooler` names the spool directory (the
// server's realpath of it, byte for byte), `priority` a numeric
// sub-directory, `at` a unix time before which the task does not run.
package worker

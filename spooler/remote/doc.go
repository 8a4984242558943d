// Package remote accepts uWSGI's remote spool requests, so that clients that
// spool to a uWSGI instance over the network (Perl's Net::uwsgi uwsgi_spool,
// gospool's worker.SpoolRemote, hand-written ones) can spool to gospool
// unchanged.
//
// [Server] serves the protocol on a [net.Listener]; [Listen] opens one from a
// uWSGI-style address and [SplitAddr] parses such an address. What happens
// to an accepted task (the `spooler` key, the ring, a spool file) is the
// business of [Server.Spool].
//
// # Protocol
//
// One request per connection, exactly as uWSGI 2.0.21's spooler plugin
// (plugins/spooler/spooler_plugin.c) and uwsgi protocol parser
// (proto/uwsgi.c) handle it. The client sends a packet with the same 4-byte
// header and vars block as a spool file, and no body:
//
//	offset 0   1        3   4                                    4+N
//	       +---+--------+---+------------------------------------+
//	       |x11| N u16le|m2 | vars: N bytes                      |  anything after 4+N is never read
//	       +---+--------+---+------------------------------------+
//	                        | klen u16le | key | vlen u16le | value | ... repeated
//
// modifier1 is 17 (0x11); modifier2 is ignored, as uWSGI ignores it. N is at
// most [Server.MaxPacket], uWSGI's --buffer-size (4096 by default). The
// server answers with exactly 4 bytes, a header with no vars, and closes:
//
//	+---+-------+---+
//	|xff| 00 00 |x01|   task stored
//	+---+-------+---+
//	|xff| 00 00 |x00|   task refused (Spool failed, or a vars block uWSGI's parser rejects)
//	+---+-------+---+
//
// Example: spooling {"hello": "world"} sends
//
//	11 0e 00 00  05 00 68 65 6c 6c 6f  05 00 77 6f 72 6c 64
//
// and a success is answered with ff 00 00 01.
//
// # Refusals
//
// Every refusal logs one line naming the peer and the reason. Like uWSGI,
// the server closes the connection without any reply when:
//
//   - modifier1 is not 17 (uWSGI: "-- unavailable modifier requested: %d --");
//   - N is over MaxPacket (uWSGI: "invalid request block size: %u (max
//     %u)...skip"), without reading the vars;
//   - the client closes, or takes longer than [Server.ReadTimeout], before
//     the whole packet has arrived. A client that closes before sending a
//     single byte (a port probe) is not logged.
//
// A complete packet whose vars block does not parse (a key length of 0, a
// key or value running past N, fewer than 3 bytes where a key starts, fewer
// than 2 for a value length: the rules of [spoolfile.Decode]) is answered
// with the failure reply. This is the one place where gospool differs from
// uWSGI on purpose: uWSGI 2.0.21 does not check the vars, writes the packet
// to a spool file and answers success, and its Python spooler later deletes
// that file as corrupt, so the client believes a task was stored that will
// never run.
//
// # Differences from uWSGI
//
//   - Malformed vars are refused, as explained above.
//   - uWSGI closes an idle connection after --socket-timeout (4 s by
//     default); the server's ReadTimeout defaults to 10 s.
//   - When the success reply cannot be written, uWSGI deletes the file it has
//     just written ("disconnected client, remove spool file."). The server
//     cannot take back what Spool stored, so it logs the lost reply: the
//     client, seeing no reply, may send the task again. Delivery is at least
//     once, as everywhere in gospool.
//   - After the reply the server shuts its side down and discards what the
//     client still sends, for up to a second, before closing. uWSGI closes at
//     once, which makes the kernel reset the connection when unread bytes
//     remain, and a reset can destroy the reply before the client reads it.
//   - [Listen] also takes "unix:/path"; uWSGI spells a unix socket as a bare
//     path.
package remote

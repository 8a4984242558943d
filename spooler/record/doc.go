// Package record is the byte format of a task inside the ring: msgpack, so
// that a Python producer with a small encoder of its own is a peer of the Go
// one.
//
// # Format
//
// A record is one msgpack array of three elements:
//
//	[ version , pairs , body ]
//	  version  positive fixint 1
//	  pairs    array of 2n bin values: key1, value1, key2, value2, ...
//	           (an array, not a map: order and duplicate keys are kept)
//	  body     bin, or nil when the task has no body
//
//	example: {"task": "resize"}, no body
//	93 01 92 c4 04 74 61 73 6b c4 06 72 65 73 69 7a 65 c0
//	|  |  |  '-- bin8 len 4 "task"  '-- bin8 len 6 "resize"  '-- nil
//	|  |  '-- array of 2
//	|  '-- version 1
//	'-- array of 3
//
// Producers must write keys and values as msgpack bin (0xc4-0xc6); the
// decoder also accepts str (0xa0-0xbf, 0xd9-0xdb) so that a producer in a
// language whose msgpack library prefers str still works. Integrity is the
// ring's job (a CRC-32 per record), not this format's.
package record

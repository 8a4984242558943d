// Command stamp is the --spooler-exec command of the pickup latency test. It
// reads CLOCK_MONOTONIC before anything else, then reads the task's JSON on
// standard input and appends "<id> <t0> <now> gospool" to the file
// $INTEROP_OUT, where t0 is the task's "t0" var: the producer's
// CLOCK_MONOTONIC, in nanoseconds, just before its spool call.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// start is taken while the package initialises, before main.
var start = monotonic()

func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

func main() {
	var doc struct {
		Vars [][2]json.RawMessage `json:"vars"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&doc); err != nil {
		fail(err)
	}
	vars := map[string]string{}
	for _, kv := range doc.Vars {
		var k, v string
		// Non-string (base64) pairs are not ours: skip them.
		if json.Unmarshal(kv[0], &k) == nil && json.Unmarshal(kv[1], &v) == nil {
			vars[k] = v
		}
	}
	line := fmt.Sprintf("%s %s %d gospool\n", vars["id"], vars["t0"], start)
	f, err := os.OpenFile(os.Getenv("INTEROP_OUT"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fail(err)
	}
	if _, err := f.WriteString(line); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stamp:", err)
	os.Exit(1)
}

// Command worker is a Go worker of the chaos harness (internal/chaos),
// started by the gospool master through --worker-cmd. It spools tasks with
// unique ids through worker.Spool in small bursts while the file
// $CHAOS_LOGS/stop does not exist, and idles while it does. It records
// in $CHAOS_LOGS/producer-go<ID>.log, as testdata/producer.py does:
//
//	I ID      before the first spool call of the task
//	S ID      before each spool call of it
//	A ID W    after Spool returned nil: the task is acknowledged; W is
//	          where it went, "ring" or "file"
//	E ID ...  Spool returned an error (then it spools the task again)
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gospool/gospool/spooler/task"
	"github.com/gospool/gospool/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos worker:", err)
		os.Exit(1)
	}
}

func run() error {
	w, err := worker.Open()
	if err != nil {
		return err
	}
	logs := os.Getenv("CHAOS_LOGS")
	seed, _ := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64)
	name := "go" + strconv.Itoa(w.ID())
	log, err := os.OpenFile(filepath.Join(logs, "producer-"+name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	rec := func(kind, id, extra string) {
		// One write per line: O_APPEND keeps lines of killed writers whole.
		if _, err := log.WriteString(kind + " " + id + extra + "\n"); err != nil {
			panic(err)
		}
	}
	rnd := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	prefix := fmt.Sprintf("%s.%d.%08x", name, os.Getpid(), rnd.Uint32())
	stop := filepath.Join(logs, "stop")
	ctx := context.Background()
	for seq := 1; ; {
		if _, err := os.Stat(stop); err == nil {
			time.Sleep(50 * time.Millisecond) // no load now (before and after the chaos)
			continue
		}
		time.Sleep(time.Duration(60+rnd.IntN(140)) * time.Millisecond)
		for range 1 + rnd.IntN(6) {
			id := prefix + "." + strconv.Itoa(seq)
			seq++
			t := newTask(rnd, id)
			rec("I", id, "")
			for {
				rec("S", id, "")
				file, err := w.Spool(ctx, t)
				if err != nil {
					rec("E", id, " "+strconv.Quote(err.Error()))
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if file == "" {
					rec("A", id, " ring")
				} else {
					rec("A", id, " file")
				}
				break
			}
		}
	}
}

// newTask makes a task as producer.py does: id, data of a random size (now
// and then too big for a lane of the harness's ring), a body one time in
// five, and sum, the first 16 hex digits of SHA-256 over id, data and body.
func newTask(rnd *rand.Rand, id string) *task.Task {
	n := 1 + rnd.IntN(400)
	if rnd.IntN(10) == 0 {
		n = []int{8, 40, 200, 900, 1500, 2500}[rnd.IntN(6)]
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	var body []byte
	if rnd.IntN(5) == 0 {
		body = make([]byte, 1+rnd.IntN(300))
		for i := range body {
			body[i] = byte(rnd.Uint32())
		}
	}
	h := sha256.New()
	h.Write([]byte(id))
	h.Write(data)
	h.Write(body)
	t := &task.Task{Body: body}
	t.Add("id", []byte(id))
	t.Add("data", data)
	t.Add("sum", []byte(hex.EncodeToString(h.Sum(nil))[:16]))
	return t
}

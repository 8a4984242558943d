package chaos

import (
	"slices"
	"testing"
)

// The accounting itself, on made-up logs: each rule of analyze catches what
// it should and lets through what it should, so that a clean chaos run
// means something.
func TestAnalyze(t *testing.T) {
	r := newRecords()
	for _, l := range []string{
		"I ok", "S ok", "A ok ring",
		"I lost", "S lost", "A lost file",
		"I dead", "S dead", "A dead file",
		"I unacked", "S unacked", // killed in its spool call: may or may not run
		"I bad", "S bad", "A bad ring",
		"I bykill", "S bykill", "A bykill ring",
		"I byspooler", "S byspooler", "A byspooler ring",
		"I bymaster", "S bymaster", "A bymaster ring",
		"I retried", "S retried", "S retried", "A retried ring",
		"I erred", "S erred", `E erred "msync: input/output error"`, "S erred", "A erred ring",
		"I early", "S early", "A early ring",
		"I twice", "S twice", "A twice ring",
		"I settling", "S settling", "A settling ring",
		"I", // a torn line
	} {
		r.producerLine(l)
	}
	for _, l := range []string{
		"D ok 10 1 100 110 ok",
		"D unacked 10 1 100 110 ok",
		"D bad 10 1 100 110 bad",
		"D stranger 10 1 100 110 ok",
		"D bykill 11 1 100 110 ok", "D bykill 12 2 200 210 ok",
		"D byspooler 13 3 100 110 ok", "D byspooler 14 4 200 210 ok",
		"D bymaster 15 5 100 110 ok", "D bymaster 16 6 300 310 ok",
		"D retried 17 7 100 110 ok", "D retried 18 8 200 210 ok",
		"D erred 19 9 100 110 ok", "D erred 20 9 200 210 ok",
		"D early 21 9 100 110 ok", "D early 22 9 200 210 ok",
		"D twice 23 9 100 110 ok", "D twice 23 9 200 210 ok", "D twice 24 9 220 230 ok",
		// settling failed once in spooler 30, killed while it settled that
		// attempt: the retry file and the ring record both ran.
		"F settling 29 30 50", "D settling 31 32 100 110 ok", "D settling 31 32 200 210 ok",
		"D half", // a torn line
	} {
		r.runLine(l)
	}
	killedAt := map[int]int64{
		11: 150, // killed after its run of bykill started: the rerun is explained
		3:  50,  // the spooler of byspooler's first run, killed even before that run
		21: 50,  // killed before early ran: it cannot have run it
		30: 60,  // the spooler of settling's failed attempt, mid-settle
	}
	// Between bymaster's runs; after the second run of every other task.
	masterKills := []int64{250}
	v := analyze(r, killedAt, masterKills, map[string]bool{"dead": true})

	if want := []string{"lost"}; !slices.Equal(v.Lost, want) {
		t.Errorf("lost %v, want %v", v.Lost, want)
	}
	if len(v.Torn) != 3 { // bad's checksum, stranger's id, the torn run line
		t.Errorf("torn %q, want 3", v.Torn)
	}
	if v.DupByKill != 4 || v.DupByException != 1 {
		t.Errorf("explained by a kill %d (want 4: bykill, byspooler, bymaster, settling), by an exception %d (want 1: retried)", v.DupByKill, v.DupByException)
	}
	// erred: retried after an error; early: killed before its first run;
	// twice: two extra runs in a live process.
	if len(v.Unexplained) != 4 {
		t.Errorf("unexplained %q, want 4 (erred, early, twice twice)", v.Unexplained)
	}
	if len(v.ProducerErrors) != 1 || r.torn != 1 || r.viaRing != 10 {
		t.Errorf("producer errors %q (want erred), torn producer lines %d (want 1), acked via the ring %d (want 10)", v.ProducerErrors, r.torn, r.viaRing)
	}
	if v.Acked != 12 || v.Produced != 13 {
		t.Errorf("acked %d produced %d, want 12 and 13", v.Acked, v.Produced)
	}
}

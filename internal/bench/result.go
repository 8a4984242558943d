package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Options are what one measurement asks of every implementation measured.
type Options struct {
	// Producers is how many producer processes spool the tasks.
	Producers int
	// Tasks is the total number of tasks, across all producers.
	Tasks int
	// Rate is tasks per second across all producers; 0 is back to back.
	Rate float64
	// Python makes the producers Python processes (else Go).
	Python bool
}

// Validate reports a mistake in o.
func (o Options) Validate() error {
	switch {
	case o.Producers < 1:
		return fmt.Errorf("producers %d: want 1 or more", o.Producers)
	case o.Tasks < 1:
		return fmt.Errorf("tasks %d: want 1 or more", o.Tasks)
	case o.Tasks < o.Producers:
		return fmt.Errorf("tasks %d is fewer than producers %d: every producer needs a task", o.Tasks, o.Producers)
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("rate %v: want 0 (back to back) or more tasks per second", o.Rate)
	}
	return nil
}

// TasksOf is how many tasks producer k (from 0) sends: Tasks split as
// evenly as it goes. Producer k sends the tasks numbered k, k+P, k+2P...
// (P producers), so that the numbers 0..Tasks-1 are each sent once and,
// when paced, the producers take turns.
func (o Options) TasksOf(k int) int {
	n := o.Tasks / o.Producers
	if k < o.Tasks%o.Producers {
		n++
	}
	return n
}

// Intended is when task number n is due, when paced: start + n/Rate
// seconds, on CLOCK_MONOTONIC in nanoseconds.
func (o Options) Intended(start int64, n int) int64 {
	return start + int64(float64(n)*1e9/o.Rate)
}

// Sample is one task as the spooler's handler saw it. Times are
// CLOCK_MONOTONIC in nanoseconds, comparable across the processes of one
// machine.
type Sample struct {
	// N is the task's number, 0..Tasks-1.
	N int
	// T0 is the producer's clock just before its spool call.
	T0 int64
	// Handled is the handler's clock at its first line.
	Handled int64
	// Delay is the coordinated-omission correction the producer computed
	// (see the package documentation): how long the spool calls before
	// this task held its send back past the task's intended time. Always 0
	// back to back.
	Delay int64
}

// Handoff is the hand-off latency summary, in nanoseconds.
type Handoff struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

// SpoolCall is the spool call's duration summary, in nanoseconds.
type SpoolCall struct {
	P50 int64 `json:"p50"`
	P99 int64 `json:"p99"`
}

// Result is the measurement of one implementation: one object of
// `gospool bench --json`. The first eight fields are the command line
// contract (docs/design.md); the others are extras.
type Result struct {
	// Impl is "gospool" or "uwsgi".
	Impl       string    `json:"impl"`
	Producers  int       `json:"producers"`
	Tasks      int       `json:"tasks"`
	Rate       float64   `json:"rate"`
	Handoff    Handoff   `json:"handoff_ns"`
	SpoolCall  SpoolCall `json:"spool_call_ns"`
	Throughput float64   `json:"throughput_per_s"`

	// Language is the producers' language: "go" or "python".
	Language string `json:"producer_lang"`
	// Measured is how many distinct tasks the handler saw: Tasks, unless
	// the run went wrong.
	Measured int `json:"measured"`
	// Delayed is how many of them carry a coordinated-omission correction
	// (their producer was late for them because of earlier spool calls).
	Delayed int `json:"co_delayed"`
	// Spilled is how many tasks went through spool files instead of the
	// ring (gospool only; a uWSGI run spools every task to a file).
	Spilled int64 `json:"spilled,omitempty"`

	// The full distributions, for plots: one value per task, in
	// nanoseconds, from 1 ns to an hour at 3 significant digits.
	HandoffHist   *hdrhistogram.Histogram `json:"-"`
	SpoolCallHist *hdrhistogram.Histogram `json:"-"`
}

// The histograms' range: 1 ns to an hour, 3 significant digits. Values
// above are recorded as an hour.
const (
	histLowest  = 1
	histHighest = 3600 * 1e9
	histDigits  = 3
)

// NewHistogram returns an empty histogram of the range the results use.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

func record(h *hdrhistogram.Histogram, v int64) {
	h.RecordValue(min(max(v, 0), histHighest)) // in range: never fails
}

// Summarize builds impl's result from the handler's samples and the
// producers' spool-call durations (nanoseconds, any order). A task seen
// twice (a spooler died while running it, and it ran again) counts once,
// with its first run. Samples of task numbers outside 0..Tasks-1 are an
// error.
func Summarize(impl string, o Options, samples []Sample, calls []int64) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, errors.New("no task was handled")
	}
	r := &Result{Impl: impl, Producers: o.Producers, Tasks: o.Tasks, Rate: o.Rate, Language: "go",
		HandoffHist: NewHistogram(), SpoolCallHist: NewHistogram()}
	if o.Python {
		r.Language = "python"
	}
	seen := make([]bool, o.Tasks)
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range samples {
		if s.N < 0 || s.N >= o.Tasks {
			return nil, fmt.Errorf("task number %d: want 0 to %d", s.N, o.Tasks-1)
		}
		if seen[s.N] {
			continue
		}
		seen[s.N] = true
		r.Measured++
		if s.Delay > 0 {
			r.Delayed++
		}
		record(r.HandoffHist, s.Handled-s.T0+max(s.Delay, 0))
		first = min(first, s.T0)
		last = max(last, s.Handled)
	}
	for _, c := range calls {
		record(r.SpoolCallHist, c)
	}
	h := r.HandoffHist
	r.Handoff = Handoff{P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	r.SpoolCall = SpoolCall{P50: r.SpoolCallHist.ValueAtQuantile(50), P99: r.SpoolCallHist.ValueAtQuantile(99)}
	// From the first task spooled to the last one handled; at least 1 ns.
	r.Throughput = float64(r.Measured) / (float64(max(last-first, 1)) / 1e9)
	return r, nil
}

// WriteJSON prints the results as the contract's JSON list.
func WriteJSON(w io.Writer, results []*Result) error {
	if results == nil {
		results = []*Result{}
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable prints the results as a table, one line per implementation,
// with units chosen for each value.
func WriteTable(w io.Writer, results []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "impl\tproducers\ttasks\trate\tp50\tp90\tp99\tp99.9\tmax\tcall p50\tcall p99\tthroughput")
	for _, r := range results {
		rate := "0"
		if r.Rate > 0 {
			rate = strconv.FormatFloat(r.Rate, 'f', -1, 64) + "/s"
		}
		h, c := r.Handoff, r.SpoolCall
		fmt.Fprintf(tw, "%s\t%d %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Impl, r.Producers, r.Language, r.Tasks, rate,
			Duration(h.P50), Duration(h.P90), Duration(h.P99), Duration(h.P999), Duration(h.Max),
			Duration(c.P50), Duration(c.P99), PerSecond(r.Throughput))
	}
	return tw.Flush()
}

// Duration formats ns with 3 significant digits and the unit that reads
// best: 850ns, 12.3µs, 2.31ms, 1.20s.
func Duration(ns int64) string {
	v := float64(ns)
	switch {
	case ns < 1000:
		return strconv.FormatInt(ns, 10) + "ns"
	case v < 999.5e3:
		return sig3(v/1e3) + "µs"
	case v < 999.5e6:
		return sig3(v/1e6) + "ms"
	}
	return sig3(v/1e9) + "s"
}

// PerSecond formats a rate with 3 significant digits: 850/s, 12.3k/s,
// 1.20M/s.
func PerSecond(v float64) string {
	switch {
	case v < 999.5:
		return sig3(v) + "/s"
	case v < 999.5e3:
		return sig3(v/1e3) + "k/s"
	}
	return sig3(v/1e6) + "M/s"
}

// sig3 prints v (>= 0) with 3 significant digits, or as an integer from
// 100 on.
func sig3(v float64) string {
	switch {
	case v < 9.995:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 99.95:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strings.TrimSuffix(strconv.FormatFloat(math.Round(v), 'f', 0, 64), ".")
}

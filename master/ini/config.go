package ini

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Config is what gospool understands of a uWSGI configuration, with the
// rest reported. Keys are matched exactly, as uWSGI 2.0 matches them.
type Config struct {
	Spoolers         []string // spooler, in order
	ExternalSpoolers []string // spooler-external
	SpoolerProcesses int      // spooler-processes (0 = unset)
	SpoolerFrequency *float64 // spooler-frequency, spooler-freq: seconds; may be fractional here
	SpoolerOrdered   bool
	SpoolerQuiet     bool
	SpoolerMaxTasks  int
	SpoolerHarakiri  int // seconds
	SpoolerChdir     string
	SpoolerImports   []string // spooler-import, spooler-pyimport, spooler-py-import, spooler-python-import
	Processes        int      // processes, workers
	Harakiri         int
	Master           bool
	Sockets          []string // socket, uwsgi-socket
	HTTPSockets      []string // http-socket
	DieOnTerm        bool
	BufferSize       int // buffer-size; above 65535 it is 65535, as in uWSGI
	MaxRequests      int
	ReloadMercy      int
	Stats            string   // stats, stats-server: the stats server's address
	Unsupported      []Option // every other option, in order (the caller warns once per key)
}

// Ignored lists the options Parse accepts silently because they mean
// nothing for gospool, so warning about them would be noise. They appear
// neither in Config nor in Unsupported.
var Ignored = map[string]string{
	"plugin":             "gospool has no plugins; Python tasks run through spooler-import",
	"plugins":            "gospool has no plugins; Python tasks run through spooler-import",
	"need-plugin":        "gospool has no plugins; Python tasks run through spooler-import",
	"need-plugins":       "gospool has no plugins; Python tasks run through spooler-import",
	"enable-threads":     "it enables the GIL for threads in uWSGI's embedded Python; gospool embeds no interpreter",
	"single-interpreter": "it concerns uWSGI's embedded Python sub-interpreters; gospool embeds no interpreter",
	"thunder-lock":       "it serialises accept() among uWSGI's workers; gospool has no accept thundering herd to avoid",
	"stats-http":         "gospool's stats server speaks HTTP and raw JSON on the same address",
	"vacuum":             "gospool removes a stale unix socket before it binds and its listener unlinks the socket on close; it writes no pidfile",
}

type setter func(c *Config, o Option) error

var fields = map[string]setter{
	"spooler":               strs(func(c *Config) *[]string { return &c.Spoolers }),
	"spooler-external":      strs(func(c *Config) *[]string { return &c.ExternalSpoolers }),
	"spooler-processes":     count(func(c *Config) *int { return &c.SpoolerProcesses }, math.MaxInt32),
	"spooler-frequency":     frequency,
	"spooler-freq":          frequency,
	"spooler-ordered":       flag(func(c *Config) *bool { return &c.SpoolerOrdered }),
	"spooler-quiet":         flag(func(c *Config) *bool { return &c.SpoolerQuiet }),
	"spooler-max-tasks":     count(func(c *Config) *int { return &c.SpoolerMaxTasks }, math.MaxInt32),
	"spooler-harakiri":      count(func(c *Config) *int { return &c.SpoolerHarakiri }, math.MaxInt32),
	"spooler-chdir":         func(c *Config, o Option) error { c.SpoolerChdir = o.Value; return nil },
	"spooler-import":        strs(func(c *Config) *[]string { return &c.SpoolerImports }),
	"spooler-pyimport":      strs(func(c *Config) *[]string { return &c.SpoolerImports }),
	"spooler-py-import":     strs(func(c *Config) *[]string { return &c.SpoolerImports }),
	"spooler-python-import": strs(func(c *Config) *[]string { return &c.SpoolerImports }),
	"processes":             count(func(c *Config) *int { return &c.Processes }, math.MaxInt32),
	"workers":               count(func(c *Config) *int { return &c.Processes }, math.MaxInt32),
	"harakiri":              count(func(c *Config) *int { return &c.Harakiri }, math.MaxInt32),
	"master":                flag(func(c *Config) *bool { return &c.Master }),
	"socket":                strs(func(c *Config) *[]string { return &c.Sockets }),
	"uwsgi-socket":          strs(func(c *Config) *[]string { return &c.Sockets }),
	"http-socket":           strs(func(c *Config) *[]string { return &c.HTTPSockets }),
	"die-on-term":           flag(func(c *Config) *bool { return &c.DieOnTerm }),
	"buffer-size":           count(func(c *Config) *int { return &c.BufferSize }, 65535),
	"max-requests":          count(func(c *Config) *int { return &c.MaxRequests }, math.MaxInt),
	"reload-mercy":          count(func(c *Config) *int { return &c.ReloadMercy }, math.MaxInt32),
	"stats":                 str(func(c *Config) *string { return &c.Stats }),
	"stats-server":          str(func(c *Config) *string { return &c.Stats }),
}

// Parse maps options to Config. Lists keep every value in order; for a
// single value the last one wins, as in uWSGI. A value that is not a whole
// number, a negative number or a bool that is none of true, false, yes, no,
// on, off, 1, 0 (any case; an empty value, a bare key, is true) is an
// [*Error] naming the file, line, option and value. uWSGI itself would read
// such a value with atoi or as true. Every bad value is reported, not only
// the first: the error is then an [errors.Join] of one [*Error] per line,
// in order, and the Config returned with it holds what the other lines set
// (its Unsupported list is complete, for the caller's warnings).
func Parse(opts []Option) (Config, error) {
	var c Config
	var errs []error
	for _, o := range opts {
		if _, ok := Ignored[o.Key]; ok {
			continue
		}
		set, ok := fields[o.Key]
		if !ok {
			c.Unsupported = append(c.Unsupported, o)
			continue
		}
		if err := set(&c, o); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...) // nil without errs
}

func strs(f func(*Config) *[]string) setter {
	return func(c *Config, o Option) error {
		p := f(c)
		*p = append(*p, o.Value)
		return nil
	}
}

// str keeps the last value.
func str(f func(*Config) *string) setter {
	return func(c *Config, o Option) error {
		*f(c) = o.Value
		return nil
	}
}

// count parses a whole number >= 0; values above max become max.
func count(f func(*Config) *int, max int) setter {
	return func(c *Config, o Option) error {
		n, err := strconv.ParseInt(o.Value, 10, 64)
		switch {
		case err != nil && n == 0:
			return lineErr(o, "want a whole number")
		case n < 0:
			return lineErr(o, "must not be negative")
		case err != nil || n > int64(max):
			n = int64(max)
		}
		*f(c) = int(n)
		return nil
	}
}

func flag(f func(*Config) *bool) setter {
	return func(c *Config, o Option) error {
		switch strings.ToLower(o.Value) {
		case "", "true", "yes", "on", "1":
			*f(c) = true
		case "false", "no", "off", "0":
			*f(c) = false
		default:
			return lineErr(o, "want true or false (also yes/no, on/off, 1/0)")
		}
		return nil
	}
}

func frequency(c *Config, o Option) error {
	s, err := strconv.ParseFloat(o.Value, 64)
	switch {
	case err != nil || math.IsNaN(s) || math.IsInf(s, 0):
		return lineErr(o, "want a number of seconds")
	case s < 0:
		return lineErr(o, "must not be negative")
	}
	c.SpoolerFrequency = &s
	return nil
}

// Hint says what an unsupported key probably meant, for the caller's
// warning; "" when nothing comes close. uWSGI matches ini keys exactly: no
// case folding, '_' is not '-', and the one-letter command line forms (-p,
// -s, -b, -Q) are not ini keys, so uWSGI 2.0 ignores such a key too. A key
// one or two edits (a byte inserted, deleted, changed, or two neighbours
// swapped) from a known option is taken for a typo of it, unless it is a
// real uWSGI option itself.
func Hint(key string) string {
	short := map[string]string{"p": "processes", "s": "socket", "b": "buffer-size", "Q": "spooler"}
	want, ok := short[key]
	if !ok {
		want = strings.ReplaceAll(strings.ToLower(key), "_", "-")
	}
	_, known := fields[want]
	_, ign := Ignored[want]
	switch {
	case want == key && (known || ign):
		return ""
	case known || ign:
		return "uWSGI 2.0 ignores " + strconv.Quote(key) + " in ini files too; did you mean " + strconv.Quote(want) + "?"
	}
	if near := closest(want); len(near) > 0 {
		return "uWSGI 2.0 ignores " + strconv.Quote(key) + " too; " + didYouMean(near)
	}
	return ""
}

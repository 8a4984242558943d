package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// The files of a uWSGI run in the session directory (WriteUWSGI).
const (
	// UWSGIIni is uWSGI's configuration.
	UWSGIIni       = "uwsgi.ini"
	uwsgiProducer  = "uwsgi_producer.py" // producer.py, spooling with uwsgi.spool
	uwsgiHandler   = "bench_handler.py"  // the spooler callable
	fileUWSGIWarm  = "warmed"            // the callable has run every warm-up task
	uwsgiSocket    = "uwsgi.sock"
	uwsgiHandlerPy = `# The spooler callable of gospool bench --against-uwsgi: the same
# recording as bench.Recorder.Handle in Go (see internal/bench).
import os
import time

import uwsgi

DIR = os.environ["GOSPOOL_BENCH_DIR"]
TASKS = int(os.environ["GOSPOOL_BENCH_TASKS"])
PRODUCERS = int(os.environ["GOSPOOL_BENCH_PRODUCERS"])

_seen = set()
_samples = []
_warm = [0]


def _write_atomic(name, data):
    p = os.path.join(DIR, name)
    with open(p + ".tmp", "wb") as f:
        f.write(data)
    os.rename(p + ".tmp", p)


def _get(env, key):
    v = env.get(key.encode())
    if v is None:
        v = env.get(key)
    return v


def handler(env):
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    try:
        if _get(env, "warmup") is not None:
            _warm[0] += 1
            if _warm[0] == PRODUCERS:
                _write_atomic("warmed", b"1\n")
            return uwsgi.SPOOL_OK
        try:
            n = int(_get(env, "n"))
            t0 = int(_get(env, "t0"))
            d = int(_get(env, "d"))
        except (TypeError, ValueError):
            return uwsgi.SPOOL_OK  # not a task of this session
        if n < 0 or n >= TASKS or n in _seen:
            return uwsgi.SPOOL_OK
        _seen.add(n)
        _samples.append(b"%d %d %d %d\n" % (n, t0, now, d))
        if len(_samples) == TASKS:
            _write_atomic("handoffs", b"".join(_samples))
    except Exception as e:
        _write_atomic("error-spooler", (" ".join(("%s: %s" % (type(e).__name__, e)).split()) + "\n").encode())
    return uwsgi.SPOOL_OK


uwsgi.spooler = handler
`
)

// uwsgiProducerScript is producer.py with uWSGI's spool call: it runs in a
// uWSGI mule, whose number (from 1) stands for GOSPOOL_ID.
func uwsgiProducerScript() ([]byte, error) {
	s := pythonProducer
	for _, r := range [][2]string{
		{`K = int(os.environ["GOSPOOL_ID"]) - 1`, "import uwsgi\n\nK = uwsgi.mule_id() - 1"},
		{"    import gospool\n    spool = gospool.spool\n", "    spool = uwsgi.spool\n"},
	} {
		if !bytes.Contains(s, []byte(r[0])) {
			return nil, fmt.Errorf("bench: producer.py has no %q to replace for uWSGI", r[0])
		}
		s = bytes.Replace(s, []byte(r[0]), []byte(r[1]), 1)
	}
	return s, nil
}

// WriteUWSGI writes a uWSGI 2.0 configuration measuring uWSGI's spooler
// the way a gospool run is measured: o.Producers mules running
// producer.py with uwsgi.spool, one spooler on the session's spool
// directory whose callable records the tasks as Recorder does. uWSGI's
// spooler scans its directory every spooler-frequency seconds when idle
// (default 30): it is set to 1, its smallest. It returns the ini's path;
// uWSGI needs the environment of UWSGIEnv.
func (s *Session) WriteUWSGI(o Options) (string, error) {
	prod, err := uwsgiProducerScript()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.SpoolDir(), 0o700); err != nil {
		return "", err
	}
	q := func(name string) string { return filepath.Join(s.Dir, name) }
	ini := "; gospool bench --against-uwsgi\n[uwsgi]\n" +
		"plugins = python3\n" +
		"master = true\n" +
		"socket = " + q(uwsgiSocket) + "\n" +
		"processes = 1\n" +
		"disable-logging = true\n" +
		"spooler = " + s.SpoolDir() + "\n" +
		"spooler-processes = 1\n" +
		"spooler-frequency = 1\n" +
		"spooler-quiet = true\n" +
		"spooler-import = " + q(uwsgiHandler) + "\n" +
		"pythonpath = " + s.Dir + "\n"
	for range o.Producers {
		ini += "mule = " + q(uwsgiProducer) + "\n"
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{uwsgiProducer, prod}, {uwsgiHandler, []byte(uwsgiHandlerPy)}, {UWSGIIni, []byte(ini)}} {
		if err := os.WriteFile(q(f.name), f.b, 0o600); err != nil {
			return "", err
		}
	}
	return q(UWSGIIni), nil
}

// UWSGIEnv is the environment of the uWSGI run beyond the caller's.
func UWSGIEnv(dir string, o Options) []string {
	return append([]string{EnvDir + "=" + dir}, PythonEnv(o)...)
}

// UWSGIWarm reports whether uWSGI's spooler has run every producer's
// warm-up task.
func (s *Session) UWSGIWarm() bool {
	_, err := os.Stat(filepath.Join(s.Dir, fileUWSGIWarm))
	return err == nil
}

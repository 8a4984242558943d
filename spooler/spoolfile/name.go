package spoolfile

import (
	"strconv"
	"time"
)

// Name builds a spool file name the way uWSGI does:
//
//	uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rnd>_<sec>_<usec>
//
// All numbers are decimal without padding, sec and usec are now's Unix time.
// The format matters beyond looks: --spooler-ordered sorts names with
// versionsort, i.e. by host, then pid, then counter.
func Name(host string, pid int, counter uint64, rnd int32, now time.Time) string {
	b := make([]byte, 0, len(Prefix)+len(host)+64)
	b = append(b, Prefix...)
	b = append(b, host...)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '_')
	b = strconv.AppendUint(b, counter, 10)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(rnd), 10)
	b = append(b, '_')
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10)
	return string(b)
}

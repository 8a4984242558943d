package stats

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gospool/gospool/master/scoreboard"
	"github.com/gospool/gospool/spooler/ring"
)

// ringCounters are the ring header's counters, exported as
// gospool_tasks_NAME_total{dir}.
var ringCounters = []struct {
	name, help string
	get        func(*ring.Stats) uint64
}{
	{"spooled", "Tasks published into the spool directory's ring.", func(s *ring.Stats) uint64 { return s.Spooled }},
	{"spilled", "Tasks written as spool files instead of into the ring (lane full, task too large, no free lane).", func(s *ring.Stats) uint64 { return s.Spilled }},
	{"done", "Tasks whose handler succeeded (SPOOL_OK), from the ring or from spool files.", func(s *ring.Stats) uint64 { return s.Done }},
	{"retried", "Failed task attempts written back as spool files for a later attempt (SPOOL_RETRY).", func(s *ring.Stats) uint64 { return s.Retried }},
	{"failed", "Task attempts whose handler returned an error or panicked (also counted in retried or dead).", func(s *ring.Stats) uint64 { return s.Failed }},
	{"ignored", "Tasks no handler took (SPOOL_IGNORE), kept as spool files for another spooler.", func(s *ring.Stats) uint64 { return s.Ignored }},
	{"corrupt", "Ring records that failed a CRC or bounds check, dropped.", func(s *ring.Stats) uint64 { return s.Corrupt }},
	{"dead", "Tasks moved to the dead letters (gospool-dead/) after their last retry.", func(s *ring.Stats) uint64 { return s.Dead }},
}

var (
	taskDescs     []*prometheus.Desc
	inFlightDesc  = prometheus.NewDesc("gospool_tasks_in_flight", "Tasks claimed from the ring by a spooler and not settled yet.", []string{"dir"}, nil)
	fillDesc      = prometheus.NewDesc("gospool_ring_fill_ratio", "Fraction of the ring's payload space held by ready and claimed records, 0 to 1.", []string{"dir"}, nil)
	recordsDesc   = prometheus.NewDesc("gospool_ring_records", "Records in the ring now, by state: ready (waiting for a spooler) or claimed (running).", []string{"dir", "state"}, nil)
	filesDesc     = prometheus.NewDesc("gospool_spool_files", "uWSGI spool files waiting in the spool directory, by state: due (their at has come) or scheduled (for later).", []string{"dir", "state"}, nil)
	handoffDesc   = prometheus.NewDesc("gospool_handoff_latency_seconds", "How long ring tasks waited from their producer's publish to the start of their handler, since the master started.", []string{"dir"}, nil)
	respawnsDesc  = prometheus.NewDesc("gospool_process_respawns", "Respawns of the process of this role and number (and spool directory, for spoolers) since the master started.", []string{"role", "number", "dir"}, nil)
	reloadsDesc   = prometheus.NewDesc("gospool_master_reloads_total", "Graceful reloads (SIGHUP) of the master.", nil, nil)
	processesDesc = prometheus.NewDesc("gospool_processes", "Child processes alive now, by role and state (running, stopping, recycling).", []string{"role", "state"}, nil)
)

func init() {
	for _, c := range ringCounters {
		taskDescs = append(taskDescs, prometheus.NewDesc("gospool_tasks_"+c.name+"_total", c.help, []string{"dir"}, nil))
	}
}

// collector reads everything at scrape time: the ring headers, the spool
// directories and the scoreboard. It keeps no state between scrapes.
type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range taskDescs {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{inFlightDesc, fillDesc, recordsDesc, filesDesc, handoffDesc, respawnsDesc, reloadsDesc, processesDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	sn, ok := c.s.read()
	if !ok {
		return
	}
	for _, d := range sn.dirs {
		if st := d.ring; st != nil {
			for i, rc := range ringCounters {
				ch <- prometheus.MustNewConstMetric(taskDescs[i], prometheus.CounterValue, float64(rc.get(st)), d.dir)
			}
			ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(st.InFlight), d.dir)
			ch <- prometheus.MustNewConstMetric(fillDesc, prometheus.GaugeValue, st.Fill, d.dir)
			ch <- prometheus.MustNewConstMetric(recordsDesc, prometheus.GaugeValue, float64(st.Ready), d.dir, "ready")
			ch <- prometheus.MustNewConstMetric(recordsDesc, prometheus.GaugeValue, float64(st.Claimed), d.dir, "claimed")
		}
		ch <- prometheus.MustNewConstMetric(filesDesc, prometheus.GaugeValue, float64(d.files.Due), d.dir, "due")
		ch <- prometheus.MustNewConstMetric(filesDesc, prometheus.GaugeValue, float64(d.files.Scheduled), d.dir, "scheduled")
		buckets := make(map[float64]uint64, len(scoreboard.HandoffBounds))
		var cum uint64
		for i, b := range scoreboard.HandoffBounds {
			cum += d.handoff.Counts[i]
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(handoffDesc, d.handoff.Count(), d.handoff.Sum.Seconds(), buckets, d.dir)
	}
	if c.s.src.Board != nil {
		ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(sn.reloads))
	}
	// During a reload two generations of a process run at once, with the
	// same role, number and respawn count: one series each.
	type key struct{ role, number, dir string }
	respawns := map[key]int{}
	type rs struct{ role, state string }
	alive := map[rs]int{}
	for _, p := range sn.procs {
		k := key{role: p.Role.String(), number: strconv.Itoa(p.Number)}
		if p.Role == scoreboard.Spooler && p.DirIndex >= 0 && p.DirIndex < len(c.s.src.Dirs) {
			k.dir = c.s.src.Dirs[p.DirIndex]
		}
		respawns[k] = max(respawns[k], p.Respawns)
		alive[rs{p.Role.String(), p.State.String()}]++
	}
	for k, n := range respawns {
		ch <- prometheus.MustNewConstMetric(respawnsDesc, prometheus.GaugeValue, float64(n), k.role, k.number, k.dir)
	}
	for k, n := range alive {
		ch <- prometheus.MustNewConstMetric(processesDesc, prometheus.GaugeValue, float64(n), k.role, k.state)
	}
}

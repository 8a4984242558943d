package master

import (
	"fmt"
	"path/filepath"

	"github.com/gospool/gospool/spooler/record"
	"github.com/gospool/gospool/spooler/ring"
	"github.com/gospool/gospool/spooler/spoolfile"
)

// openRing opens or creates the ring of the spool directory dir. A damaged
// ring (see ring.Damaged) does not stop the master: it is moved aside,
// every task in it that still checks out is written as a uWSGI spool file
// in dir, as a spill would be, and a fresh ring takes its place. One log
// line says how many tasks were saved and how many were not.
//
// The caller holds dir's master lock and has started no child yet, so no
// gospool spooler has the damaged file open.
func (m *master) openRing(dir string, opts ring.Options) (*ring.Ring, error) {
	path := filepath.Join(dir, ring.FileName)
	r, err := ring.Create(path, opts)
	what, damaged := ring.Damaged(path, err)
	if err == nil || !damaged {
		return r, err
	}
	cause := err
	files, err := spoolfile.NewWriter(dir, spoolfile.WriterOptions{Sync: opts.Sync})
	if err != nil {
		return nil, fmt.Errorf("%w; and its tasks cannot be saved: %v", cause, err)
	}
	rep, serr := ring.SalvageFile(path, opts.Geometry, func(payload []byte) error {
		t, err := record.Decode(payload)
		if err != nil {
			return err
		}
		_, err = files.Write(t)
		return err
	})
	if rep.MovedTo == "" {
		return nil, fmt.Errorf("%w; and it cannot be moved aside: %v", cause, serr)
	}
	if r, err = ring.Create(path, opts); err != nil {
		return nil, err
	}
	// Records the salvage could not save count as corrupt ones, so that
	// `gospool stats` shows them.
	r.Add(ring.Corrupt, uint64(rep.Lost))
	line := fmt.Sprintf("master: ring %s was damaged (%s): moved to %s; %d task(s) in it saved as spool files, %d lost",
		path, what, filepath.Base(rep.MovedTo), rep.Saved, rep.Lost)
	switch {
	case serr != nil:
		line += fmt.Sprintf(" (reading it stopped early: %v)", serr)
	case rep.SaveErr != nil:
		line += fmt.Sprintf(" (first failure: %v)", rep.SaveErr)
	case rep.Lost > 0:
		line += " (their checksum or bounds check failed)"
	}
	m.cfg.Logger.Print(line + "; a fresh ring replaces it")
	return r, nil
}

package master

import (
	"errors"
	"path/filepath"

	"github.com/gospool/gospool/spooler/ring"
)

// checkRings notices a ring file removed, replaced or cut short under the
// running processes, or one that can be created again after a full disk
// (see ring.Check): the master opens the directory's ring file again and
// keeps the old ring until the records producers published into it before
// they noticed are moved into the new one (ring.MoveTo) and no spooler
// uses it any more. Spoolers notice on their own tick and start again.
func (m *master) checkRings() {
	for i, r := range m.rings {
		err := r.Check()
		if err == nil {
			continue
		}
		path := filepath.Join(m.dirs[i], ring.FileName)
		// openRing moves a damaged (truncated) file aside, saving what it
		// can of it, and makes a fresh ring.
		nr, cerr := m.openRing(m.dirs[i], m.cfg.Spoolers[i].Config.Ring)
		if cerr != nil {
			if msg := err.Error() + "; " + cerr.Error(); msg != m.ringTrouble[path] {
				m.ringTrouble[path] = msg
				m.cfg.Logger.Printf("master: %s", msg)
			}
			continue
		}
		delete(m.ringTrouble, path)
		m.cfg.Logger.Printf("master: %v; now using the ring file there", err)
		m.rings[i] = nr
		m.oldRings = append(m.oldRings, oldRing{r: r, dir: i})
	}
	kept := m.oldRings[:0]
	for _, o := range m.oldRings {
		if n, err := o.r.MoveTo(m.rings[o.dir]); n > 0 || (err != nil && !errors.Is(err, ring.ErrRetired)) {
			m.cfg.Logger.Printf("master: %d task(s) moved from the old ring of %s into the new one (%v)", n, m.dirs[o.dir], err)
		}
		if st := o.r.Stats(); st.Ready+st.Claimed > 0 || o.r.HasLiveConsumer() {
			kept = append(kept, o)
			continue
		}
		o.r.Close()
	}
	m.oldRings = kept
}

// oldRing is a ring whose file was replaced, kept until it is empty.
type oldRing struct {
	r   *ring.Ring
	dir int // index in m.dirs and m.rings
}

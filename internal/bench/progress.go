package bench

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Progress is a one-line counter redrawn with \r, for a terminal only.
// A nil *Progress does nothing.
type Progress struct {
	w     io.Writer
	label string
	width int // of the last line drawn
}

// NewProgress returns a counter drawing on w when w is a terminal, and nil
// (no output at all) otherwise.
func NewProgress(w io.Writer, label string) *Progress {
	f, ok := w.(*os.File)
	if !ok || !IsTerminal(f) {
		return nil
	}
	return &Progress{w: w, label: label}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Update draws "LABEL: done/total tasks (P%)".
func (p *Progress) Update(done, total int) {
	if p == nil {
		return
	}
	done = min(max(done, 0), total)
	line := fmt.Sprintf("%s: %d/%d tasks handled (%d%%)", p.label, done, total, done*100/max(total, 1))
	pad := max(p.width-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%*s", line, pad, "")
	p.width = len(line)
}

// Clear erases the line.
func (p *Progress) Clear() {
	if p == nil || p.width == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%*s\r", p.width, "")
	p.width = 0
}

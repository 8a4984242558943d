package ini

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad: an ini file of any content loads and parses, without a panic
// and in bounded time.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"[uwsgi]\nspooler = /var/spool/app\nprocesses = 4\n",
		"[uwsgi]\nspooler-frequency = 0.5\nspooler-import = tasks\nharakiri = 30\n",
		"[uwsgi]\nmy = %(x)\nx = %d/y\nspooler = %(my)\n",
		"[uwsgi]\nsocket = $(HOME)\nprocesses = @(/nonexistent)\n",
		"[uwsgi]\ninclude = other.ini\nini = :other\n[other]\nmaster = true\n",
		"[uwsgi]\nspooler-processes = 99999999999999999999\n",
		"[uwsgi\n= =\n;comment\n#x\nkey\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join(t.TempDir(), "app.ini")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			opts, err := Load(path)
			if err == nil {
				_, err = Parse(opts)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil && err.Error() == "" {
				t.Error("an error without a message")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Load and Parse still running after 5s on %q", text)
		}
	})
}

package master

import (
	"context"
	"fmt"
	"os"

	"github.com/gospool/gospool/worker"
)

// Run is the whole program: in the process the user started it is the
// master, which starts and supervises the children, and returns nil after a
// clean shutdown (a signal, or ctx cancelled, which is a graceful one). In a
// child it is the child's role (worker or spooler), and it returns when the
// child is done; the caller should then exit, with status 1 on an error.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	switch role := os.Getenv(worker.EnvRole); role {
	case "":
		return runMaster(ctx, &cfg)
	case worker.RoleWorker:
		return runWorker(ctx, &cfg)
	case worker.RoleSpooler:
		return runSpooler(ctx, &cfg)
	default:
		return fmt.Errorf("master: %s=%q: not a role this program knows (worker or spooler)", worker.EnvRole, role)
	}
}

// IsChild reports whether this process was started by a gospool master.
func IsChild() bool { return os.Getenv(worker.EnvRole) != "" }

package failpoint

import (
	"fmt"
	"os"
	"time"
)

// EnvVar names the failpoint that parks the process.
const EnvVar = "GOSPOOL_FAILPOINT"

var active = os.Getenv(EnvVar)

// Inject parks the calling goroutine forever if name is the active failpoint.
func Inject(name string) {
	if active == "" || active != name {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s reached pid %d\n", name, os.Getpid())
	for {
		time.Sleep(time.Hour)
	}
}

// Enabled reports whether any failpoint is active in this process.
func Enabled() bool { return active != "" }

package master

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A child installs it as soon as the package is initialized, before main
// runs, to keep short the window in which a crash signal still gets the Go
// runtime's treatment.
func init() {
	if IsChild() {
		dieLikeC()
	}
}

// dieLikeC makes a child that receives a crash signal from someone else
// (kill -11, kill -6, an OOM-killer style tool...) die by that very signal,
// as a C program does, so that the master logs "killed by signal 11". The
// Go runtime would otherwise print a stack dump and exit with status 2.
// Real faults in Go code are not affected: they are panics, not signals
// sent by another process, and still exit with status 2.
func dieLikeC() {
	sigs := make(chan os.Signal, 1)
	crash := []os.Signal{syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL}
	signal.Notify(sigs, crash...)
	go func() {
		sig := (<-sigs).(syscall.Signal)
		// The runtime keeps its own handler for these signals (it needs it
		// for nil dereferences), and signal.Reset does not remove it, so
		// the default action is restored with rt_sigaction directly.
		//
		// unsafe: the kernel's struct sigaction on Linux is handler, flags,
		// restorer, then the signal mask (8 bytes for the 64 signals); all
		// zero is SIG_DFL with no flags and an empty mask. The array lives
		// on this goroutine's stack for the duration of the call.
		var act [4]uint64
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
		unix.Kill(os.Getpid(), sig)
		select {} // the signal is delivered before long; nothing else runs
	}()
}

package allocs

import "runtime"

// Measure runs f once and returns how many heap allocations it made and
// how many bytes they took, as testing.AllocsPerRun counts them: with one
// processor, so that other goroutines add as little noise as possible.
func Measure(f func()) (allocs, bytes uint64) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc
}

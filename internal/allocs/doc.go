// Package allocs measures the heap allocations of one call, for the fuzz
// tests that check a decoder allocates no more than its input justifies.
// It is for tests only.
package allocs

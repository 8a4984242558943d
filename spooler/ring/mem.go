package ring

import (
	"sync/atomic"
	"unsafe"
)

// mem is the shared mapping of the ring file. Every word that more than one
// process touches is read and written through the helpers below, so that
// each access is a single aligned atomic operation.
type mem []byte

// u64 returns the 8-byte word at off as an atomic.
//
// unsafe: the mapping starts on a page boundary (mmap guarantees it) and
// every offset passed here is a multiple of 8 by construction of the layout
// (asserted in TestLayoutAlignment), so the word is naturally aligned, which
// is what atomic.Uint64 requires. The memory is not Go heap: it lives until
// Munmap, which [Ring.Close] calls only after every user of the ring is
// closed, so the pointer never outlives the mapping.
func (m mem) u64(off int) *atomic.Uint64 {
	_ = m[off+7] // bounds check: a bad offset panics here, not in the kernel
	return (*atomic.Uint64)(unsafe.Pointer(&m[off]))
}

// u32 is u64 for 4-byte words; offsets are multiples of 4.
func (m mem) u32(off int) *atomic.Uint32 {
	_ = m[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&m[off]))
}

// addr returns the address of the 4-byte word at off, for the futex call.
func (m mem) addr(off int) unsafe.Pointer {
	_ = m[off+3]
	return unsafe.Pointer(&m[off])
}

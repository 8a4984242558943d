// Package failpoint parks a process at a named step so that a test can kill
// it there with a real signal.
//
// Production code marks the crash windows of a protocol with
// [Inject]("ring-producer-published") and so on. When the environment
// variable GOSPOOL_FAILPOINT holds a step's name, the process that reaches
// that step writes "failpoint NAME reached pid PID" to standard error and
// sleeps forever, waiting for the test's kill -9. When the variable is unset,
// [Inject] costs one comparison of an empty string.
package failpoint

// Package testproc holds what the tests of several packages need to run
// real processes: a buffer a running child and the test share, and a real
// uWSGI started for a test and stopped after it. It is for tests only.
package testproc

//go:build !linux

package remote

import "net"

// peerCred is Linux only (SO_PEERCRED).
func peerCred(*net.UnixConn) string { return "" }

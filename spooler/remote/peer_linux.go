package remote

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns "pid P, uid U" of the process that connected c, from
// SO_PEERCRED, or "" when it cannot be had.
func peerCred(c *net.UnixConn) string {
	rc, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return ""
	}
	return fmt.Sprintf("pid %d, uid %d", cred.Pid, cred.Uid)
}

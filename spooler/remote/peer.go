package remote

import "net"

// peerName names the client of c for log lines. A unix socket client has no
// address, so it is named by the socket and, on Linux, by its pid and uid.
func peerName(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c.RemoteAddr().String()
	}
	name := "unix:" + uc.LocalAddr().String()
	if cred := peerCred(uc); cred != "" {
		name += " (" + cred + ")"
	}
	return name
}

package executor

import (
	"fmt"
	"net"
	"strings"
	"unicode"
)

// HostIP is one line of a step's /etc/hosts beyond the defaults: "IP<tab>Host", as BuildKit
// writes --add-host entries.
type HostIP struct {
	Host string
	IP   string
}

// check refuses what would not be one well-formed line of /etc/hosts.
func (h HostIP) check() error {
	if h.Host == "" || strings.ContainsFunc(h.Host, func(r rune) bool { return r == '#' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("extra host %q: not a host name", h.Host)
	}
	if net.ParseIP(h.IP) == nil {
		return fmt.Errorf("extra host %s: %q is not an IP address", h.Host, h.IP)
	}
	return nil
}

// Ulimit is a resource limit of a step, named as docker's --ulimit names it; -1 is unlimited.
type Ulimit struct {
	Name string
	Soft int64
	Hard int64
}

func (u Ulimit) String() string { return fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard) }

// ulimitNames are docker's --ulimit names (go-units' table, "as" left out as docker does)
// with their RLIMIT_ numbers, the same on every Linux architecture.
var ulimitNames = map[string]int{
	"core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8, "msgqueue": 12,
	"nice": 13, "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14, "rttime": 15,
	"sigpending": 11, "stack": 3,
}

// rlimitValue is a limit as setrlimit takes it: -1 is RLIM_INFINITY.
func rlimitValue(v int64) uint64 {
	if v < 0 {
		return ^uint64(0)
	}
	return uint64(v)
}

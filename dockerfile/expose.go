package dockerfile

import (
	"fmt"
	"strconv"
	"strings"
)

// exposedPorts normalises EXPOSE arguments as BuildKit does for the image
// config: "port[-end][/proto]" becomes one "port/proto" per port, protocol
// lower-cased and tcp by default. A leading "[ip:]hostport:" is accepted
// and dropped, as BuildKit does (it only lints it).
func exposedPorts(specs []string) ([]string, error) {
	var out []string
	for _, spec := range specs {
		ports, err := exposedPort(spec)
		if err != nil {
			return nil, fmt.Errorf("EXPOSE: invalid port %q: %w", spec, err)
		}
		out = append(out, ports...)
	}
	return out, nil
}

func exposedPort(spec string) ([]string, error) {
	port := spec
	if i := strings.LastIndex(port, ":"); i >= 0 {
		port = port[i+1:]
	}
	port, proto, _ := strings.Cut(port, "/")
	proto = strings.ToLower(proto)
	switch proto {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("unsupported protocol %q", proto)
	}
	start, end, err := portRange(port)
	if err != nil {
		return nil, err
	}
	ports := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		ports = append(ports, strconv.Itoa(p)+"/"+proto)
	}
	return ports, nil
}

func portRange(s string) (start, end int, err error) {
	first, last, isRange := strings.Cut(s, "-")
	if start, err = portNumber(first); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return start, start, nil
	}
	if end, err = portNumber(last); err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return start, end, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (0-65535)", s)
	}
	return n, nil
}

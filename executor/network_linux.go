package executor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A step on the default network gets a network namespace of its own, with loopback and one
// tap device that slirp4netns (Debian's slirp4netns package) connects to the host's network
// in user mode: the step reaches out through a NAT made of ordinary sockets of the helper
// process, sees none of the host's interfaces or packets, and with --disable-host-loopback
// cannot reach a service listening on the host's 127.0.0.1. slirp4netns rather than pasta:
// it forwards nothing into the namespace unless asked through its API socket, while pasta
// forwards the host's bound ports both ways by default (-t/-u/-T/-U auto), so a step would
// reach the host's loopback services unless every option is turned off; slirp4netns is what
// rootless BuildKit, Podman and Docker have used for years.

// NetworkHelper is the program that gives a step on the default network its connectivity.
const NetworkHelper = "slirp4netns"

// The addresses slirp4netns --configure gives: the step is 10.0.2.100 behind gateway
// 10.0.2.2, and 10.0.2.3 forwards DNS to the host's resolvers.
const slirpDNS = "10.0.2.3"

// ErrNoNetworkHelper is returned when the default network needs slirp4netns and it is missing.
var ErrNoNetworkHelper = errors.New("RUN's default network needs slirp4netns (Debian package slirp4netns); install it, or build with --network=none or --network=host")

// CheckNetwork says whether steps on network mode can run here: the default network needs the
// helper program. Callers check before a build starts, so a missing helper is reported before
// any work.
//
// It says first whether steps can run here at all: the sandbox needs the capability to make
// namespaces and mounts, which an unprivileged container does not grant.
func (e *Executor) CheckNetwork(mode NetworkMode) error {
	if err := e.checkIsolation(); err != nil {
		return err
	}
	if e.opts.Isolation == IsolationChroot {
		if mode == NetworkNone {
			return errors.New("RUN --network=none needs a network namespace, which --isolation=chroot does not make: steps share the container's network")
		}
		return nil
	}
	if mode != NetworkDefault {
		return nil
	}
	if _, err := e.networkHelper(); err != nil {
		return err
	}
	e.tunOnce.Do(func() { e.tunErr = checkTun() })
	return e.tunErr
}

// checkTun opens /dev/net/tun as slirp4netns will: in a user namespace root has no
// rights over the host's root-owned node, so a 0600 one (Debian makes it 0666) fails
// every step's network, and is named before the build instead.
func checkTun() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("RUN's default network needs /dev/net/tun, which strata cannot open here (%v): as root, chmod 0666 /dev/net/tun (Debian's default) or load the tun module; or build with --network=none (run strata doctor)", errors.Unwrap(err))
	}
	return f.Close()
}

func (e *Executor) networkHelper() (string, error) {
	name := e.opts.NetworkHelper
	if name == "" {
		name = NetworkHelper
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", ErrNoNetworkHelper
	}
	return p, nil
}

// userNet is a running slirp4netns serving one step's network namespace.
type userNet struct {
	cmd  *exec.Cmd
	exit *os.File // closing it makes slirp4netns exit
}

// startUserNet connects the network namespace of pid to the host through slirp4netns and
// returns once the namespace's tap device is configured.
func startUserNet(ctx context.Context, helper string, pid int) (*userNet, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", NetworkHelper, err)
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, fmt.Errorf("starting %s: %w", NetworkHelper, err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helper, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp", "--ready-fd=3", "--exit-fd=4", strconv.Itoa(pid), "tap0")
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	cmd.Stderr = &stderr
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, fmt.Errorf("starting %s: %w", NetworkHelper, err)
	}
	n := &userNet{cmd: cmd, exit: exitW}
	if err := waitReady(ctx, readyR); err != nil {
		n.stop()
		return nil, fmt.Errorf("%s did not configure the step's network: %w: %s", NetworkHelper, err, strings.TrimSpace(stderr.String()))
	}
	return n, nil
}

// waitReady waits for slirp4netns to write "1" on its ready descriptor.
func waitReady(ctx context.Context, r *os.File) error {
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(r, b[:])
		if err == nil && b[0] != '1' {
			err = fmt.Errorf("unexpected ready byte %q", b[0])
		}
		done <- err
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout.C:
		return errors.New("timed out")
	}
}

// stop ends slirp4netns; it keeps no state, so it is killed rather than asked (its own
// exit takes ~20 ms) and reaped in the background.
func (n *userNet) stop() {
	n.cmd.Process.Kill()
	n.exit.Close()
	go n.cmd.Wait()
}

// resolvConfFor is the step's /etc/resolv.conf: the host's for the host network; on the
// default network, the host's with every loopback nameserver (a local resolver such as
// systemd-resolved's 127.0.0.53, unreachable from the namespace) replaced by slirp4netns'
// DNS forwarder, which asks the host's resolvers from the host's side.
func resolvConfFor(mode NetworkMode, host []byte) []byte {
	if mode != NetworkDefault {
		return host
	}
	var out bytes.Buffer
	servers := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if addr, err := netip.ParseAddr(f[1]); err != nil || addr.IsLoopback() || addr.Is6() {
				// IPv6 is not enabled in the namespace either.
				continue
			}
			servers++
		}
		out.WriteString(line + "\n")
	}
	if servers == 0 {
		out.WriteString("nameserver " + slirpDNS + "\n")
	}
	return out.Bytes()
}

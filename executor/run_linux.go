package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/rootless"
)

// Run runs spec's command in a sandbox and returns how it exited; see the package doc.
func (e *Executor) Run(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.validate(); err != nil {
		return Result{}, err
	}
	if err := e.checkIsolation(); err != nil {
		return Result{}, err
	}
	if err := prepareDirs(spec); err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(spec.WorkDir)
	cfg, err := e.baseConfig(spec)
	if err != nil {
		return Result{}, err
	}
	if e.opts.Isolation == IsolationChroot {
		return e.runChroot(ctx, spec, cfg)
	}
	reason := e.copyReason()
	if reason == "" {
		res, err := e.runOverlay(ctx, spec, cfg)
		var unsupported *overlayUnsupported
		if !errors.As(err, &unsupported) {
			return res, err
		}
		reason = e.recordNoOverlay(unsupported.err.Error())
		// The failed attempt may have left overlayfs' work directory behind.
		if err := prepareDirs(spec); err != nil {
			return Result{}, err
		}
		if cfg, err = e.baseConfig(spec); err != nil {
			return Result{}, err
		}
	}
	return e.runCopy(ctx, spec, cfg, reason)
}

// network is the network the step really gets: the container's own under chroot isolation.
func (e *Executor) network(spec Spec) NetworkMode {
	if e.opts.Isolation == IsolationChroot {
		return NetworkHost
	}
	return spec.Network
}

// checkIsolation says why the isolation chosen cannot work here, or nil.
func (e *Executor) checkIsolation() error {
	if e.opts.Unavailable != nil {
		return e.opts.Unavailable
	}
	have, err := effectiveCaps()
	if err != nil {
		return nil // the attempt will say
	}
	if e.opts.Isolation == IsolationChroot {
		for _, c := range []struct {
			bit  uint
			name string
		}{{unix.CAP_SYS_CHROOT, "CAP_SYS_CHROOT"}, {unix.CAP_MKNOD, "CAP_MKNOD"}, {unix.CAP_SETUID, "CAP_SETUID"}, {unix.CAP_SETGID, "CAP_SETGID"}} {
			if have&(1<<c.bit) == 0 {
				return fmt.Errorf("--isolation=chroot needs %s, which strata does not have here: run strata as root of the container, with Docker's default capabilities (run strata doctor)", c.name)
			}
		}
		return nil
	}
	if have&(1<<unix.CAP_SYS_ADMIN) == 0 {
		return errors.New("RUN steps need namespaces and mounts (CAP_SYS_ADMIN), which this environment does not allow: in an unprivileged container, pass --isolation=chroot (run strata doctor)")
	}
	return nil
}

// overlayUnsupported is a failure to mount the overlay that the copy fallback can avoid.
type overlayUnsupported struct{ err *SetupError }

func (o *overlayUnsupported) Error() string { return o.err.Error() }

func (e *Executor) copyReason() string {
	if e.opts.ForceCopy {
		return "copying forced by Options.ForceCopy"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.noOverlay
}

func (e *Executor) recordNoOverlay(reason string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.noOverlay == "" {
		e.noOverlay = reason
		if e.opts.Warnings != nil {
			fmt.Fprintf(e.opts.Warnings, "strata: warning: overlayfs unavailable (%s); RUN steps will run on a copy of their base, which is slower\n", reason)
		}
	}
	return e.noOverlay
}

func prepareDirs(spec Spec) error {
	for _, l := range spec.Lowers {
		if fi, err := os.Stat(l); err != nil || !fi.IsDir() {
			return fmt.Errorf("running step: lower %s is not a directory", l)
		}
	}
	// The upper dir's root is the root directory the step sees: 0755 whatever the umask.
	if err := os.MkdirAll(spec.UpperDir, 0o755); err != nil {
		return fmt.Errorf("creating upper dir: %w", err)
	}
	if err := os.Chmod(spec.UpperDir, 0o755); err != nil {
		return fmt.Errorf("creating upper dir: %w", err)
	}
	if !isEmptyDir(spec.UpperDir) {
		return fmt.Errorf("running step: upper dir %s is not empty", spec.UpperDir)
	}
	if err := os.RemoveAll(spec.WorkDir); err != nil {
		return fmt.Errorf("clearing work dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(spec.WorkDir, "etc"), 0o755); err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	return nil
}

// baseConfig turns spec into the init's config and writes the generated /etc files.
func (e *Executor) baseConfig(spec Spec) (childConfig, error) {
	hostname := spec.Hostname
	if hostname == "" {
		hostname = "strata"
	}
	cfg := childConfig{
		Args: spec.Args, Env: spec.Env, Cwd: spec.Cwd, User: spec.User, Hostname: hostname,
		PrivateNetwork: spec.Network != NetworkHost, Mounts: spec.Mounts,
		UserXattr: rootless.InUserNamespace(), Ulimits: spec.Ulimits, ShmSize: spec.ShmSize,
	}
	var err error
	program := seccompProgram
	if e.opts.Isolation == IsolationChroot {
		program = chrootSeccompProgram
	}
	if cfg.Seccomp, err = program(); err != nil {
		return cfg, err
	}
	resolv, err := os.ReadFile(e.opts.ResolvConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("reading %s: %w", e.opts.ResolvConf, err)
	}
	files := []struct {
		target string
		data   []byte
	}{
		{"/etc/hosts", hostsFile(hostname, spec.ExtraHosts)},
		{"/etc/resolv.conf", resolvConfFor(e.network(spec), resolv)},
		{"/etc/hostname", []byte(hostname + "\n")},
	}
	if slices.ContainsFunc(spec.Mounts, func(m Mount) bool { return m.Type == MountFile }) {
		cfg.Staging = filepath.Join(spec.WorkDir, "files")
		if err := os.Mkdir(cfg.Staging, 0o700); err != nil {
			return cfg, fmt.Errorf("creating work dir: %w", err)
		}
	}
	for _, f := range files {
		src := filepath.Join(spec.WorkDir, f.target)
		if err := os.WriteFile(src, f.data, 0o644); err != nil {
			return cfg, fmt.Errorf("writing %s for the step: %w", f.target, err)
		}
		cfg.EtcFiles = append(cfg.EtcFiles, etcFile{Target: f.target, Source: src})
	}
	return cfg, nil
}

// hostsFile is the step's /etc/hosts: BuildKit's defaults, then the extra hosts in order, as
// BuildKit's makeHostsFile writes them.
func hostsFile(hostname string, extra []HostIP) []byte {
	b := []byte("127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range extra {
		b = fmt.Appendf(b, "%s\t%s\n", h.IP, h.Host)
	}
	return b
}

func (e *Executor) runOverlay(ctx context.Context, spec Spec, cfg childConfig) (Result, error) {
	cfg.Lowers, cfg.Upper = spec.Lowers, spec.UpperDir
	cfg.OverlayWork = filepath.Join(spec.WorkDir, "ovl")
	cfg.Merged = filepath.Join(spec.WorkDir, "merged")
	cfg.Binds = filepath.Join(spec.WorkDir, "l")
	if err := os.Mkdir(cfg.OverlayWork, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating overlay work dir: %w", err)
	}
	if len(cfg.Lowers) == 0 {
		// A first step on scratch: overlayfs needs at least one lower.
		empty := filepath.Join(spec.WorkDir, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return Result{}, fmt.Errorf("creating empty lower: %w", err)
		}
		cfg.Lowers = []string{empty}
	}
	rep, err := e.spawn(ctx, spec, cfg)
	// Mount points go also after a failed setup, so the upper dir holds nothing of ours.
	if cerr := cleanStubs(spec.UpperDir, rep, true); cerr != nil && err == nil {
		err = fmt.Errorf("removing mount points from the upper dir: %w", cerr)
	}
	if err != nil {
		return Result{}, err
	}
	return resultOf(spec, rep, ""), nil
}

func (e *Executor) runCopy(ctx context.Context, spec Spec, cfg childConfig, reason string) (Result, error) {
	cfg.Rootfs = filepath.Join(spec.WorkDir, "rootfs")
	before, err := materialize(spec.Lowers, cfg.Rootfs)
	if err != nil {
		return Result{}, err
	}
	rep, err := e.spawn(ctx, spec, cfg)
	if err != nil {
		return Result{}, err
	}
	if err := cleanStubs(cfg.Rootfs, rep, false); err != nil {
		return Result{}, fmt.Errorf("removing mount points from the rootfs copy: %w", err)
	}
	if err := diffTree(cfg.Rootfs, before, spec.UpperDir); err != nil {
		return Result{}, err
	}
	return resultOf(spec, rep, reason), nil
}

func resultOf(spec Spec, rep childReport, reason string) Result {
	return Result{ExitCode: rep.ExitCode, Signal: syscall.Signal(rep.Signal), UpperDir: spec.UpperDir, CopyFallback: reason}
}

// spawn starts the sandbox init, sends it cfg and waits for its report, which comes back also
// with a setup error (its stubs need cleaning all the same). Cancelling ctx kills the init,
// and with it, as PID 1 of its namespace, every process of the step.
func (e *Executor) spawn(ctx context.Context, spec Spec, cfg childConfig) (childReport, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return childReport{}, fmt.Errorf("creating config pipe: %w", err)
	}
	defer cfgW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return childReport{}, fmt.Errorf("creating report pipe: %w", err)
	}
	defer repR.Close()
	var netR, netW *os.File
	helper := ""
	if spec.Network == NetworkDefault && !cfg.Chroot {
		if helper, err = e.networkHelper(); err == nil {
			netR, netW, err = os.Pipe()
		}
		if err != nil {
			cfgR.Close()
			repW.Close()
			return childReport{}, err
		}
		defer netW.Close()
		cfg.WaitNetwork = true
	}
	// Made before the init starts: on cgroup v1 the init's thread joins it itself (see
	// childConfig.CgroupTasks), which costs no RCU grace period as moving a process does.
	cg := e.stepCgroup()
	if cg != nil {
		defer cg.killAll()
		if !cg.v2 {
			cfg.CgroupTasks = filepath.Join(cg.dir, "tasks")
		}
	}
	cmd := initCommand(ctx, spec, cfg.Chroot, cfgR, repW, netR)
	err = cmd.Start()
	cfgR.Close()
	repW.Close()
	if netR != nil {
		netR.Close()
	}
	if err != nil {
		return childReport{}, fmt.Errorf("starting sandbox (needs root for namespaces and mounts): %w", err)
	}
	reports := make(chan reportOrErr, 1)
	go readReport(repR, reports)
	// On cgroup v2, before the config goes out: the init starts nothing until it has it, so
	// every process of the step is born in the cgroup.
	if cg != nil && cg.v2 {
		if err := e.addToCgroup(cg, cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return childReport{}, err
		}
	}
	// A write error means the init died early; its exit status tells why.
	_ = json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	// The network comes up while the init builds the rootfs; the init starts the command
	// once it reads the byte that says so.
	var netErr error
	if helper != "" {
		var net *userNet
		if net, netErr = startUserNet(ctx, helper, cmd.Process.Pid); netErr == nil {
			defer net.stop()
			netW.Write([]byte{1})
		}
		// Without the byte the init reports a setup error and ends; one of its own, if it
		// failed first (and the helper then found no namespace), is the cause.
		netW.Close()
	}
	waitErr := cmd.Wait()
	got := <-reports
	if ctx.Err() != nil {
		return childReport{}, fmt.Errorf("running step: %w", ctx.Err())
	}
	if got.err != nil {
		return childReport{}, fmt.Errorf("sandbox init ended without a report (%v): %w", waitErr, got.err)
	}
	if netErr != nil && (got.rep.Err == nil || got.rep.Err.Op == opWaitNetwork) {
		return got.rep, netErr
	}
	if got.rep.Err != nil {
		if got.rep.OverlayFailed && overlayErrnoFallsBack(got.rep.Err.Errno) {
			return got.rep, &overlayUnsupported{err: got.rep.Err}
		}
		return got.rep, fmt.Errorf("running step: %w", got.rep.Err)
	}
	return got.rep, nil
}

// stepCgroup makes a new cgroup with the pids limit for a step, or returns nil when cgroups
// cannot be used here (said once through Options.Warnings).
func (e *Executor) stepCgroup() *stepCgroup {
	cgs := e.usableCgroups()
	if cgs == nil {
		return nil
	}
	// A few tries: a failure here (say another tool removing cgroups) should not turn the
	// limit off for the rest of the build.
	var cg *stepCgroup
	var err error
	for range 3 {
		if cg, err = cgs.create(e.opts.PidsLimit); err == nil {
			break
		}
	}
	if err != nil {
		e.noCgroups(err.Error())
		return nil
	}
	if e.onCgroup != nil {
		e.onCgroup(cg.dir)
	}
	return cg
}

// addToCgroup moves the init into its step's cgroup v2 from the host.
func (e *Executor) addToCgroup(cg *stepCgroup, pid int) error {
	var err error
	for range 3 {
		if err = cg.add(pid); err == nil {
			return nil
		}
	}
	return err
}

// usableCgroups finds the cgroups once; nil when steps run without.
func (e *Executor) usableCgroups() *cgroups {
	e.cgroupsOnce.Do(func() {
		if c := detectCgroups(); c.base != "" {
			e.mu.Lock()
			e.cgroups = c
			e.mu.Unlock()
		} else {
			e.noCgroups(c.why)
		}
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cgroups
}

// noCgroups stops using cgroups, saying why once.
func (e *Executor) noCgroups(why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.noCgroupsWhy == "" && e.opts.Warnings != nil {
		fmt.Fprintf(e.opts.Warnings, "strata: warning: RUN steps run without a cgroup of their own (%s): no pids limit\n", why)
	}
	e.cgroups, e.noCgroupsWhy = nil, why
}

func initCommand(ctx context.Context, spec Spec, chroot bool, cfgR, repW, netR *os.File) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{childArg0}
	cmd.Env = []string{}
	// Through pipes even when the caller's writer is a file: a host terminal handed to the
	// step would let it inject input with TIOCSTI.
	cmd.Stdout, cmd.Stderr = pipedWriter(spec.Stdout), pipedWriter(spec.Stderr)
	// Exactly these two besides stdio; the init marks them and anything else it inherited
	// close-on-exec before the command runs.
	cmd.ExtraFiles = []*os.File{cfgR, repW} // configFD, reportFD
	if netR != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, netR) // netReadyFD
	}
	flags := syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC
	if spec.Network != NetworkHost {
		flags |= syscall.CLONE_NEWNET
	}
	if chroot {
		flags = 0
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: uintptr(flags), Pdeathsig: syscall.SIGKILL}
	// Output pipes close when the PID namespace dies; this only bounds a stuck copy.
	cmd.WaitDelay = time.Second
	return cmd
}

// writerOnly hides that a writer is an *os.File, so that exec.Cmd copies through a pipe.
type writerOnly struct{ io.Writer }

func pipedWriter(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return writerOnly{w}
}

type reportOrErr struct {
	rep childReport
	err error
}

// readReport reads the init's report: exactly one JSON value.
func readReport(r io.Reader, out chan<- reportOrErr) {
	var rep childReport
	data, err := io.ReadAll(r)
	if err == nil && len(data) == 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = decodeOne(data, &rep)
	}
	out <- reportOrErr{rep: rep, err: err}
}

func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("report holds more than one JSON value")
	}
	return nil
}

// overlayErrnoFallsBack says which mount failures mean "no overlayfs here" rather than a bug:
// not permitted (a user namespace), not supported by the filesystem, or no overlay module.
func overlayErrnoFallsBack(errno syscall.Errno) bool {
	switch errno {
	case syscall.EPERM, syscall.EINVAL, syscall.ENODEV, syscall.EOPNOTSUPP:
		return true
	}
	return false
}

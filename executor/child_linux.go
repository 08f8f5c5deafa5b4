package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsChild reports whether this process was started as a sandbox init by Run.
func IsChild() bool {
	return len(os.Args) == 1 && os.Args[0] == childArg0
}

// ChildMain is the sandbox init: it builds the sandbox, runs the command, reports and exits.
// It never returns.
//
// Threat model: the command is untrusted and runs as root in the sandbox, with Docker's
// default capabilities. The init is root with every capability while it sets up, and the
// command's parent afterwards, so the command must not reach it: the init is made
// non-dumpable before anything else (without CAP_SYS_PTRACE, nothing can then ptrace it or
// open its /proc/1/mem, /proc/1/fd or /proc/1/exe), no descriptor but the command's stdio
// crosses the exec, and before the command starts the init drops to the command's own
// privileges, on every thread where the runtime allows it (see dropPrivileges). What it
// reports is read by the host as untrusted data all the same, and the host cleans the upper
// directory without following the symlinks the command may have left there.
func ChildMain() {
	// Capabilities and no_new_privs are per thread, and the command is forked from this one.
	runtime.LockOSThread()
	// runc's default: the caller's umask must not change what the step writes (or its digest).
	unix.Umask(0o022)
	// As PID 1 of its namespace the init gets only the signals it handles, and the Go
	// runtime handles these by dumping its stacks and dying: a step's kill -ABRT 1 would
	// end its own sandbox in a crash. The ones forwarded to the command are Notify'd later.
	signal.Ignore(unix.SIGABRT, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP,
		unix.SIGSYS, unix.SIGPIPE, unix.SIGALRM, unix.SIGVTALRM, unix.SIGPROF, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSTKFLT)
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "strata sandbox: making the init non-dumpable:", err)
		os.Exit(125)
	}
	if err := closeOnExecFrom(configFD); err != nil {
		fmt.Fprintln(os.Stderr, "strata sandbox: closing inherited descriptors:", err)
		os.Exit(125)
	}
	rep := childRun()
	report := os.NewFile(reportFD, "report")
	if err := json.NewEncoder(report).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "strata sandbox: sending report:", err)
		os.Exit(125)
	}
	os.Exit(0)
}

// closeOnExecFrom marks every descriptor from first up close-on-exec: the config and report
// pipes, and whatever strata inherited without the flag from its own parent (a directory of
// the host, say), which the command would otherwise get.
func closeOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err != unix.ENOSYS && err != unix.EINVAL {
		return err
	}
	// Before Linux 5.11: one by one, from the host's /proc, which is still mounted.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

func childRun() childReport {
	var cfg childConfig
	if err := json.NewDecoder(os.NewFile(configFD, "config")).Decode(&cfg); err != nil {
		return childReport{Err: setupErr("reading config", "", err)}
	}
	// Before anything else, on the thread locked in ChildMain that forks the command.
	if cfg.CgroupTasks != "" {
		if err := os.WriteFile(cfg.CgroupTasks, []byte("0"), 0); err != nil {
			return childReport{Err: setupErr("joining the step's cgroup", cfg.CgroupTasks, err)}
		}
	}
	if cfg.Chroot {
		return chrootRun(cfg)
	}
	// The init is in the step's cgroup by now (joined above on v1, placed by the host
	// before it sent the config on v2): a cgroup namespace made now is rooted there, so
	// the command sees "/" and none of the host's cgroup paths. Namespaces are per thread;
	// the command is forked from this one.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil && err != unix.EINVAL {
		return childReport{Err: setupErr("creating cgroup namespace", "", err)}
	}
	s := &sandbox{cfg: cfg}
	err := s.setup()
	rep := childReport{Stubs: s.stubs, Parents: s.parents, OverlayFailed: s.overlayFailed}
	if err != nil {
		rep.Err = setupErr("setup", "", err)
		return rep
	}
	user, err := s.user()
	if err != nil {
		rep.Err = setupErr("resolving USER", "", err)
		return rep
	}
	rep.ExitCode, rep.Signal, err = s.runCommand(user)
	if err != nil {
		rep.Err = setupErr("running command", "", err)
	}
	return rep
}

// sandbox is the init's state while it builds the sandbox.
type sandbox struct {
	cfg           childConfig
	root          string // the new root while still on the host's view
	proc, sys     string // where /proc and /sys of the sandbox are mounted, on the host's view
	dev           string // the same for /dev
	overlayFailed bool
	stubs         []stub
	parents       []parentMeta
	seen          map[string]bool // parents already recorded, and stubs
	// staged says the tmpfs of MountFile contents is mounted on cfg.Staging, holding files
	// 0..files-1.
	staged bool
	files  int
	// procDir is the host's /proc under chroot isolation, where the init finds the step's
	// leftovers; nil in the namespaced sandbox, where the init is PID 1.
	procDir *os.File
}

// setup builds the sandbox's filesystem and enters it.
func (s *sandbox) setup() error {
	if err := s.mountAll(); err != nil {
		return err
	}
	if err := pivot(s.root); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(s.cfg.Hostname)); err != nil {
		return setupErr("sethostname", s.cfg.Hostname, err)
	}
	if s.cfg.PrivateNetwork {
		return loopbackUp()
	}
	return nil
}

// mountAll mounts the rootfs and everything in it, while the host's tree is still in view.
func (s *sandbox) mountAll() error {
	// Private first, so nothing mounted below propagates back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return setupErr("making mounts private", "/", err)
	}
	if err := s.mountRootfs(); err != nil {
		return err
	}
	if err := s.mountSystem(); err != nil {
		// Best effort, so the host can still tell the stubs' parents untouched.
		_ = s.restoreParentTimes()
		return err
	}
	return s.restoreParentTimes()
}

// pivot makes root the root of the mount namespace and detaches the old one; unlike chroot,
// nothing is left above the new root for a process to climb back to.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return setupErr("chdir", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return setupErr("pivot_root", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return setupErr("detaching old root", "/", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return setupErr("chdir", "/", err)
	}
	return nil
}

// loopbackUp brings lo up in the step's own network namespace, as docker build does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return setupErr("socket", "lo", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return setupErr("ifreq", "lo", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return setupErr("reading flags", "lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return setupErr("bringing up", "lo", err)
	}
	return nil
}

// user resolves the step's user from the image's own files, now at /etc.
func (s *sandbox) user() (execUser, error) {
	// O_NONBLOCK: a fifo an earlier step left at /etc/passwd must not hang the init
	// (resolveUser takes anything but a regular file as missing).
	passwd, _ := os.OpenFile("/etc/passwd", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	group, _ := os.OpenFile("/etc/group", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	defer closeIfOpen(passwd)
	defer closeIfOpen(group)
	return resolveUser(s.cfg.User, readerOrNil(passwd), readerOrNil(group))
}

// runCommand starts the command as PID 1's child with reduced privileges, reaps everything
// until it exits, then kills what it left behind.
func (s *sandbox) runCommand(u execUser) (code, sig int, err error) {
	cwd := filepath.Join("/", s.cfg.Cwd)
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return 0, 0, setupErr("creating working directory", cwd, err)
	}
	env := withDefaults(s.cfg.Env, u.Home)
	devnull, err := os.Open("/dev/null")
	if err != nil {
		return 0, 0, setupErr("open", "/dev/null", err)
	}
	defer devnull.Close()
	if err := s.waitNetwork(); err != nil {
		return 0, 0, err
	}
	// While the init may still raise a hard limit (CAP_SYS_RESOURCE, where it has it).
	if err := setUlimits(s.cfg.Ulimits); err != nil {
		return 0, 0, err
	}
	if err := dropPrivileges(s.cfg.Chroot); err != nil {
		return 0, 0, err
	}
	// Last, once nothing the init still does needs a call the profile forbids.
	if err := installSeccomp(s.cfg.Seccomp); err != nil {
		return 0, 0, err
	}
	if s.cfg.Chroot && (u.UID == GuardUID || u.GID == GuardUID) {
		return 0, 0, &SetupError{Op: "starting the command as " + s.cfg.User, Msg: fmt.Sprintf("uid and gid %d are strata's own under --isolation=chroot", GuardUID)}
	}
	if why := unmappedIDs(u); why != "" {
		return 0, 0, &SetupError{Op: "starting the command as " + s.cfg.User, Msg: why}
	}
	// Caught before the command starts: one sent as soon as it runs (it said it is ready)
	// must reach it, not end the init as Go's default for the signal would.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	argv0, lookErr := lookPath(s.cfg.Args[0], lookupEnv(env, "PATH"))
	var proc *os.Process
	if lookErr == nil {
		proc, lookErr = os.StartProcess(argv0, s.cfg.Args, &os.ProcAttr{
			Dir:   cwd,
			Env:   env,
			Files: []*os.File{devnull, os.Stdout, os.Stderr},
			Sys: &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: toUint32(u.Groups), NoSetGroups: setgroupsDenied()},
				Setsid:     true,
			},
		})
	}
	if lookErr != nil {
		// Like a shell: the step fails with 127 (not found) or 126 (not executable).
		fmt.Fprintf(os.Stderr, "strata: %v\n", lookErr)
		if errors.Is(lookErr, os.ErrNotExist) {
			return 127, 0, nil
		}
		return 126, 0, nil
	}
	ws, err := superviseUntilExit(proc.Pid, sigs, s.procDir)
	if err != nil {
		return 0, 0, setupErr("waiting for the command", "", err)
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal()), nil
	}
	return ws.ExitStatus(), 0, nil
}

const opWaitNetwork = "waiting for the network"

// waitNetwork waits until the host says the step's network is up; EOF means it failed
// (the host reports why).
func (s *sandbox) waitNetwork() error {
	if !s.cfg.WaitNetwork {
		return nil
	}
	f := os.NewFile(netReadyFD, "network ready")
	defer f.Close()
	var b [1]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return &SetupError{Op: opWaitNetwork, Msg: "the network helper did not start"}
	}
	return nil
}

// superviseUntilExit forwards signals to the command and reaps every process until the
// command exits; then it kills all that is left in the PID namespace and reaps that too. An
// error means the command's status was lost; its processes are killed all the same.
func superviseUntilExit(pid int, sigs chan os.Signal, procDir *os.File) (unix.WaitStatus, error) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				_ = unix.Kill(pid, sig.(syscall.Signal))
			case <-done:
				return
			}
		}
	}()
	status, err := reapUntil(pid)
	signal.Stop(sigs)
	close(done)
	if procDir != nil {
		killChildren(procDir)
		return status, err
	}
	// kill(-1) from PID 1 reaches every other process of the namespace.
	_ = unix.Kill(-1, unix.SIGKILL)
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); err != unix.EINTR && err != nil {
			break
		}
	}
	return status, err
}

// reapUntil reaps children until pid exits and returns its status.
func reapUntil(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return 0, fmt.Errorf("wait4: %w", err)
		case got == pid:
			return ws, nil
		}
	}
}

// lookPath finds file in the sandbox's PATH like execvp; names with a slash are taken as is.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		return file, checkExecutable(file)
	}
	var firstErr error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, os.ErrNotExist) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("exec %s: %w", file, os.ErrNotExist)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("exec %s: %w", p, err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("exec %s: %w", p, os.ErrPermission)
	}
	return nil
}

func toUint32(ids []int) []uint32 {
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	return out
}

func closeIfOpen(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// readerOrNil keeps a file that failed to open from becoming a non-nil io.Reader.
func readerOrNil(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return f
}

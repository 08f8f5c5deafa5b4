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
func ChildMain() {
	// Capabilities and no_new_privs are per thread, and the command is forked from this one.
	runtime.LockOSThread()
	rep := childRun()
	report := os.NewFile(reportFD, "report")
	if err := json.NewEncoder(report).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "strata sandbox: sending report:", err)
		os.Exit(125)
	}
	os.Exit(0)
}

func childRun() childReport {
	// The pipes must not leak into the command.
	unix.CloseOnExec(configFD)
	unix.CloseOnExec(reportFD)
	var cfg childConfig
	if err := json.NewDecoder(os.NewFile(configFD, "config")).Decode(&cfg); err != nil {
		return childReport{Err: setupErr("reading config", "", err)}
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
		rep.Err = setupErr("starting command", "", err)
	}
	return rep
}

// sandbox is the init's state while it builds the sandbox.
type sandbox struct {
	cfg           childConfig
	root          string // the new root while still on the host's view
	overlayFailed bool
	stubs         []stub
	parents       []parentMeta
	seen          map[string]bool // parents already recorded, and stubs
}

func (s *sandbox) setup() error {
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
	if err := s.restoreParentTimes(); err != nil {
		return err
	}
	if err := pivot(s.root); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(s.cfg.Hostname)); err != nil {
		return setupErr("sethostname", s.cfg.Hostname, err)
	}
	if s.cfg.NoNetwork {
		return loopbackUp()
	}
	return nil
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

// loopbackUp brings lo up in the new network namespace, as docker build --network=none.
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
	passwd, _ := os.Open("/etc/passwd")
	group, _ := os.Open("/etc/group")
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
	if err := dropPrivileges(); err != nil {
		return 0, 0, err
	}
	argv0, lookErr := lookPath(s.cfg.Args[0], lookupEnv(env, "PATH"))
	var proc *os.Process
	if lookErr == nil {
		proc, lookErr = os.StartProcess(argv0, s.cfg.Args, &os.ProcAttr{
			Dir:   cwd,
			Env:   env,
			Files: []*os.File{devnull, os.Stdout, os.Stderr},
			Sys: &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: toUint32(u.Groups)},
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
	ws := superviseUntilExit(proc.Pid)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal()), nil
	}
	return ws.ExitStatus(), 0, nil
}

// superviseUntilExit forwards signals to the command and reaps every process until the
// command exits; then it kills all that is left in the PID namespace and reaps that too.
func superviseUntilExit(pid int) unix.WaitStatus {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
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
	var status unix.WaitStatus
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || got == pid {
			status = ws
			break
		}
	}
	signal.Stop(sigs)
	close(done)
	// kill(-1) from PID 1 reaches every other process of the namespace.
	_ = unix.Kill(-1, unix.SIGKILL)
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); err != unix.EINTR && err != nil {
			break
		}
	}
	return status
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

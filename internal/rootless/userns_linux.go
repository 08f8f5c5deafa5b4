package rootless

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init is the first thing the command does. In a process Enter started it waits for the
// mapping and re-executes itself, so that it starts as root of the namespace with its
// capabilities (an exec before the mapping drops them); then it ties its life to its
// parent's and keeps its mounts out of the parent's view. It returns only in the final
// process.
func Init() {
	if os.Getenv(envMode) == "" && os.Getenv(envWait) == "" {
		return
	}
	// The variables are Enter's only in the namespace it made, as its child: anywhere else
	// (a root build, root of a container's user namespace, a command strata unshare runs)
	// they were inherited, and are dropped, not obeyed.
	if !madeByEnter() {
		for _, v := range []string{envMode, envWait, envParent, envOuter} {
			os.Unsetenv(v)
		}
		return
	}
	if os.Getenv(envWait) != "" {
		sync := os.NewFile(3, "userns-sync")
		var b [1]byte
		if n, _ := sync.Read(b[:]); n != 1 || b[0] != 'm' {
			os.Exit(125) // the parent failed to map the IDs, and says why
		}
		sync.Close()
		os.Unsetenv(envWait)
		err := unix.Exec("/proc/self/exe", os.Args, os.Environ())
		fmt.Fprintf(os.Stderr, "strata: re-executing in the user namespace: %v\n", err)
		os.Exit(125)
	}
	// The exec as root of the namespace cleared the death signal Enter asked for; the
	// parent may have died before it was set again.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if strconv.Itoa(os.Getppid()) != os.Getenv(envParent) {
		fmt.Fprintln(os.Stderr, "strata: the process that started the user namespace is gone")
		os.Exit(125)
	}
	// Mounts made by the build (overlays, the sandbox's) stay in this namespace and go
	// with it, whatever way the command ends.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintf(os.Stderr, "strata: making mounts private in the user namespace: %v\n", err)
		os.Exit(125)
	}
	// Known from now on by Current; commands this one runs (strata unshare's) start afresh.
	current = Mode(os.Getenv(envMode))
	for _, v := range []string{envMode, envParent, envOuter} {
		os.Unsetenv(v)
	}
}

// madeByEnter reports whether this process is the child Enter started: its parent is the
// one the variables name, and its user namespace is not the one Enter ran in (which a
// process in the new namespace cannot read from its parent's /proc entry: Enter says).
func madeByEnter() bool {
	parent, outer := os.Getenv(envParent), os.Getenv(envOuter)
	if parent == "" || outer == "" || strconv.Itoa(os.Getppid()) != parent || !InUserNamespace() {
		return false
	}
	mine, err := os.Readlink("/proc/self/ns/user")
	return err == nil && mine != outer
}

// Enter runs this command again in a new user and mount namespace mapped as m says (IDs
// when m has ranges and newuidmap/newgidmap are found, Single otherwise), forwards the
// signals it gets, and returns the exit code to end with.
func Enter(m Mapping) (int, error) {
	mode, uidmap, gidmap := Single, "", ""
	if m.Size() > 1 {
		var err1, err2 error
		uidmap, err1 = exec.LookPath("newuidmap")
		gidmap, err2 = exec.LookPath("newgidmap")
		if err1 == nil && err2 == nil {
			mode = IDs
		}
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	outer, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return 0, &UnavailableError{Err: err}
	}
	cmd.Env = append(os.Environ(), envMode+"="+string(mode), envParent+"="+strconv.Itoa(os.Getpid()), envOuter+"="+outer)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	var syncW *os.File
	if mode == Single {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.UID, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: m.GID, Size: 1}}
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		defer r.Close()
		syncW = w
		defer w.Close()
		cmd.ExtraFiles = []*os.File{r}
		cmd.Env = append(cmd.Env, envWait+"=1")
	}
	// Signals are passed on, not acted on: the build cleans up and says why it stopped.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, &UnavailableError{Err: err}
	}
	if mode == IDs {
		size := m.Size()
		pid := strconv.Itoa(cmd.Process.Pid)
		err := runMap(uidmap, pid, idMap(m.UID, m.SubUID, size))
		if err == nil {
			err = runMap(gidmap, pid, idMap(m.GID, m.SubGID, size))
		}
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, fmt.Errorf("mapping the subordinate IDs of uid %d: %w (run strata doctor)", m.UID, err)
		}
		if _, err := syncW.Write([]byte{'m'}); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, err
		}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

func runMap(prog, pid string, args []string) error {
	out, err := exec.Command(prog, append([]string{pid}, args...)...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s: %s", prog, strings.Join(strings.Fields(msg), " "))
	}
	return nil
}

package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/filecopy"
)

// Chroot isolation is for a build inside an unprivileged container (Docker's default
// capabilities and seccomp profile, as a Kubernetes pod gets): no user namespaces, no
// mounts. A step runs chrooted into a copy of its lowers, as root of the container with
// Docker's capabilities less CAP_SYS_CHROOT (the way out of a chroot), under the seccomp
// profile. What the namespaced sandbox gets from mounts is put into the copy as files and
// taken out of the diff afterwards: a fresh /dev with the standard nodes, the generated
// /etc/hosts, /etc/resolv.conf and /etc/hostname, and RUN --mount's targets (binds copied
// in, or moved in and back for a cache; tmpfs an empty directory). So the layer holds what
// the namespaced sandbox's would. The step shares the container's network, processes and
// hostname: the container is the boundary (SECURITY.md).

// runChroot runs spec chrooted into a copy of its lowers.
func (e *Executor) runChroot(ctx context.Context, spec Spec, cfg childConfig) (Result, error) {
	// The step is root of the same container as strata, without CAP_SYS_PTRACE: it can
	// ptrace (and read the memory of) only dumpable processes of its uid, which strata,
	// holding the chroot's way out, must then not be. As a subreaper, strata gets the
	// step's orphans as children, whatever they do to hide (killRooted).
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return Result{}, fmt.Errorf("chroot isolation: making strata non-dumpable: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return Result{}, fmt.Errorf("chroot isolation: becoming a subreaper: %w", err)
	}
	if err := guardFromSteps(); err != nil {
		return Result{}, err
	}
	// One chroot step at a time in this network namespace: steps share it, so two at once
	// could pass each other a descriptor of their root over an abstract unix socket, and
	// one outside the other's chroot climbs out of both.
	unlock, err := lockChrootSteps(ctx, e.opts.Warnings)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	e.chrootWarning.Do(func() {
		if have, err := effectiveCaps(); err == nil && have&(1<<unix.CAP_SYS_ADMIN) != 0 && e.opts.Warnings != nil {
			fmt.Fprintln(e.opts.Warnings, "strata: warning: --isolation=chroot where the sandbox could run: RUN steps see and can signal every process here, use its network, and can open device nodes they make; it is meant for unprivileged containers")
		}
	})
	if spec.ShmSize > 0 {
		e.shmWarning.Do(func() {
			if e.opts.Warnings != nil {
				fmt.Fprintln(e.opts.Warnings, "strata: warning: --shm-size is ignored under --isolation=chroot: /dev/shm is a directory of the step's copy, not a tmpfs, so it has no size of its own")
			}
		})
	}
	root := filepath.Join(spec.WorkDir, "rootfs")
	inj := &injected{root: root}
	rep, before, err := e.chrootStep(ctx, spec, cfg, inj)
	// The step can kill its init, and leave processes the init never saw: nothing chrooted
	// into the copy may live on while its caches move back or the copy is read. A cache is
	// not handed back to a step that may still hold it.
	if kerr := killRooted(root); kerr != nil {
		inj.abandon()
		return Result{}, kerr
	}
	if rerr := inj.takeBack(); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return Result{}, err
	}
	if err := diffTree(root, before, spec.UpperDir); err != nil {
		return Result{}, err
	}
	if err := inj.dropFrom(spec.UpperDir, before); err != nil {
		return Result{}, err
	}
	return resultOf(spec, rep, ""), nil
}

// chrootStep makes the copy, puts in what the sandbox would mount, records it and runs the
// step. Whatever it returns, caches it moved in are in inj.moved.
func (e *Executor) chrootStep(ctx context.Context, spec Spec, cfg childConfig, inj *injected) (childReport, *tree, error) {
	if _, err := materialize(spec.Lowers, inj.root); err != nil {
		return childReport{}, nil, err
	}
	if err := inj.system(cfg.EtcFiles); err != nil {
		return childReport{}, nil, err
	}
	for _, m := range spec.Mounts {
		if err := inj.mount(m); err != nil {
			return childReport{}, nil, err
		}
	}
	// Recorded with everything put in: the diff then sees only what the step did.
	before, err := recordTree(inj.root)
	if err != nil {
		return childReport{}, nil, err
	}
	cfg.Rootfs, cfg.Chroot = inj.root, true
	cfg.PrivateNetwork, cfg.Mounts, cfg.EtcFiles = false, nil, nil
	rep, err := e.spawn(ctx, spec, cfg)
	return rep, before, err
}

// injected is what runChroot put into the copy in place of mounts.
type injected struct {
	root    string
	targets []string    // relative to root; dropped from the diff
	moved   [][2]string // cache directories moved in: (host source, path relative to root)
}

// system makes /dev (the standard nodes, as runc's default devices; /dev/pipes and the
// rest of /dev is the step's scratch, as the tmpfs there is) and the generated /etc files.
func (inj *injected) system(etc []etcFile) error {
	// As runc: the image has no business moving /dev, and a symlink would move the nodes.
	if fi, err := os.Lstat(filepath.Join(inj.root, "dev")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return &SetupError{Op: "making", Path: "/dev", Msg: "the image has a symlink there; it must be a directory"}
	}
	dev, err := inj.place("/dev", true)
	if err != nil {
		return err
	}
	for _, d := range defaultDevices() {
		p := filepath.Join(dev, d.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("chroot isolation: making %s (needs CAP_MKNOD): %w", p, err)
		}
		// 0666 whatever strata's umask: any USER writes to /dev/null.
		if err := unix.Chmod(p, 0o666); err != nil {
			return fmt.Errorf("chroot isolation: %w", err)
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := mkdir755(filepath.Join(dev, d)); err != nil {
			return fmt.Errorf("chroot isolation: %w", err)
		}
	}
	if err := unix.Chmod(filepath.Join(dev, "shm"), 0o1777); err != nil {
		return fmt.Errorf("chroot isolation: %w", err)
	}
	for _, l := range [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}} {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("chroot isolation: %w", err)
		}
	}
	for _, f := range etc {
		p, err := inj.place(f.Target, false)
		if err != nil {
			return err
		}
		if err := filecopy.Content(f.Source, p, 0o644); err != nil {
			return fmt.Errorf("chroot isolation: writing %s: %w", f.Target, err)
		}
	}
	return nil
}

// mount puts m's content at its target.
func (inj *injected) mount(m Mount) error {
	switch {
	case m.Type == MountTmpfs:
		_, err := inj.place(m.Target, true)
		return err
	case m.Type == MountFile:
		// No tmpfs without mounts: the content is a file of the copy, which dropFrom keeps
		// out of the layer and the copy's removal deletes.
		p, err := inj.place(m.Target, false)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p, m.Data, 0o600); err != nil {
			return fmt.Errorf("chroot isolation: writing %s: %w", m.Target, err)
		}
		if err := os.Lchown(p, m.UID, m.GID); err != nil {
			return fmt.Errorf("chroot isolation: %w", err)
		}
		return os.Chmod(p, os.FileMode(m.Mode&0o777))
	case m.Type != MountBind:
		return fmt.Errorf("chroot isolation: mount type %q", m.Type)
	}
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("chroot isolation: bind source: %w", err)
	}
	if !fi.IsDir() {
		p, err := inj.place(m.Target, false)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			// A socket (RUN --mount=type=ssh) cannot be copied; a hard link reaches the
			// same listener, and goes with the copy.
			if err := os.Link(m.Source, p); err != nil {
				return fmt.Errorf("chroot isolation: linking the socket %s into the rootfs (it must be on the store's filesystem): %w", m.Target, err)
			}
			return nil
		}
		return filecopy.Content(m.Source, p, fi.Mode().Perm())
	}
	p, err := inj.place(m.Target, true)
	if err != nil {
		return err
	}
	if m.ReadOnly {
		return applyLower(m.Source, p)
	}
	// Writable (a cache): moved in, and back once the step is done, so what it wrote stays.
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("chroot isolation: %w", err)
	}
	if err := os.Rename(m.Source, p); err != nil {
		return fmt.Errorf("chroot isolation: moving %s into the rootfs: %w", m.Source, err)
	}
	inj.moved = append(inj.moved, [2]string{m.Source, inj.targets[len(inj.targets)-1]})
	return nil
}

// place resolves target in the copy as the step will see it, replaces what is there (the
// copy is the build's own) with an empty directory, or an empty spot for a file, creating
// missing parents, and records it for dropFrom.
func (inj *injected) place(target string, dir bool) (string, error) {
	rel, err := resolveInRoot(inj.root, target)
	if err != nil || rel == "" {
		return "", fmt.Errorf("chroot isolation: resolving %s in the rootfs: %v", target, err)
	}
	for _, t := range inj.targets {
		// Putting one in would remove or move the other's content; /dev is the copy's own
		// scratch (the heredoc script's mount is there).
		if t == "dev" && strings.HasPrefix(rel, "dev/") {
			continue
		}
		if strings.HasPrefix(rel+"/", t+"/") || strings.HasPrefix(t+"/", rel+"/") {
			return "", fmt.Errorf("--isolation=chroot: %s and /%s nest, which it cannot do without mounts (RUN --mount targets, /dev, /etc/hosts, /etc/resolv.conf, /etc/hostname)", target, t)
		}
	}
	p := filepath.Join(inj.root, rel)
	if err := mkdirAll755(inj.root, path.Dir(rel)); err != nil {
		return "", fmt.Errorf("chroot isolation: %w", err)
	}
	if err := os.RemoveAll(p); err != nil {
		return "", fmt.Errorf("chroot isolation: %w", err)
	}
	if dir {
		if err := mkdir755(p); err != nil {
			return "", fmt.Errorf("chroot isolation: %w", err)
		}
	}
	inj.targets = append(inj.targets, rel)
	return p, nil
}

// mkdir755 makes the directory p 0755 whatever strata's umask, as the sandbox's mount
// points are: they can land in the layer (a mount target's missing parents).
func mkdir755(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	return unix.Chmod(p, 0o755)
}

// mkdirAll755 makes the missing directories of rel (resolved, no symlink in it) below root
// with mkdir755.
func mkdirAll755(root, rel string) error {
	cur := root
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		cur = filepath.Join(cur, c)
		if err := mkdir755(cur); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// takeBack moves the caches back to where they live. The step's processes are gone, but it
// may have left symlinks on the way to a cache (ln -s /etc /cachedir's parent): a cache is
// taken back only from where it was put, through real directories, else it is lost and
// comes back empty.
func (inj *injected) takeBack() error {
	var errs []error
	b := beneath(inj.root)
	for _, mv := range inj.moved {
		rel := mv[1]
		st, err := b.lstat(rel)
		if err == nil && isDir(&st) {
			err = b.at(rel, func(dirfd int, name string) error {
				return unix.Renameat(dirfd, name, unix.AT_FDCWD, mv[0])
			})
		} else {
			err = os.Mkdir(mv[0], 0o755)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// abandon gives every cache moved in an empty directory in its place: what the copy holds
// stays there, for a step that may still reach it.
func (inj *injected) abandon() {
	for _, mv := range inj.moved {
		_ = os.Mkdir(mv[0], 0o755)
	}
	inj.moved = nil
}

// dropFrom removes from the upper dir what the step wrote at the injected targets (the
// mounts' content, which the namespaced sandbox would not keep either), then the parents
// left holding nothing the step changed. The upper dir holds the step's symlinks: nothing
// is reached through one.
func (inj *injected) dropFrom(upper string, before *tree) error {
	for _, rel := range inj.targets {
		if err := inj.drop(beneath(upper), rel, before); err != nil {
			return fmt.Errorf("dropping %s from the step's changes: %w", rel, err)
		}
	}
	return nil
}

// drop removes rel from the upper dir; its parent goes too when that leaves it an empty
// copy of a directory the step did not change, else gets its times back from the rootfs
// (the removal changed them).
func (inj *injected) drop(up beneath, rel string, before *tree) error {
	if err := up.removeAll(rel); err != nil {
		return err
	}
	parent := parentOf(rel)
	if _, err := up.lstat(parent); err != nil {
		return nil
	}
	if parent != "" && up.emptyDir(parent) && !up.opaque(parent) && inj.unchanged(parent, before) {
		return inj.drop(up, parent, before)
	}
	st, err := beneath(inj.root).lstat(parent)
	if err != nil {
		return nil // the step replaced it: the upper dir has what it made
	}
	return up.setTimes(parent, st.Atim, st.Mtim)
}

// unchanged reports a directory of the rootfs with the metadata it had before the step.
func (inj *injected) unchanged(rel string, before *tree) bool {
	was, ok := before.entries[rel]
	if !ok {
		return false
	}
	st, err := beneath(inj.root).lstat(rel)
	if err != nil {
		return false
	}
	return uint32(was.mode) == st.Mode && was.uid == st.Uid && was.gid == st.Gid &&
		was.mtime.Sec == st.Mtim.Sec && int64(was.mtime.Nsec) == st.Mtim.Nsec
}

// chrootRun is the init of chroot isolation: no namespace to build, a chroot to enter.
func chrootRun(cfg childConfig) childReport {
	// exec made the saved uid 0 again: the step, root without CAP_KILL, could kill the init.
	if err := guardFromSteps(); err != nil {
		return childReport{Err: setupErr("guarding the init", "", err)}
	}
	// Opened before the chroot: the init finds the processes the step leaves behind there.
	proc, err := os.Open("/proc")
	if err != nil {
		return childReport{Err: setupErr("open", "/proc", err)}
	}
	defer proc.Close()
	// Orphans of the step become the init's children, so they can be found and killed.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return childReport{Err: setupErr("becoming a subreaper", "", err)}
	}
	if err := unix.Chroot(cfg.Rootfs); err != nil {
		return childReport{Err: setupErr("chroot (needs CAP_SYS_CHROOT)", cfg.Rootfs, err)}
	}
	if err := unix.Chdir("/"); err != nil {
		return childReport{Err: setupErr("chdir", "/", err)}
	}
	s := &sandbox{cfg: cfg, procDir: proc}
	user, err := s.user()
	if err != nil {
		return childReport{Err: setupErr("resolving USER", "", err)}
	}
	var rep childReport
	rep.ExitCode, rep.Signal, err = s.runCommand(user)
	if err != nil {
		rep.Err = setupErr("running command", "", err)
	}
	return rep
}

// GuardUID is strata's real and saved uid under chroot isolation. Signals need CAP_KILL or
// the sender's real or effective uid to be the target's real or saved one: a step, root
// (or USER) without CAP_KILL, can then signal neither strata nor its inits, so it cannot
// kill the process that holds the lock and cleans up after it. The effective uid stays 0:
// strata keeps its capabilities, and what it creates is root's. No step may run as it.
const GuardUID = 0x7ffffffe

// guardFromSteps puts strata out of the steps' reach (the inits do the same for themselves).
func guardFromSteps() error {
	if r, _, saved := unix.Getresuid(); r == GuardUID && saved == GuardUID {
		return nil
	}
	// A step can still signal the container's other root processes, strata's output
	// reader (a tee) among them: a write to a broken stdout is then an error, not the end.
	signal.Ignore(unix.SIGPIPE)
	if err := unix.Setresuid(GuardUID, 0, GuardUID); err != nil {
		return fmt.Errorf("chroot isolation: setting strata's real uid apart from the steps' (needs CAP_SETUID): %w", err)
	}
	return nil
}

// chrootLock is the abstract unix socket a chroot step holds while it runs: its name is
// seen by every process of the network namespace, the same scope as the sockets a step
// could pass a descriptor over (several containers of a pod share it).
const chrootLock = "@strata-chroot-steps"

var chrootSteps sync.Mutex

// lockChrootSteps waits until no other chroot step runs in this network namespace, in this
// process or another, and returns the release.
func lockChrootSteps(ctx context.Context, warnings io.Writer) (func(), error) {
	chrootSteps.Lock()
	for said := false; ; said = true {
		l, err := net.Listen("unix", chrootLock)
		if err == nil {
			return func() { l.Close(); chrootSteps.Unlock() }, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			chrootSteps.Unlock()
			return nil, fmt.Errorf("chroot isolation: taking the step lock %s: %w", chrootLock, err)
		}
		if !said && warnings != nil {
			fmt.Fprintf(warnings, "strata: waiting for another chroot step in this network namespace (the abstract socket %s is held)\n", chrootLock)
		}
		select {
		case <-ctx.Done():
			chrootSteps.Unlock()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// killRooted kills the step's processes until none is left: every process whose root is
// the copy (none can change it: no CAP_SYS_CHROOT), and every child of strata (a subreaper:
// the step's orphans come to it) whose root is the copy or cannot be read (made
// non-dumpable, or a thread group whose leader thread exited). A process that forks and
// exits without end is a new PID at every look, too quick for a scan of /proc, but each of
// its forks becomes strata's child when its parent exits: strata's children are watched in
// a tight loop and killed with their process groups, which a fork in flight cannot leave.
// The step's processes that die as strata's children are reaped; no other child is touched.
func killRooted(root string) error {
	var want unix.Stat_t
	if err := unix.Stat(root, &want); err != nil {
		return fmt.Errorf("chroot isolation: %w", err)
	}
	self := os.Getpid()
	deadline := time.Now().Add(10 * time.Second)
	for quiet := 0; quiet < 2; {
		found := killChildSteps(self, &want, deadline)
		names, err := os.ReadDir("/proc")
		if err != nil {
			return fmt.Errorf("chroot isolation: listing processes: %w", err)
		}
		for _, d := range names {
			pid, err := strconv.Atoi(d.Name())
			if err != nil || pid == self {
				continue
			}
			if stepProcess(pid, self, &want) {
				_ = unix.Kill(pid, unix.SIGKILL)
				found = true
			}
		}
		reapZombies(self)
		if found {
			quiet = 0
		} else {
			quiet++
			time.Sleep(time.Millisecond)
		}
		if time.Now().After(deadline) {
			return errors.New("chroot isolation: the step's processes keep coming after 10 s of SIGKILL: the build stops, and its caches are not taken back")
		}
	}
	return nil
}

// killChildSteps kills, with their process groups, strata's children that are the step's,
// looking again at once while it finds any (the forks of a process that forks and exits
// arrive one by one), and reports whether it found any.
func killChildSteps(self int, want *unix.Stat_t, deadline time.Time) bool {
	found := false
	ourGroup := unix.Getpgrp()
	for misses := 0; misses < 64 && time.Now().Before(deadline); {
		hit := false
		// A group is killed once a look: killing one walks all its members, and a process
		// that forks and exits leaves thousands of zombies in it.
		killedGroups := map[int]bool{}
		for _, pid := range childrenOf(self) {
			// The step's command leads a session of its own, and its processes stay in
			// process groups of it or their own: strata's other children (credential
			// helpers) are in strata's group. A zombie still names its group, whose
			// live members a kill of the group reaches, forks in flight included.
			_, state, pgrp := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
			foreign := pgrp > 0 && pgrp != ourGroup
			if !foreign && !stepProcess(pid, self, want) {
				continue
			}
			if foreign && !killedGroups[pgrp] {
				_ = unix.Kill(-pgrp, unix.SIGKILL)
				killedGroups[pgrp] = true
			}
			_ = unix.Kill(pid, unix.SIGKILL)
			if state == "Z" {
				_, _ = unix.Wait4(pid, nil, unix.WNOHANG, nil)
			}
			hit = true
		}
		if hit {
			found, misses = true, 0
		} else {
			misses++
		}
	}
	return found
}

// childrenOf lists the children of every thread of the process pid (a subreaper's adopted
// orphans may go to any of its threads).
func childrenOf(pid int) []int {
	files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// reapZombies reaps strata's children that are the step's zombies (in a process group not
// strata's): a process forking and exiting leaves one at every fork, whose root can no
// longer be read, and unreaped they would use up the PIDs while the passes chase it.
func reapZombies(self int) {
	ourGroup := unix.Getpgrp()
	for _, pid := range childrenOf(self) {
		if _, state, pgrp := statFields("/proc/" + strconv.Itoa(pid) + "/stat"); state == "Z" && pgrp > 0 && pgrp != ourGroup {
			_, _ = unix.Wait4(pid, nil, unix.WNOHANG, nil)
		}
	}
}

// stepProcess reports whether pid is the step's: rooted in the copy (want), or a child of
// strata (self) whose root cannot be read and which is not a plain zombie.
func stepProcess(pid, self int, want *unix.Stat_t) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	var st unix.Stat_t
	err := unix.Stat(dir+"/root", &st)
	if err == nil {
		return st.Dev == want.Dev && st.Ino == want.Ino
	}
	ppid, state, _ := statFields(dir + "/stat")
	if ppid != self {
		return false
	}
	if errors.Is(err, unix.EACCES) {
		return true
	}
	// A zombie leader whose other threads still run.
	tasks, _ := os.ReadDir(dir + "/task")
	return state != "Z" || len(tasks) > 1
}

// statFields reads the parent's PID, the state and the process group from a
// /proc/<pid>/stat; -1 and "" when it cannot.
func statFields(file string) (ppid int, state string, pgrp int) {
	b, err := os.ReadFile(file)
	if err != nil {
		return -1, "", -1
	}
	return parseStat(b)
}

// parseStat takes the state, the parent's PID and the process group from the text of a
// /proc/<pid>/stat, after the command name (which may hold spaces and parentheses: the last
// ')' ends it); -1 and "" when it cannot.
func parseStat(b []byte) (ppid int, state string, pgrp int) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1, "", -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return -1, "", -1
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return -1, "", -1
	}
	return ppid, f[0], pgrp
}

// killChildren kills the init's children but the ones already reaped, through the /proc
// opened before the chroot, until none is left: the step's leftovers, which chroot
// isolation has no PID namespace or cgroup to end with.
func killChildren(proc *os.File) {
	self := os.Getpid()
	for {
		names, err := readDirNames(proc)
		if err != nil {
			return
		}
		found := false
		for _, n := range names {
			if n[0] < '0' || n[0] > '9' {
				continue
			}
			if ppidOf(proc, n) == self {
				if pid, err := strconv.Atoi(n); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
					found = true
				}
			}
		}
		// Every child already dead, not one a round.
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if err != unix.EINTR && pid <= 0 {
				break
			}
		}
		if !found {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); err == unix.ECHILD {
				return
			}
		}
	}
}

func readDirNames(dir *os.File) ([]string, error) {
	if _, err := dir.Seek(0, 0); err != nil {
		return nil, err
	}
	return dir.Readdirnames(-1)
}

// ppidOf reads the parent's PID of pid through proc, the /proc opened before the chroot.
func ppidOf(proc *os.File, pid string) int {
	fd, err := unix.Openat(int(proc.Fd()), pid+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	f := os.NewFile(uintptr(fd), "stat")
	defer f.Close()
	var buf [512]byte
	n, _ := f.Read(buf[:])
	ppid, _, _ := parseStat(buf[:n])
	return ppid
}

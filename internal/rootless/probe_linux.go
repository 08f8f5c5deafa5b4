package rootless

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The modes Probe reports; the rootless ones name the mapping (see modeIDs, modeSingle).
const (
	ModeSandbox  = "sandbox: namespaces, overlayfs (root)"
	ModeChroot   = "chroot: pass --isolation=chroot (RUN steps share this container's network and processes)"
	ModeCopyOnly = "COPY/ADD only: RUN steps cannot run (no user namespaces, not root)"
)

func modeIDs(ranges string) string {
	return "rootless: user namespace with subordinate IDs " + ranges
}

func modeSingle(uid int) string {
	return fmt.Sprintf("rootless: user namespace mapping only uid %d (no subordinate IDs: RUN cannot use other users; COPY --chown is recorded in the layers)", uid)
}

// probeArg is the hidden first argument of the children Probe starts: this binary again,
// in the namespaces under test. See ProbeChild.
const probeArg = "__strata-doctor-probe"

// sandboxFlags are the namespaces the RUN sandbox makes (executor/run_linux.go).
const sandboxFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET

// Probe tries what a build needs here (it creates namespaces and mounts an overlay in
// children, rather than guessing from versions and sysctls) and says which mode a build
// would use. It changes nothing outside temporary directories it removes.
func Probe() Report {
	p := newProber()
	p.checkUser()
	p.checkCaps()
	p.checkUserNamespaces()
	p.checkSubordinateIDs()
	p.checkUIDMap()
	p.checkNamespaces()
	p.checkOverlay()
	p.checkCgroups()
	p.checkSeccomp()
	p.r.Mode, p.r.Caveat = decideMode(p.modeFacts())
	p.checkNetwork()
	p.checkStore()
	return p.r
}

// prober holds the facts later checks and the mode depend on.
type prober struct {
	r         Report
	uid, gid  int
	name      string
	root      bool
	status    map[string]string // /proc/self/status
	userns    error             // creating a user namespace mapping the caller
	ns        error             // the sandbox's namespaces and its /proc, /sys mounts
	m         Mapping
	ids       bool  // a build would map the subordinate IDs (as Enter decides)
	mapErr    error // newuidmap/newgidmap refused the ranges
	pidsLimit bool  // a RUN step gets a cgroup with a pids limit
	store     string
	storeErr  error
}

func newProber() *prober {
	p := &prober{uid: os.Geteuid(), gid: os.Getegid()}
	p.root = p.uid == 0
	if u, err := user.LookupId(strconv.Itoa(p.uid)); err == nil {
		p.name = u.Username
	}
	p.status = readStatus()
	p.store, p.storeErr = StoreRoot(p.root)
	return p
}

func (p *prober) add(name, status, detail, fix string) {
	p.r.Checks = append(p.r.Checks, Check{Name: name, Status: status, Detail: detail, Fix: fix})
}

// who names the user for a fix: usermod takes a name.
func (p *prober) who() string {
	if p.name != "" {
		return p.name
	}
	return strconv.Itoa(p.uid)
}

func (p *prober) checkUser() {
	d := fmt.Sprintf("uid %d", p.uid)
	if p.name != "" {
		d = fmt.Sprintf("%s (uid %d)", p.name, p.uid)
	}
	switch {
	case !p.root:
		d += ", not root"
	case p.name != "root":
		d += ", root"
	}
	if InUserNamespace() {
		d += ", in a user namespace already"
		if p.root {
			d += " (root of a container, not of the host)"
		}
	}
	p.add("user", StatusOK, d, "")
}

// requiredCaps are what root needs: the sandbox CAP_SYS_ADMIN, chroot isolation the others
// (executor's checkIsolation).
var requiredCaps = []struct {
	name string
	bit  uint
	use  string
	fix  string
}{
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN, "mounts and namespaces (the RUN sandbox)", "run the container with --privileged (or --cap-add SYS_ADMIN, seccomp and AppArmor unconfined), or build with --isolation=chroot"},
	{"CAP_SYS_CHROOT", unix.CAP_SYS_CHROOT, "chroot (--isolation=chroot)", "keep Docker's default capabilities (--cap-add SYS_CHROOT)"},
	{"CAP_MKNOD", unix.CAP_MKNOD, "device nodes and whiteouts in layers", "keep Docker's default capabilities (--cap-add MKNOD)"},
	{"CAP_SETUID", unix.CAP_SETUID, "RUN as the image's users", "keep Docker's default capabilities (--cap-add SETUID)"},
	{"CAP_SETGID", unix.CAP_SETGID, "RUN as the image's groups", "keep Docker's default capabilities (--cap-add SETGID)"},
}

func (p *prober) checkCaps() {
	if !p.root {
		p.add("capabilities", StatusNA, "not root: strata is root of a user namespace of its own", "")
		return
	}
	eff, err := p.capEff()
	if err != nil {
		p.add("capabilities", StatusNA, err.Error(), "")
		return
	}
	for _, c := range requiredCaps {
		if eff&(1<<c.bit) != 0 {
			p.add(c.name, StatusOK, c.use, "")
		} else {
			p.add(c.name, StatusMissing, "not in CapEff: no "+c.use, c.fix)
		}
	}
}

func (p *prober) capEff() (uint64, error) {
	v, ok := p.status["CapEff"]
	if !ok {
		return 0, errors.New("no CapEff in /proc/self/status")
	}
	eff, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("reading CapEff %q: %w", v, err)
	}
	return eff, nil
}

func (p *prober) hasCaps(bits ...uint) bool {
	eff, err := p.capEff()
	for _, b := range bits {
		if eff&(1<<b) == 0 {
			return false
		}
	}
	return err == nil
}

func (p *prober) checkUserNamespaces() {
	p.userns = runChild(syscall.CLONE_NEWUSER, "exit")
	switch {
	case p.userns == nil && p.root:
		p.add("userns", StatusOK, "a user namespace can be created (not needed as root)", "")
	case p.userns == nil:
		p.add("userns", StatusOK, fmt.Sprintf("a user namespace mapping uid %d to root can be created", p.uid), "")
	case p.root:
		p.add("userns", StatusNA, "not needed as root; "+p.userns.Error(), "")
	default:
		detail, fix := usernsAdvice(p.userns, readSysctls(), p.status["Seccomp"])
		p.add("userns", StatusMissing, detail, fix)
	}
}

// The sysctls that decide whether a user without root may create user namespaces.
const (
	sysctlMaxUserNS   = "/proc/sys/user/max_user_namespaces"
	sysctlUnprivClone = "/proc/sys/kernel/unprivileged_userns_clone" // Debian's and Ubuntu's
	sysctlAppArmor    = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
)

func readSysctls() map[string]string {
	out := map[string]string{}
	for _, f := range []string{sysctlMaxUserNS, sysctlUnprivClone, sysctlAppArmor} {
		if b, err := os.ReadFile(f); err == nil {
			out[f] = strings.TrimSpace(string(b))
		}
	}
	return out
}

// usernsAdvice explains a refused user namespace from its errno, the sysctls that can cause
// it and the seccomp mode ("2": under a filter, as in a container).
func usernsAdvice(err error, sysctls map[string]string, seccompMode string) (detail, fix string) {
	detail = err.Error()
	switch errnoOf(err) {
	case unix.ENOSPC:
		if v, ok := sysctls[sysctlMaxUserNS]; ok {
			detail += " (" + sysctlMaxUserNS + " is " + v + ")"
		}
		return detail, "as root: sysctl -w user.max_user_namespaces=15000"
	case unix.EINVAL:
		return detail + " (a kernel without CONFIG_USER_NS?)", "a kernel with user namespaces (CONFIG_USER_NS)"
	case unix.EPERM, unix.EACCES:
		switch {
		case sysctls[sysctlUnprivClone] == "0":
			return detail + " (" + sysctlUnprivClone + " is 0)", "as root: sysctl -w kernel.unprivileged_userns_clone=1"
		case sysctls[sysctlAppArmor] == "1":
			return detail + " (" + sysctlAppArmor + " is 1)", "as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile allowing userns for strata"
		case seccompMode == "2":
			return detail + " (this process is under a seccomp filter: a container's?)", "run the container with --security-opt seccomp=unconfined, or run strata as root there with --isolation=chroot"
		}
		return detail + " (a seccomp filter or a sysctl forbids it)", "allow user namespaces for this user (see " + sysctlUnprivClone + ", " + sysctlMaxUserNS + "), or run strata as root"
	}
	return detail, "allow user namespaces for this user, or run strata as root"
}

func (p *prober) checkSubordinateIDs() {
	if p.root {
		p.add("subids", StatusNA, "root uses the host's IDs", "")
		return
	}
	fix := fmt.Sprintf("as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s", p.who())
	m, err := LookupMapping()
	p.m = m
	if err != nil {
		p.add("subids", StatusMissing, err.Error(), "correct the line in /etc/subuid or /etc/subgid (NAME:START:COUNT)")
		return
	}
	var none []string
	if len(m.SubUID) == 0 {
		none = append(none, "/etc/subuid")
	}
	if len(m.SubGID) == 0 {
		none = append(none, "/etc/subgid")
	}
	if len(none) > 0 {
		p.add("subids", StatusMissing, fmt.Sprintf("no ranges for %s in %s: RUN can use uid 0 only", p.who(), strings.Join(none, " or ")), fix)
		return
	}
	p.add("subids", StatusOK, fmt.Sprintf("uids %s, gids %s: %d IDs besides uid %d", formatRanges(m.SubUID), formatRanges(m.SubGID), m.Size()-1, p.uid), "")
}

// formatRanges writes ranges as first-last IDs, as usermod takes them.
func formatRanges(rs []Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d-%d", r.Start, r.Start+r.Count-1)
	}
	return strings.Join(parts, ",")
}

// mappedRanges is the ranges for the mode line: once when uids and gids are the same.
func mappedRanges(m Mapping) string {
	u, g := formatRanges(m.SubUID), formatRanges(m.SubGID)
	if u == g {
		return u
	}
	return "uids " + u + ", gids " + g
}

func (p *prober) checkUIDMap() {
	if p.root {
		p.add("uidmap", StatusNA, "root maps no IDs", "")
		return
	}
	uidmap, err1 := exec.LookPath("newuidmap")
	gidmap, err2 := exec.LookPath("newgidmap")
	if err1 != nil || err2 != nil {
		p.add("uidmap", StatusMissing, "newuidmap or newgidmap not found in PATH", "as root: apt-get install uidmap")
		return
	}
	// As Enter decides: the subordinate IDs are mapped when there are some and the tools
	// are found.
	p.ids = p.m.Size() > 1
	var weak []string
	for _, prog := range []string{uidmap, gidmap} {
		if !privileged(prog) {
			weak = append(weak, prog)
		}
	}
	if len(weak) > 0 {
		p.mapErr = fmt.Errorf("not setuid root and without file capabilities: %s", strings.Join(weak, ", "))
		p.add("uidmap", StatusMissing, p.mapErr.Error(), "as root: chmod u+s "+strings.Join(weak, " ")+" (or apt-get install --reinstall uidmap)")
		return
	}
	detail := uidmap + ", " + gidmap + " (privileged)"
	if !p.ids || p.userns != nil {
		p.add("uidmap", StatusOK, detail, "")
		return
	}
	if p.mapErr = tryMapping(p.m, uidmap, gidmap); p.mapErr != nil {
		p.add("uidmap", StatusMissing, "mapping the subordinate IDs: "+p.mapErr.Error(),
			"correct the ranges in /etc/subuid and /etc/subgid (or remove them to build with uid "+strconv.Itoa(p.uid)+" only)")
		return
	}
	p.add("uidmap", StatusOK, detail+"; the ranges map", "")
}

// privileged reports whether a newuidmap may write mappings for others' IDs: setuid root,
// or file capabilities (Fedora's way).
func privileged(prog string) bool {
	var st unix.Stat_t
	if err := unix.Stat(prog, &st); err != nil {
		return false
	}
	if st.Mode&unix.S_ISUID != 0 && st.Uid == 0 {
		return true
	}
	n, err := unix.Getxattr(prog, "security.capability", nil)
	return err == nil && n > 0
}

// tryMapping maps m's ranges onto a child in a new user namespace with newuidmap and
// newgidmap, as Enter does.
func tryMapping(m Mapping, uidmap, gidmap string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := childCommand(ctx, syscall.CLONE_NEWUSER, "wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("starting the probe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return describe("creating a user namespace", err)
	}
	// Closing stdin ends the child.
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	pid := strconv.Itoa(cmd.Process.Pid)
	size := m.Size()
	if err := runMap(uidmap, pid, idMap(m.UID, m.SubUID, size)); err != nil {
		return err
	}
	return runMap(gidmap, pid, idMap(m.GID, m.SubGID, size))
}

func (p *prober) checkNamespaces() {
	flags := uintptr(sandboxFlags)
	where := ""
	if !p.root {
		if p.userns != nil {
			p.ns = p.userns
			p.add("namespaces", StatusNA, "no user namespace to make them in", "")
			return
		}
		flags |= syscall.CLONE_NEWUSER
		where = " in a user namespace"
	}
	p.ns = withTempDirs(os.TempDir(), []string{"proc", "sys"}, func(dir string) error {
		return runChild(flags, "sandbox", dir)
	})
	if p.ns == nil {
		p.add("namespaces", StatusOK, "mount, PID, UTS, IPC and network namespaces, /proc and /sys mounted"+where, "")
		return
	}
	fix := "run the container with --privileged, or build with --isolation=chroot"
	if !p.root {
		fix = "run strata as root (in an unprivileged container: with --isolation=chroot)"
	}
	p.add("namespaces", StatusMissing, p.ns.Error(), fix)
}

// overlayOptions are the executor's (rootfs_linux.go): plain upper dirs, and in a user
// namespace the user.overlay.* xattrs.
func (p *prober) overlayOptions() string {
	if p.root {
		return "index=off,redirect_dir=off,metacopy=off"
	}
	return "userxattr,redirect_dir=nofollow,index=off,metacopy=off"
}

func (p *prober) checkOverlay() {
	if p.ns != nil {
		p.add("overlayfs", StatusNA, "no sandbox to mount it in", "")
		return
	}
	flags := uintptr(syscall.CLONE_NEWNS)
	where := ""
	if !p.root {
		flags |= syscall.CLONE_NEWUSER
		where = " in a user namespace"
	}
	// The store's file system is the one that matters: overlayfs cannot stack on some
	// (overlayfs itself, in a container).
	base := p.overlayBase()
	opts := p.overlayOptions()
	err := withTempDirs(base, []string{"lower", "upper", "work", "merged"}, func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "lower", "file"), nil, 0o644); err != nil {
			return fmt.Errorf("preparing the overlay probe: %w", err)
		}
		return runChild(flags, "overlay", dir, opts)
	})
	if err == nil {
		p.add("overlayfs", StatusOK, "mounted"+where+" on "+base+", written through", "")
		return
	}
	p.add("overlayfs", StatusMissing, err.Error()+"; "+fuseReport(), overlayFix(base, p.root))
}

// overlayBase is where the overlay probe's directories go: in the store when it exists,
// else beside where it will be, else in the temporary directory.
func (p *prober) overlayBase() string {
	if p.storeErr == nil {
		if d := nearestExisting(p.store); d != "" && unix.Access(d, unix.W_OK) == nil {
			return d
		}
	}
	return os.TempDir()
}

// overlayFix says what to do about a failed overlay mount; strata copies the base of each
// RUN step instead, so nothing is needed but speed.
func overlayFix(base string, root bool) string {
	var st unix.Statfs_t
	if unix.Statfs(base, &st) == nil && st.Type == unix.OVERLAYFS_SUPER_MAGIC {
		return base + " is on overlayfs (a container's root?), which overlayfs cannot use: put the store on a volume, or pass --root on another file system"
	}
	if !root && !kernelAtLeast(5, 11) {
		return "a 5.11+ kernel mounts overlayfs in a user namespace; until then RUN steps copy their base (slower)"
	}
	return "none needed: RUN steps copy their base instead (slower)"
}

// fuseReport says whether fuse-overlayfs could be used here. strata does not use it; the
// report is for the operator weighing the copy fallback.
func fuseReport() string {
	bin := "fuse-overlayfs not found"
	if p, err := exec.LookPath("fuse-overlayfs"); err == nil {
		bin = "fuse-overlayfs at " + p
	}
	dev := "/dev/fuse opens"
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		dev = "/dev/fuse does not open: " + errText(err)
	} else {
		f.Close()
	}
	return bin + ", " + dev
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return true
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// checkCgroups reads the facts executor's detectCgroups decides on: root outside a user
// namespace, a pids controller (v2's, or v1's pids hierarchy), and a tree strata can write.
func (p *prober) checkCgroups() {
	version, base, pids := cgroupLayout()
	if version == "" {
		p.add("cgroups", StatusMissing, "no cgroup file system at /sys/fs/cgroup", "mount cgroup2 on /sys/fs/cgroup; until then RUN steps get no pids limit")
		return
	}
	detail := version
	if pids {
		detail += ", pids controller"
	} else {
		detail += ", no pids controller"
	}
	switch {
	case p.root && (p.ns != nil || !p.hasCaps(unix.CAP_SYS_ADMIN)):
		p.add("cgroups", StatusNA, detail+"; not used: under --isolation=chroot RUN steps stay in this container's cgroup", "")
	case !p.root || InUserNamespace():
		p.add("cgroups", StatusNA, detail+"; not used: cgroups are not delegated to a user namespace, so RUN steps get no pids limit", "")
	case !pids:
		p.add("cgroups", StatusMissing, detail+": RUN steps get no pids limit", "a kernel with the pids controller (CONFIG_CGROUP_PIDS)")
	default:
		if err := cgroupWritable(base); err != nil {
			p.add("cgroups", StatusMissing, detail+"; "+err.Error()+": RUN steps get no pids limit",
				"give the container a writable cgroup tree (docker run --privileged), or accept RUN steps without a pids limit")
			return
		}
		p.pidsLimit = true
		p.add("cgroups", StatusOK, detail+"; strata can create cgroups in "+base, "")
	}
}

// cgroupLayout says which hierarchy /sys/fs/cgroup holds, where strata's cgroups would go,
// and whether the pids controller is there.
func cgroupLayout() (version, base string, pids bool) {
	const root = "/sys/fs/cgroup"
	var st unix.Statfs_t
	if unix.Statfs(root, &st) != nil {
		return "", "", false
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, _ := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		return "cgroup v2", root, hasWord(string(b), "pids")
	}
	version = "cgroup v1"
	if unix.Statfs(filepath.Join(root, "unified"), &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		version = "cgroup hybrid (v1 controllers, v2 at " + root + "/unified)"
	}
	base = filepath.Join(root, "pids")
	pids = unix.Statfs(base, &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC
	return version, base, pids
}

// cgroupWritable says why strata could not make its cgroups under base: a read-only tree (a
// container's), or on v2 a cgroup namespace's root that holds processes, whose children
// cannot get controllers enabled (the no-internal-process rule).
func cgroupWritable(base string) error {
	dir := base
	if _, err := os.Stat(filepath.Join(base, "strata")); err == nil {
		dir = filepath.Join(base, "strata")
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable: %s", dir, errText(err))
	}
	// Only a non-root cgroup has cgroup.type: here, the root of a cgroup namespace.
	if _, err := os.Stat(filepath.Join(base, "cgroup.type")); err != nil {
		return nil
	}
	enabled, _ := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
	procs, _ := os.ReadFile(filepath.Join(base, "cgroup.procs"))
	if !hasWord(string(enabled), "pids") && len(bytes.TrimSpace(procs)) > 0 {
		return fmt.Errorf("%s holds processes, so the pids controller cannot be enabled below it", base)
	}
	return nil
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func (p *prober) checkSeccomp() {
	mode, ok := p.status["Seccomp"]
	switch {
	case !ok:
		p.add("seccomp", StatusMissing, "the kernel has no seccomp (no Seccomp: in /proc/self/status)", "a kernel with CONFIG_SECCOMP_FILTER")
	case mode == "2":
		d := "filters supported; this process is already under one"
		if n := p.status["Seccomp_filters"]; n != "" {
			d += " (" + n + ")"
		}
		p.add("seccomp", StatusOK, d+": a container's profile may refuse unshare and mount", "")
	default:
		p.add("seccomp", StatusOK, "filters supported; this process is under none", "")
	}
}

// modeFacts are what decideMode needs, apart for testing.
type modeFacts struct {
	root, sysAdmin, chrootCaps   bool
	userns, namespaces           bool
	ids, mappingFails, pidsLimit bool
	uid                          int
	ranges                       string
}

func (p *prober) modeFacts() modeFacts {
	return modeFacts{
		root: p.root, sysAdmin: p.hasCaps(unix.CAP_SYS_ADMIN), userns: p.userns == nil, namespaces: p.ns == nil,
		chrootCaps: p.hasCaps(unix.CAP_SYS_CHROOT, unix.CAP_MKNOD, unix.CAP_SETUID, unix.CAP_SETGID),
		ids:        p.ids, mappingFails: p.ids && p.mapErr != nil, pidsLimit: p.pidsLimit,
		uid: p.uid, ranges: mappedRanges(p.m),
	}
}

const noPidsRootless = "weaker than the root sandbox: no pids limit on RUN steps (cgroups are not delegated to a user namespace)"

// decideMode is the mode a build would use, and the guarantees of SECURITY.md it lacks.
func decideMode(f modeFacts) (mode, caveat string) {
	if f.root {
		if !f.sysAdmin || !f.namespaces {
			if !f.chrootCaps {
				return ModeChroot, "RUN steps fail here: --isolation=chroot needs the capabilities missing above"
			}
			// SECURITY.md, "Without root": the container is the boundary.
			return ModeChroot, "weaker than the sandbox: no mount, PID, network, UTS or IPC namespaces, so RUN steps can signal this container's other root processes (not strata's) and use its network and hostname; no /proc, no pids limit of their own"
		}
		if !f.pidsLimit {
			caveat = "weaker than the full sandbox: no pids limit on RUN steps (strata cannot use cgroups here)"
		}
		return ModeSandbox, caveat
	}
	if !f.userns {
		return ModeCopyOnly, "no sandbox: a RUN step fails the build; COPY and ADD work, with owners recorded in the layers"
	}
	mode = modeSingle(f.uid)
	if f.ids {
		mode = modeIDs(f.ranges)
	}
	switch {
	case f.mappingFails:
		caveat = "builds fail here: newuidmap/newgidmap refuse the subordinate IDs (see uidmap)"
	case !f.namespaces:
		caveat = "RUN steps fail here: the sandbox's namespaces or mounts are refused (see namespaces)"
	default:
		caveat = noPidsRootless
	}
	return mode, caveat
}

// checkNetwork: a step on the default network needs slirp4netns and /dev/net/tun
// (executor's CheckNetwork), in the namespaced sandbox only.
func (p *prober) checkNetwork() {
	var why string
	switch {
	case p.r.Mode == ModeChroot:
		why = "not used: under --isolation=chroot RUN steps use this container's network"
	case p.r.Mode == ModeCopyOnly:
		why = "not used: RUN steps cannot run"
	}
	if why != "" {
		p.add("slirp4netns", StatusNA, why, "")
		p.add("tun", StatusNA, why, "")
		return
	}
	if path, err := exec.LookPath("slirp4netns"); err == nil {
		p.add("slirp4netns", StatusOK, path, "")
	} else {
		p.add("slirp4netns", StatusMissing, "not found in PATH: RUN's default network needs it", "as root: apt-get install slirp4netns; or build with --network=none")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err == nil {
		f.Close()
		p.add("tun", StatusOK, "/dev/net/tun opens read-write", "")
		return
	}
	fix := "as root: chmod 0666 /dev/net/tun (Debian's default); or build with --network=none"
	if errors.Is(err, os.ErrNotExist) {
		fix = "as root: modprobe tun (in a container: --device /dev/net/tun); or build with --network=none"
	}
	p.add("tun", StatusMissing, "/dev/net/tun does not open read-write: "+errText(err), fix)
}

func (p *prober) checkStore() {
	if p.storeErr != nil {
		p.add("store", StatusMissing, "no store directory: "+p.storeErr.Error(), "set HOME or XDG_DATA_HOME, or pass --root DIR")
		return
	}
	fix := "pass --root DIR (a directory uid " + strconv.Itoa(p.uid) + " can write)"
	if fi, err := os.Stat(p.store); err == nil {
		switch {
		case !fi.IsDir():
			p.add("store", StatusMissing, p.store+" is not a directory", fix)
		case unix.Access(p.store, unix.W_OK) != nil:
			p.add("store", StatusMissing, p.store+" exists but is not writable", fix)
		default:
			p.add("store", StatusOK, p.store+" (exists)", "")
		}
		return
	}
	parent := nearestExisting(filepath.Dir(p.store))
	if err := unix.Access(parent, unix.W_OK); err != nil {
		p.add("store", StatusMissing, fmt.Sprintf("%s: %s is not writable: %s", p.store, parent, errText(err)), fix)
		return
	}
	p.add("store", StatusOK, p.store+" (to be created; "+parent+" is writable)", "")
}

// nearestExisting is p or its closest existing ancestor.
func nearestExisting(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// withTempDirs runs f on a new directory in base holding the empty directories names, and
// removes it afterwards.
func withTempDirs(base string, names []string, f func(dir string) error) error {
	dir, err := os.MkdirTemp(base, ".strata-doctor-")
	if err != nil {
		return fmt.Errorf("preparing the probe: %w", err)
	}
	defer removeTree(dir)
	for _, n := range names {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			return fmt.Errorf("preparing the probe: %w", err)
		}
	}
	return f(dir)
}

// removeTree removes dir, also what overlayfs left in its work directory: a directory of
// mode 0 (work/work) holding a whiteout.
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700) // before WalkDir reads it
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// readStatus reads the "Name:\tvalue" lines of /proc/self/status.
func readStatus() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// probeError is a failed attempt: what was tried and the errno, when there is one.
type probeError struct {
	text  string
	errno unix.Errno
}

func (e *probeError) Error() string { return e.text }

func (e *probeError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

func describe(op string, err error) *probeError {
	if errno := errnoOf(err); errno != 0 {
		return &probeError{text: op + ": " + errnoText(errno), errno: errno}
	}
	return &probeError{text: op + ": " + err.Error()}
}

func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

func errnoText(e unix.Errno) string {
	return fmt.Sprintf("%v (%s)", e, unix.ErrnoName(e))
}

// errText is an error's errno spelled out, or its text.
func errText(err error) string {
	if e := errnoOf(err); e != 0 {
		return errnoText(e)
	}
	return err.Error()
}

// childCommand is this binary as a probe child in new namespaces (flags); in a new user
// namespace the caller is mapped to root unless the task maps it itself ("wait").
func childCommand(ctx context.Context, flags uintptr, task string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/proc/self/exe", append([]string{probeArg, task}, args...)...)
	// Nothing of the caller's environment: in particular not Enter's variables.
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	if flags&syscall.CLONE_NEWUSER != 0 && task != "wait" {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return cmd
}

// runChild runs a probe task in a child and returns why it failed: the errno of the
// clone (or of writing its ID maps), or the one the child exited with and its message.
func runChild(flags uintptr, task string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := childCommand(ctx, flags, task, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return describe("creating "+namespaceNames(flags), err)
	}
	err := cmd.Wait()
	if err == nil {
		return nil
	}
	msg := strings.Join(strings.Fields(stderr.String()), " ")
	if ctx.Err() != nil {
		return fmt.Errorf("%s probe: timed out", task)
	}
	var exit *exec.ExitError
	if msg == "" || !errors.As(err, &exit) {
		return fmt.Errorf("%s probe: %w", task, err)
	}
	code := exit.ExitCode()
	if code > 0 && code < maxErrno {
		return &probeError{text: msg, errno: unix.Errno(code)}
	}
	return &probeError{text: msg}
}

// maxErrno bounds the exit codes that carry an errno; a child exits with it for a failure
// without one.
const maxErrno = 255

func namespaceNames(flags uintptr) string {
	names := []struct {
		flag uintptr
		name string
	}{{syscall.CLONE_NEWUSER, "user"}, {syscall.CLONE_NEWNS, "mount"}, {syscall.CLONE_NEWPID, "PID"},
		{syscall.CLONE_NEWUTS, "UTS"}, {syscall.CLONE_NEWIPC, "IPC"}, {syscall.CLONE_NEWNET, "network"}}
	var out []string
	for _, n := range names {
		if flags&n.flag != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 1 {
		return "a " + out[0] + " namespace"
	}
	return strings.Join(out, ", ") + " namespaces"
}

// ProbeChild does the work of a child Probe started, when this process is one, and exits
// with 0, the errno of what failed, or maxErrno; otherwise it returns. main calls it right
// after Init (a test binary in TestMain), before anything else can act on the arguments.
func ProbeChild() {
	if len(os.Args) < 3 || os.Args[1] != probeArg {
		return
	}
	// The probes mount and change propagation: only ever in the namespaces doctor made for
	// them (a PID namespace's first process has no parent in view), never in the caller's,
	// whoever runs the argument by hand.
	mounts := os.Args[2] == "sandbox" || os.Args[2] == "overlay"
	if mounts && os.Getppid() != 0 && !otherMountNamespace(os.Getppid()) {
		fmt.Fprintln(os.Stderr, "strata: "+probeArg+" is strata doctor's, run in namespaces of its own")
		os.Exit(maxErrno)
	}
	err := childTask(os.Args[2], os.Args[3:])
	if err == nil {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, err)
	if e := errnoOf(err); e > 0 && e < maxErrno {
		os.Exit(int(e))
	}
	os.Exit(maxErrno)
}

// otherMountNamespace reports whether this process's mount namespace is not pid's.
func otherMountNamespace(pid int) bool {
	mine, err1 := os.Readlink("/proc/self/ns/mnt")
	theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	return err1 == nil && err2 == nil && mine != theirs
}

func childTask(task string, args []string) error {
	switch {
	case task == "exit":
		return nil
	case task == "wait":
		// Until the parent, done mapping IDs, closes stdin.
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	case task == "sandbox" && len(args) == 1:
		return sandboxMounts(args[0])
	case task == "overlay" && len(args) == 2:
		return overlayMount(args[0], args[1])
	}
	return fmt.Errorf("unknown probe %q %q", task, args)
}

// sandboxMounts mounts what the sandbox mounts before the overlay: a fresh /proc for the
// new PID namespace and a read-only /sys, which a container may refuse (masked /proc paths
// make a new proc "too revealing" in a user namespace).
func sandboxMounts(dir string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return describe("making mounts private", err)
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("proc", filepath.Join(dir, "proc"), "proc", flags, ""); err != nil {
		return describe("mounting proc", err)
	}
	if err := unix.Mount("sysfs", filepath.Join(dir, "sys"), "sysfs", flags|unix.MS_RDONLY, ""); err != nil {
		return describe("mounting sysfs", err)
	}
	return nil
}

// overlayMount mounts an overlay of dir's lower, upper and work directories on merged, and
// writes and deletes through it: a copy-up and a whiteout, what a step does.
func overlayMount(dir, opts string) error {
	// Private first: as root the new mount namespace would pass the mount to the host's.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return describe("making mounts private", err)
	}
	// Relative paths: a directory name with ',' or ':' would split the options.
	if err := os.Chdir(dir); err != nil {
		return describe("entering the probe directory", err)
	}
	if err := unix.Mount("overlay", "merged", "overlay", 0, "lowerdir=lower,upperdir=upper,workdir=work,"+opts); err != nil {
		return describe("mounting overlay ("+opts+")", err)
	}
	if err := os.WriteFile("merged/new", []byte("x"), 0o644); err != nil {
		return describe("writing through the overlay", err)
	}
	if err := os.Remove("merged/file"); err != nil {
		return describe("deleting a lower file through the overlay", err)
	}
	return nil
}

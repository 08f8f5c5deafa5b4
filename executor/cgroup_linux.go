package executor

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/rootless"
)

// cgroups puts each step in a cgroup of its own under a "strata" cgroup strata creates: on
// cgroup v2 at the root of the unified hierarchy, on v1 in the pids hierarchy. The step's
// pids.max bounds it, and the cgroup lists every process of the step for the final kill.
type cgroups struct {
	base string // the parent of the steps' cgroups; "" when cgroups cannot be used
	v2   bool
	why  string // why cgroups are not used
}

// detectCgroups finds where steps' cgroups can go. The pids controller is the one needed:
// on a hybrid host (v1 controllers, an empty v2 hierarchy beside them) that is v1's.
func detectCgroups() *cgroups {
	if os.Geteuid() != 0 {
		return &cgroups{why: "not running as root"}
	}
	if rootless.InUserNamespace() {
		return &cgroups{why: "strata runs in a user namespace (rootless), where cgroups are not delegated"}
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return &cgroups{why: "no /sys/fs/cgroup"}
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return setupV2("/sys/fs/cgroup")
	}
	if err := unix.Statfs("/sys/fs/cgroup/pids", &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		return setupV1("/sys/fs/cgroup/pids")
	}
	return &cgroups{why: "no pids controller in /sys/fs/cgroup"}
}

func setupV2(root string) *cgroups {
	controllers, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil || !strings.Contains(" "+strings.TrimSpace(string(controllers))+" ", " pids ") {
		return &cgroups{why: "the cgroup v2 hierarchy has no pids controller"}
	}
	base := filepath.Join(root, "strata")
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return &cgroups{why: err.Error()}
	}
	// The root cgroup may hold processes and enable controllers for its children; strata's
	// own cgroup holds only the steps' cgroups.
	for _, dir := range []string{root, base} {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+pids"), 0); err != nil {
			return &cgroups{why: "enabling the pids controller: " + err.Error()}
		}
	}
	c := &cgroups{base: base, v2: true}
	c.removeStale()
	return c
}

func setupV1(root string) *cgroups {
	base := filepath.Join(root, "strata")
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return &cgroups{why: err.Error()}
	}
	c := &cgroups{base: base}
	c.removeStale()
	return c
}

// removeStale removes the cgroups of steps whose builder is gone (killed before it could
// clean up), named by its pid; rmdir refuses one that still has processes. Another live
// builder's cgroup, maybe just made and not yet filled, is left alone.
func (c *cgroups) removeStale() {
	entries, _ := os.ReadDir(c.base)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "step-")
		if !e.IsDir() || !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 && unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		unix.Rmdir(filepath.Join(c.base, e.Name()))
	}
}

// stepCgroup is one step's cgroup.
type stepCgroup struct {
	dir string
	v2  bool
}

// create makes a step's cgroup with its pids limit (none when limit < 0).
func (c *cgroups) create(limit int64) (*stepCgroup, error) {
	id, err := randomName()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.base, fmt.Sprintf("step-%d-%s", os.Getpid(), id))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup: %w", err)
	}
	cg := &stepCgroup{dir: dir, v2: c.v2}
	if limit >= 0 {
		if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
			cg.remove()
			return nil, fmt.Errorf("setting the pids limit: %w", err)
		}
	}
	return cg, nil
}

// add moves pid into the cgroup; its children are born there.
func (cg *stepCgroup) add(pid int) error {
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("moving the sandbox into its cgroup: %w", err)
	}
	return nil
}

// pidsEvents is how often the step hit its pids limit.
func (cg *stepCgroup) pidsEvents() int {
	data, err := os.ReadFile(filepath.Join(cg.dir, "pids.events"))
	if err != nil {
		return 0
	}
	for _, f := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if n, ok := strings.CutPrefix(f, "max "); ok {
			v, _ := strconv.Atoi(n)
			return v
		}
	}
	return 0
}

// killAll kills every process left in the cgroup and waits until it is empty (a process
// forking while being killed is caught on the next pass), then removes the cgroup.
func (cg *stepCgroup) killAll() {
	if cg.v2 {
		os.WriteFile(filepath.Join(cg.dir, "cgroup.kill"), []byte("1"), 0)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := cg.procs()
		if len(pids) == 0 || time.Now().After(deadline) {
			break
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
	cg.remove()
}

func (cg *stepCgroup) procs() []int {
	data, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if pid, err := strconv.Atoi(sc.Text()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func randomName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("naming a cgroup: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (cg *stepCgroup) remove() {
	// A cgroup is empty some time after its last process is reaped; retry briefly.
	for i := 0; i < 100; i++ {
		if err := unix.Rmdir(cg.dir); err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

package executor

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// unmappedIDs says which of the step user's IDs the user namespace strata runs in does not
// map (a user without subordinate IDs maps only itself, as root): the kernel would refuse
// them with a bare EINVAL, and the step fails naming them instead. Empty when all are
// mapped, or outside a user namespace.
func unmappedIDs(u execUser) string {
	var missing []string
	if !idMapped("/proc/self/uid_map", u.UID) {
		missing = append(missing, "uid "+strconv.Itoa(u.UID))
	}
	for _, g := range append([]int{u.GID}, u.Groups...) {
		if !idMapped("/proc/self/gid_map", g) {
			missing = append(missing, "gid "+strconv.Itoa(g))
			break
		}
	}
	if missing == nil {
		return ""
	}
	return fmt.Sprintf("USER needs %s, which this user namespace does not map: the user running strata has no subordinate IDs (/etc/subuid, /etc/subgid and newuidmap from Debian's uidmap; run strata doctor)", strings.Join(missing, " and "))
}

// idMapped reports whether id is inside one of the map's ranges (first field: the ID in
// this namespace, third: the count). A map that cannot be read maps everything.
func idMapped(file string, id int) bool {
	f, err := os.Open(file)
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		inside, err1 := strconv.ParseInt(fields[0], 10, 64)
		count, err2 := strconv.ParseInt(fields[2], 10, 64)
		if err1 == nil && err2 == nil && int64(id) >= inside && int64(id) < inside+count {
			return true
		}
	}
	return false
}

// setgroupsDenied reports a user namespace where setgroups(2) is refused (one mapped
// by an unprivileged process without newgidmap): the step keeps the init's groups.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

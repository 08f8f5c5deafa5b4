// Package rootless is how strata runs without root: the user's subordinate ID ranges
// (/etc/subuid, /etc/subgid), the user namespace the whole command re-executes itself in
// (as podman and `buildah unshare` do), and the probe of what this environment allows that
// `strata doctor` reports and the build's mode choice uses.
package rootless

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Range is a run of subordinate IDs: Count IDs from Start, from /etc/subuid or /etc/subgid.
type Range struct{ Start, Count int }

// Mapping is what the user namespace maps: the caller to root, and when the caller has
// subordinate ranges, the image's IDs 1..Size-1 onto them.
type Mapping struct {
	UID, GID       int
	SubUID, SubGID []Range
}

// Size is how many IDs (uids and gids alike: the smaller of the two) the namespace maps
// from 0; 1 when the caller has no ranges.
func (m Mapping) Size() int {
	u, g := total(m.SubUID), total(m.SubGID)
	return 1 + min(u, g)
}

func total(rs []Range) int {
	n := 0
	for _, r := range rs {
		n += r.Count
	}
	return n
}

// idMap is the lines newuidmap/newgidmap take as arguments: inside, outside, count.
func idMap(self int, sub []Range, size int) []string {
	args := []string{"0", strconv.Itoa(self), "1"}
	inside := 1
	for _, r := range sub {
		if inside >= size {
			break
		}
		n := min(r.Count, size-inside)
		args = append(args, strconv.Itoa(inside), strconv.Itoa(r.Start), strconv.Itoa(n))
		inside += n
	}
	return args
}

// LookupMapping reads the calling user's ranges. No ranges is not an error: the mapping
// then has the caller only.
func LookupMapping() (Mapping, error) {
	m := Mapping{UID: os.Getuid(), GID: os.Getgid()}
	name := ""
	if u, err := user.LookupId(strconv.Itoa(m.UID)); err == nil {
		name = u.Username
	}
	var err error
	if m.SubUID, err = readRanges("/etc/subuid", name, m.UID); err != nil {
		return m, err
	}
	if m.SubGID, err = readRanges("/etc/subgid", name, m.UID); err != nil {
		return m, err
	}
	return m, nil
}

// readRanges returns the ranges of the user (by name or uid, as shadow's newuidmap matches
// them) in file; a missing file has none.
func readRanges(file, name string, uid int) ([]Range, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseRanges(f, file, name, uid)
}

func parseRanges(f io.Reader, file, name string, uid int) ([]Range, error) {
	var out []Range
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%s:%d: want NAME:START:COUNT", file, n)
		}
		if parts[0] != name && parts[0] != strconv.Itoa(uid) {
			continue
		}
		start, err1 := strconv.Atoi(parts[1])
		count, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || start < 0 || count <= 0 {
			return nil, fmt.Errorf("%s:%d: want NAME:START:COUNT", file, n)
		}
		out = append(out, Range{start, count})
	}
	return out, sc.Err()
}

// InUserNamespace reports whether this process runs in a user namespace other than the
// initial one (whose uid_map maps every ID onto itself).
func InUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	return strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295"
}

package builder

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// resolveChown turns a --chown value into ids, looking names up in the
// image's own /etc/passwd and /etc/group as Docker does. A user without a
// group gets the same number as gid (Docker's documented rule).
func resolveChown(spec string, image mergedFS) (*owner, error) {
	if spec == "" {
		return nil, nil
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	uid, err := lookupID(userPart, image, "/etc/passwd", 2)
	if err != nil {
		return nil, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	gid := uid
	if hasGroup {
		if gid, err = lookupID(groupPart, image, "/etc/group", 2); err != nil {
			return nil, fmt.Errorf("--chown=%s: %w", spec, err)
		}
	}
	return &owner{uid: uid, gid: gid}, nil
}

// lookupID returns name as a number, or the number in field idField of
// the line of file (a passwd or group file) whose first field is name.
func lookupID(name string, image mergedFS, file string, idField int) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		if id < 0 {
			return 0, fmt.Errorf("invalid id %d", id)
		}
		return id, nil
	}
	data, err := image.readFile(file)
	if err != nil {
		return 0, fmt.Errorf("looking up %s: reading %s: %w", name, file, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > idField && fields[0] == name {
			id, err := strconv.Atoi(fields[idField])
			if err != nil {
				return 0, fmt.Errorf("bad id for %s in %s: %w", name, file, err)
			}
			return id, nil
		}
	}
	return 0, fmt.Errorf("no entry for %s in the image's %s", name, file)
}

package userdb

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The smallest and largest id GetExecUser accepts as a number: it keeps
// uids to int32 for 32-bit systems.
const (
	minID = 0
	maxID = 1<<31 - 1
)

var (
	// ErrNoPasswdEntries and ErrNoGroupEntries end the error for an unknown
	// name; the text is moby/sys/user's, which docker build users see.
	ErrNoPasswdEntries = errors.New("no matching entries in passwd file")
	ErrNoGroupEntries  = errors.New("no matching entries in group file")
	// ErrRange is the error for a numeric id GetExecUser does not accept.
	ErrRange = fmt.Errorf("uids and gids must be in range %d-%d", minID, maxID)
)

// Exec is who a RUN step's process runs as.
type Exec struct {
	UID, GID int
	// Groups is the process's supplementary group list, the primary gid
	// first unless GetExecUser's groups already hold it, as BuildKit builds
	// the OCI spec (ensureAdditionalGids) for runc's setgroups.
	Groups []int
	// Home is HOME for a process whose environment lacks one, as runc
	// finds it: the home field of the first passwd line with the process's
	// uid, "/" when there is none or no readable passwd file.
	Home string
}

// ExecUser resolves a RUN step's USER value from the image's passwd and
// group files (nil readers for missing files) as docker build does:
//
//   - BuildKit's oci.GetUser: an empty value is "0", and never fails (an
//     error gives 0:0); "uid:gid" with both parts numbers (or "root") is
//     taken as is, without reading the files;
//   - otherwise moby/sys/user's GetExecUser: a user name must have a passwd
//     line ("unable to find user NAME: no matching entries in passwd
//     file"), a number need not; a matched line gives uid, primary gid and
//     name; an explicit group (name or number, matched by gid) replaces the
//     gid and adds no supplementary groups; without one, every group line
//     listing the matched name is a supplementary group. Only the first two
//     colon-separated parts of the value count;
//   - then the primary gid joins the supplementary groups and HOME comes
//     from passwd by uid (see Exec).
func ExecUser(spec string, passwd, group io.Reader) (Exec, error) {
	// passwd is read once for both GetExecUser and runc's HOME lookup; its
	// error only matters where GetExecUser reads it.
	users, passwdErr := ParsePasswd(passwd, nil)
	isDefault := spec == ""
	if isDefault {
		spec = "0"
	}
	u, fast := fastPath(spec)
	if !fast {
		var err error
		if u, err = getExecUser(spec, users, passwdErr, group); err != nil {
			if !isDefault {
				return Exec{}, err
			}
			u = Exec{}
		}
	}
	if !slices.Contains(u.Groups, u.GID) {
		u.Groups = append([]int{u.GID}, u.Groups...)
	}
	u.Home = "/"
	if passwdErr == nil {
		if i := slices.IndexFunc(users, func(p User) bool { return p.UID == u.UID }); i >= 0 {
			u.Home = users[i].Home
		}
	}
	return u, nil
}

// fastPath is oci.ParseUIDGID: "uid:gid" where both parts are "root" or an
// unsigned 32-bit number. It skips the files, so "root:root" works in an
// image without /etc/passwd.
func fastPath(spec string) (Exec, bool) {
	userPart, groupPart, ok := strings.Cut(spec, ":")
	if !ok {
		return Exec{}, false
	}
	uid, err1 := parseUint32(userPart)
	gid, err2 := parseUint32(groupPart)
	if err1 != nil || err2 != nil {
		return Exec{}, false
	}
	return Exec{UID: uid, GID: gid}, true
}

func parseUint32(s string) (int, error) {
	if s == "root" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return int(n), err
}

// parseNumeric is GetExecUser's: a number must be in minID-maxID; anything
// that is not a number (including "") is a name.
func parseNumeric(s string) (int, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	id, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrSyntax) {
		return 0, false, nil
	}
	if err != nil || id < minID || id > maxID {
		return 0, true, ErrRange
	}
	return id, true, nil
}

// getExecUser is moby/sys/user's GetExecUser with zero defaults, over the
// passwd lines already read (passwdErr: the error reading them).
func getExecUser(spec string, users []User, passwdErr error, group io.Reader) (Exec, error) {
	// GetExecUser splits on every colon and uses the first two parts.
	parts := strings.Split(spec, ":")
	userArg, groupArg := parts[0], ""
	if len(parts) > 1 {
		groupArg = parts[1]
	}
	uidArg, isUID, err := parseNumeric(userArg)
	if err != nil {
		return Exec{}, err
	}
	gidArg, isGID, err := parseNumeric(groupArg)
	if err != nil {
		return Exec{}, err
	}
	if passwdErr != nil {
		if userArg == "" {
			userArg = "0"
		}
		return Exec{}, fmt.Errorf("unable to find user %s: %w", userArg, passwdErr)
	}

	var u Exec
	var matched string
	// The first matching line wins, even if more match. An empty user part
	// (":staff") matches the default uid, 0.
	i := slices.IndexFunc(users, func(p User) bool {
		switch {
		case userArg == "":
			return p.UID == 0
		case isUID:
			return p.UID == uidArg
		default:
			return p.Name == userArg
		}
	})
	switch {
	case i >= 0:
		matched, u.UID, u.GID = users[i].Name, users[i].UID, users[i].GID
	case userArg != "" && !isUID:
		return Exec{}, fmt.Errorf("unable to find user %s: %w", userArg, ErrNoPasswdEntries)
	case userArg != "":
		u.UID = uidArg
	}

	// The group file matters for an explicit group, or for the supplementary
	// groups of a matched name.
	if groupArg == "" && matched == "" {
		return u, nil
	}
	groups, err := ParseGroup(group, func(g Group) bool {
		switch {
		case groupArg == "":
			return slices.Contains(g.Members, matched)
		case isGID:
			return g.GID == gidArg
		default:
			return g.Name == groupArg
		}
	})
	if err != nil {
		return Exec{}, fmt.Errorf("unable to find groups for spec %v: %w", matched, err)
	}
	switch {
	case groupArg == "":
		for _, g := range groups {
			u.Groups = append(u.Groups, g.GID)
		}
	case len(groups) > 0:
		u.GID = groups[0].GID
	case !isGID:
		return Exec{}, fmt.Errorf("unable to find group %s: %w", groupArg, ErrNoGroupEntries)
	default:
		u.GID = gidArg
	}
	return u, nil
}

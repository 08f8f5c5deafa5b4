package userdb

import (
	"errors"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
)

// Owner is the numeric owner a file operation gives what it creates.
type Owner struct {
	UID, GID int
}

// Opener opens the image's PasswdPath or GroupPath for reading. A file that
// is not there must be reported as an error wrapping fs.ErrNotExist (or
// syscall.ENOTDIR, for a path through a non-directory): FileOwner reads it
// as an empty file. Any other error, say for a path that is a directory or
// a device rather than a regular file, fails the lookup, as in BuildKit.
type Opener func(name string) (io.ReadCloser, error)

// chownID is one side of a user:group value as llb.WithUser parses it:
// an id, or a name to look up.
type chownID struct {
	id     int
	name   string
	byName bool
}

// parseChownID follows llb.WithUser and parseUID: "root" is 0 without a
// lookup; a number is a 32-bit signed integer, sent to the solver as a
// uint32 (so -1 arrives as 4294967295, and a number beyond int32 is a
// name); an empty name is marshalled as ByID 0.
func parseChownID(s string) chownID {
	if s == "root" {
		return chownID{}
	}
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return chownID{id: int(uint32(n))}
	}
	if s == "" {
		return chownID{}
	}
	return chownID{name: s, byName: true}
}

// FileOwner resolves a --chown value, or the USER a WORKDIR creates its
// directory for, the way BuildKit's file operations do (llb.WithUser, then
// the solver's readUser):
//
//   - the user part: "root" or a number N gives N:N without reading
//     anything; a name gives the uid and primary gid of the first passwd
//     line of that name, or 0:0 when there is none or no passwd file (an
//     empty user part, as in ":staff", is 0);
//   - the group part, when present and not empty: "root" or a number
//     replaces the gid; a name replaces it with the gid of the first group
//     line of that name, and leaves it alone when there is none or no group
//     file.
//
// An unknown name is therefore never an error here, unlike for RUN: a
// build FROM scratch with USER root and no /etc/passwd still works.
// open is only called for a name.
func FileOwner(spec string, open Opener) (Owner, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var o Owner
	if u := parseChownID(userPart); !u.byName {
		o.UID, o.GID = u.id, u.id
	} else {
		users, err := readFile(open, PasswdPath, func(r io.Reader) ([]User, error) {
			return ParsePasswd(r, func(p User) bool { return p.Name == u.name })
		})
		if err != nil {
			return Owner{}, err
		}
		if len(users) > 0 {
			o.UID, o.GID = users[0].UID, users[0].GID
		}
	}
	// llb.WithUser skips an empty group: "app:" is "app".
	if !hasGroup || groupPart == "" {
		return o, nil
	}
	if g := parseChownID(groupPart); !g.byName {
		o.GID = g.id
	} else {
		groups, err := readFile(open, GroupPath, func(r io.Reader) ([]Group, error) {
			return ParseGroup(r, func(e Group) bool { return e.Name == g.name })
		})
		if err != nil {
			return Owner{}, err
		}
		if len(groups) > 0 {
			o.GID = groups[0].GID
		}
	}
	return o, nil
}

// readFile opens name and parses it; a missing file parses as empty.
func readFile[T any](open Opener, name string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	rc, err := open(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return parse(rc)
}

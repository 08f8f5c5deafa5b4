package userdb

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The files the lookups read, relative to the image's root.
const (
	PasswdPath = "/etc/passwd"
	GroupPath  = "/etc/group"
)

// MaxFileSize is the largest passwd or group file read. BuildKit refuses
// bigger ones (maxUserFileBytes) so a hostile image cannot make the build
// read without end; going past it is an error, not a truncation, because a
// truncated file could hide the line that matters.
const MaxFileSize = 10 << 20

// groupLineMax is the longest /etc/group line read: moby/sys/user raises
// bufio.Scanner's 64 KiB limit for group files, whose member lists can be
// long, and keeps it for passwd files.
const groupLineMax = 1 << 20

// User is one line of a passwd file: name:password:UID:GID:GECOS:home:shell.
type User struct {
	Name  string
	Pass  string
	UID   int
	GID   int
	Gecos string
	Home  string
	Shell string
}

// Group is one line of a group file: name:password:GID:member,member.
type Group struct {
	Name    string
	Pass    string
	GID     int
	Members []string
}

// ParsePasswd reads passwd lines and returns those keep accepts (all of
// them for a nil keep), in file order. A nil reader is a missing file and
// gives no lines. As moby/sys/user does, '#' is not special here (a comment
// line is a user whose name starts with '#' and whose ids are 0), and a
// line of fewer fields or with a non-numeric id is kept with the zero
// values: docker build matches names and ids against exactly those lines.
func ParsePasswd(r io.Reader, keep func(User) bool) ([]User, error) {
	var out []User
	err := eachLine(r, PasswdPath, bufio.MaxScanTokenSize, false, func(f [][]byte) {
		var u User
		fields(f, &u.Name, &u.Pass, &u.UID, &u.GID, &u.Gecos, &u.Home, &u.Shell)
		if keep == nil || keep(u) {
			out = append(out, u)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseGroup reads group lines and returns those keep accepts (all of them
// for a nil keep), in file order. A nil reader is a missing file. Unlike
// passwd, '#' starts a comment (moby/sys/user follows glibc for groups).
func ParseGroup(r io.Reader, keep func(Group) bool) ([]Group, error) {
	var out []Group
	err := eachLine(r, GroupPath, groupLineMax, true, func(f [][]byte) {
		var g Group
		fields(f, &g.Name, &g.Pass, &g.GID, &g.Members)
		if keep == nil || keep(g) {
			out = append(out, g)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachLine calls fn with the colon-separated fields of every line of r that
// is not blank (nor, with comments, a '#' comment), each trimmed of space.
func eachLine(r io.Reader, name string, maxLine int, comments bool, fn func([][]byte)) error {
	if r == nil {
		return nil
	}
	sc := bufio.NewScanner(&limitReader{r: r, left: MaxFileSize + 1})
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || (comments && line[0] == '#') {
			continue
		}
		fn(bytes.Split(line, []byte(":")))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// fields fills dst from the fields of a line, scanf style, as moby/sys/user
// does: fields beyond dst are ignored, missing ones leave zero values, a
// number that does not parse reads as what strconv.Atoi returns with its
// error (0, or the clamped value for one out of range), and an empty list
// is an empty, non-nil slice.
func fields(f [][]byte, dst ...any) {
	for i, p := range f {
		if i >= len(dst) {
			break
		}
		switch d := dst[i].(type) {
		case *string:
			*d = string(p)
		case *int:
			*d, _ = strconv.Atoi(string(p))
		case *[]string:
			if len(p) == 0 {
				*d = []string{}
			} else {
				*d = strings.Split(string(p), ",")
			}
		}
	}
}

// errTooBig is returned by a read past MaxFileSize.
var errTooBig = fmt.Errorf("file exceeds %d bytes", MaxFileSize)

// limitReader reads at most MaxFileSize bytes and fails on the next one,
// so a file over the limit is an error rather than silently cut short.
type limitReader struct {
	r    io.Reader
	left int64 // MaxFileSize+1 minus what was read
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left <= 0 {
		return n, errTooBig
	}
	return n, err
}

package userdb

import (
	"errors"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
)

// The primary gid of app (1000) is not its uid, so a rule that takes gid =
// uid shows. The file also holds what docker build's parser is lenient
// about: a blank line, spaces, a comment (not one in passwd), a short line,
// a non-numeric id, and a second entry for a name and for a uid.
const passwd = `root:x:0:0:root:/root:/bin/sh
  app:x:1000:1001:app:/home/app:/bin/sh

short:x:1200
badid:x:12ab:1300:bad:/home/bad:/bin/sh
twin:x:1000:1002:twin:/home/twin:/bin/sh
app:x:2000:2000:second app:/home/app2:/bin/sh
nohome:x:1400:1400:nohome::/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const group = `root:x:0:
# wheel:x:99:app
staff:x:50:app,other
appgrp:x:1001:
wheel:x:10:root
dup:x:60:
dup:x:61:app
twin:x:70:twin
nogroup:x:65534:
`

// files is an Opener over fixed contents; a missing key is a missing file.
func files(m map[string]string) Opener {
	return func(name string) (io.ReadCloser, error) {
		c, ok := m[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return io.NopCloser(strings.NewReader(c)), nil
	}
}

func TestFileOwner(t *testing.T) {
	both := map[string]string{PasswdPath: passwd, GroupPath: group}
	none := map[string]string{}
	tests := []struct {
		spec  string
		files map[string]string
		want  Owner
	}{
		// A name: uid and primary gid from passwd, not gid = uid.
		{"app", both, Owner{1000, 1001}},
		{"app:", both, Owner{1000, 1001}},
		{"nobody", both, Owner{65534, 65534}},
		// The first line of a name wins.
		{"twin", both, Owner{1000, 1002}},
		// A number is uid and gid alike, without a lookup, even when passwd
		// gives that uid another primary group.
		{"1000", both, Owner{1000, 1000}},
		{"1500", both, Owner{1500, 1500}},
		{"1500", none, Owner{1500, 1500}},
		{"+7", none, Owner{7, 7}},
		// root is 0 without a lookup, also with no passwd (FROM scratch).
		{"root", none, Owner{0, 0}},
		{"root:root", none, Owner{0, 0}},
		// A missing file or name is 0:0, not an error.
		{"app", none, Owner{0, 0}},
		{"ghost", both, Owner{0, 0}},
		// Explicit groups: a name from /etc/group, a number as is.
		{"app:staff", both, Owner{1000, 50}},
		{"app:4242", both, Owner{1000, 4242}},
		{"1500:staff", both, Owner{1500, 50}},
		{"app:root", both, Owner{1000, 0}},
		{"dup:dup", both, Owner{0, 60}},
		// A group name that is missing keeps what the user part gave.
		{"app:ghosts", both, Owner{1000, 1001}},
		{"1500:staff", map[string]string{PasswdPath: passwd}, Owner{1500, 1500}},
		// A comment is not a group in /etc/group.
		{"app:# wheel", both, Owner{1000, 1001}},
		// An empty user part is 0 (llb marshals an empty name as ByID 0).
		{":staff", both, Owner{0, 50}},
		{":", both, Owner{0, 0}},
		// Lenient parsing: a short line lacks a gid (0), a bad number reads as 0.
		{"short", both, Owner{1200, 0}},
		{"badid", both, Owner{0, 1300}},
		// Numbers are int32, sent as uint32: -1 wraps, 2^31 is a name.
		{"-1", none, Owner{4294967295, 4294967295}},
		{"2147483648", none, Owner{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := FileOwner(tt.spec, files(tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("FileOwner(%q) = %+v, want %+v", tt.spec, got, tt.want)
			}
		})
	}
}

func TestFileOwnerOpensOnlyForNames(t *testing.T) {
	var opened []string
	open := func(name string) (io.ReadCloser, error) {
		opened = append(opened, name)
		return nil, errors.New("unreadable")
	}
	for _, spec := range []string{"1000", "1000:50", "root", "root:root", ":0"} {
		if _, err := FileOwner(spec, open); err != nil {
			t.Errorf("FileOwner(%q): %v", spec, err)
		}
	}
	if opened != nil {
		t.Errorf("opened %q for numeric specs", opened)
	}
}

func TestFileOwnerErrors(t *testing.T) {
	notDir := func(string) (io.ReadCloser, error) {
		return nil, &fs.PathError{Op: "open", Path: "/etc/passwd", Err: syscall.ENOTDIR}
	}
	if got, err := FileOwner("app:staff", notDir); err != nil || got != (Owner{}) {
		t.Errorf("a path through a file: %+v, %v; want 0:0, no error", got, err)
	}
	denied := errors.New("not a regular file")
	open := func(string) (io.ReadCloser, error) { return nil, denied }
	if _, err := FileOwner("app", open); !errors.Is(err, denied) {
		t.Errorf("an unreadable passwd: %v, want the open error", err)
	}
	if _, err := FileOwner("1:staff", open); !errors.Is(err, denied) {
		t.Errorf("an unreadable group: %v, want the open error", err)
	}
	long := map[string]string{PasswdPath: "app:x:1:1:" + strings.Repeat("x", 70_000) + "\n"}
	if _, err := FileOwner("app", files(long)); err == nil {
		t.Error("a passwd line over 64 KiB was read")
	}
	read := func(string) (io.ReadCloser, error) {
		return io.NopCloser(iotest.ErrReader(errors.New("EIO"))), nil
	}
	if _, err := FileOwner("app", read); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Errorf("a read error: %v", err)
	}
}

func TestExecUser(t *testing.T) {
	tests := []struct {
		spec    string
		passwd  string // "-" for no file
		group   string
		want    Exec
		wantErr string
	}{
		// The empty user is 0 looked up in passwd: root's groups and home.
		{spec: "", want: Exec{UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		{spec: "root", want: Exec{UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		// A name: uid and primary gid from passwd, every group listing it
		// as supplementary, the primary gid first.
		{spec: "app", want: Exec{UID: 1000, GID: 1001, Groups: []int{1001, 50, 61}, Home: "/home/app"}},
		// A number matches the first line with that uid, and its groups.
		{spec: "1000", want: Exec{UID: 1000, GID: 1001, Groups: []int{1001, 50, 61}, Home: "/home/app"}},
		// The first line of a name wins; HOME is the first line of the uid's.
		{spec: "twin", want: Exec{UID: 1000, GID: 1002, Groups: []int{1002, 70}, Home: "/home/app"}},
		// uid:gid takes BuildKit's fast path: no lookup, no groups.
		{spec: "1000:1000", want: Exec{UID: 1000, GID: 1000, Groups: []int{1000}, Home: "/home/app"}},
		{spec: "root:root", passwd: "-", group: "-", want: Exec{Groups: []int{0}, Home: "/"}},
		{spec: "4242:root", passwd: "-", group: "-", want: Exec{UID: 4242, Groups: []int{0}, Home: "/"}},
		// An explicit group replaces the gid and adds no groups.
		{spec: "app:staff", want: Exec{UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/app"}},
		{spec: "app:4242", want: Exec{UID: 1000, GID: 4242, Groups: []int{4242}, Home: "/home/app"}},
		{spec: "app:10", want: Exec{UID: 1000, GID: 10, Groups: []int{10}, Home: "/home/app"}},
		{spec: "app:dup", want: Exec{UID: 1000, GID: 60, Groups: []int{60}, Home: "/home/app"}},
		// Only the first two parts count.
		{spec: "app:staff:ignored", want: Exec{UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/app"}},
		// An empty user part is uid 0.
		{spec: ":staff", want: Exec{UID: 0, GID: 50, Groups: []int{50}, Home: "/root"}},
		// A number without a line: gid 0, home /.
		{spec: "4242", want: Exec{UID: 4242, GID: 0, Groups: []int{0}, Home: "/"}},
		{spec: "4242", passwd: "-", group: "-", want: Exec{UID: 4242, GID: 0, Groups: []int{0}, Home: "/"}},
		{spec: "nobody", want: Exec{UID: 65534, GID: 65534, Groups: []int{65534}, Home: "/nonexistent"}},
		// HOME is what the line says, even empty (runc sets it so).
		{spec: "nohome", want: Exec{UID: 1400, GID: 1400, Groups: []int{1400}, Home: ""}},
		// Lenient parsing, as docker build: a bad id reads as 0.
		{spec: "badid", want: Exec{UID: 0, GID: 1300, Groups: []int{1300}, Home: "/root"}},
		// Without /etc/group a name keeps its primary gid and no groups.
		{spec: "app", group: "-", want: Exec{UID: 1000, GID: 1001, Groups: []int{1001}, Home: "/home/app"}},
		// A passwd comment is a line (uid 0); a group comment is not.
		{spec: "0", passwd: "# note\n" + passwd, want: Exec{UID: 0, GID: 0, Groups: []int{0}, Home: ""}},
		{spec: "app:wheel", want: Exec{UID: 1000, GID: 10, Groups: []int{10}, Home: "/home/app"}},
		// Unknown names fail, with moby/sys/user's text.
		{spec: "ghost", wantErr: "unable to find user ghost: no matching entries in passwd file"},
		{spec: "app", passwd: "-", wantErr: "unable to find user app: no matching entries in passwd file"},
		{spec: "root", passwd: "-", wantErr: "unable to find user root: no matching entries in passwd file"},
		{spec: "app:ghosts", wantErr: "unable to find group ghosts: no matching entries in group file"},
		{spec: "4242:ghosts", group: "-", wantErr: "unable to find group ghosts"},
		// Numbers outside int32 are refused unless the fast path takes them.
		{spec: "-1", wantErr: "uids and gids must be in range 0-2147483647"},
		{spec: "2147483648", wantErr: "range"},
		{spec: "app:-1", wantErr: "range"},
		{spec: "4294967294:0", want: Exec{UID: 4294967294, GID: 0, Groups: []int{0}, Home: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ExecUser(tt.spec, reader(tt.passwd, passwd), reader(tt.group, group))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// reader is s as a reader, def for "", and nil (a missing file) for "-".
func reader(s, def string) io.Reader {
	switch s {
	case "-":
		return nil
	case "":
		return strings.NewReader(def)
	}
	return strings.NewReader(s)
}

func TestExecUserReadErrors(t *testing.T) {
	bad := func() io.Reader { return iotest.ErrReader(errors.New("EIO")) }
	if _, err := ExecUser("app", bad(), strings.NewReader(group)); err == nil ||
		!strings.Contains(err.Error(), "unable to find user app") {
		t.Errorf("unreadable passwd: %v", err)
	}
	if _, err := ExecUser("app", strings.NewReader(passwd), bad()); err == nil ||
		!strings.Contains(err.Error(), "unable to find groups for spec app") {
		t.Errorf("unreadable group: %v", err)
	}
	// The default user never fails: BuildKit falls back to 0:0.
	got, err := ExecUser("", bad(), bad())
	if want := (Exec{Groups: []int{0}, Home: "/"}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("default user with unreadable files: %+v, %v; want %+v", got, err, want)
	}
	// The fast path reads no file, though HOME still comes from passwd.
	got, err = ExecUser("1000:50", strings.NewReader(passwd), bad())
	if want := (Exec{UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/app"}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("fast path: %+v, %v; want %+v", got, err, want)
	}
}

func TestParse(t *testing.T) {
	users, err := ParsePasswd(strings.NewReader("a:b:1:2:c:/h:/s:extra\r\n\n  # x:y:3\nshort\n:x:5:5\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []User{
		{Name: "a", Pass: "b", UID: 1, GID: 2, Gecos: "c", Home: "/h", Shell: "/s"},
		{Name: "# x", Pass: "y", UID: 3},
		{Name: "short"},
		{Pass: "x", UID: 5, GID: 5},
	}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("passwd:\n got %+v\nwant %+v", users, want)
	}
	groups, err := ParseGroup(strings.NewReader("g:x:7:a,b\n#c:x:8:\nh:x:9:\ni:x:9\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantG := []Group{
		{Name: "g", Pass: "x", GID: 7, Members: []string{"a", "b"}},
		{Name: "h", Pass: "x", GID: 9, Members: []string{}},
		{Name: "i", Pass: "x", GID: 9},
	}
	if !reflect.DeepEqual(groups, wantG) {
		t.Errorf("group:\n got %+v\nwant %+v", groups, wantG)
	}
	if users, err := ParsePasswd(nil, nil); users != nil || err != nil {
		t.Errorf("nil reader: %v, %v; want nothing", users, err)
	}
	// A group line may be long (member lists), up to 1 MiB.
	long := "big:x:3:" + strings.Repeat("m,", 100_000) + "app\n"
	if g, err := ParseGroup(strings.NewReader(long), nil); err != nil || len(g) != 1 {
		t.Errorf("long group line: %d groups, %v", len(g), err)
	}
}

func TestFileSizeLimit(t *testing.T) {
	line := "u:x:1:1::/:/bin/sh\n"
	at := strings.Repeat(line, MaxFileSize/len(line)) // just under the limit
	if _, err := ParsePasswd(strings.NewReader(at), nil); err != nil {
		t.Errorf("a file under the limit: %v", err)
	}
	over := at + strings.Repeat(line, 2)
	if _, err := ParsePasswd(strings.NewReader(over), nil); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("a file over the limit: %v", err)
	}
	if _, err := ExecUser("u", strings.NewReader(over), nil); err == nil {
		t.Error("ExecUser read a passwd file over the limit")
	}
}

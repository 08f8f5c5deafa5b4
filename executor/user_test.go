package executor

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
broken line
app2:x:1000:1002:app2:/home/app2:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const testGroup = `root:x:0:
# old:x:40:app
staff:x:50:app,other
app:x:1000:
wheel:x:10:root
nogroup:x:65534:
`

// TestResolveUser checks RUN's rules (docker build: BuildKit's oci.GetUser over moby/sys/user's
// GetExecUser): the primary gid is among the groups, "uid:gid" needs no files, HOME comes from
// the first passwd line with the uid, and an unknown name fails with moby's text.
func TestResolveUser(t *testing.T) {
	tests := []struct {
		spec    string
		want    execUser
		wantErr string
	}{
		{spec: "", want: execUser{UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		{spec: "root", want: execUser{UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		{spec: "app", want: execUser{UID: 1000, GID: 1000, Groups: []int{1000, 50}, Home: "/home/app"}},
		{spec: "1000", want: execUser{UID: 1000, GID: 1000, Groups: []int{1000, 50}, Home: "/home/app"}},
		{spec: "1000:1000", want: execUser{UID: 1000, GID: 1000, Groups: []int{1000}, Home: "/home/app"}},
		{spec: "app:staff", want: execUser{UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/app"}},
		{spec: "app:4242", want: execUser{UID: 1000, GID: 4242, Groups: []int{4242}, Home: "/home/app"}},
		{spec: "4242", want: execUser{UID: 4242, GID: 0, Groups: []int{0}, Home: "/"}},
		{spec: "4242:4343", want: execUser{UID: 4242, GID: 4343, Groups: []int{4343}, Home: "/"}},
		{spec: "nobody", want: execUser{UID: 65534, GID: 65534, Groups: []int{65534}, Home: "/nonexistent"}},
		// A second name for uid 1000: its own primary group, the uid's first home.
		{spec: "app2", want: execUser{UID: 1000, GID: 1002, Groups: []int{1002}, Home: "/home/app"}},
		// GetExecUser reads the first two colon-separated parts only.
		{spec: "app:staff:x", want: execUser{UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/app"}},
		// A commented-out group line is no group.
		{spec: "app:# old", wantErr: "unable to find group # old"},
		{spec: "ghost", wantErr: "unable to find user ghost: no matching entries in passwd file"},
		{spec: "app:ghosts", wantErr: "unable to find group ghosts: no matching entries in group file"},
		{spec: "-1", wantErr: "range"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := resolveUser(tt.spec, strings.NewReader(testPasswd), strings.NewReader(testGroup))
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

func TestResolveUserWithoutFiles(t *testing.T) {
	got, err := resolveUser("1000:1000", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (execUser{UID: 1000, GID: 1000, Groups: []int{1000}, Home: "/"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := resolveUser("app", nil, nil); err == nil {
		t.Error("a user name resolved without /etc/passwd")
	}
	// BuildKit takes "uid:gid" of numbers or root without reading passwd, so USER root:root
	// works in an image without one; the default user never fails.
	for _, spec := range []string{"root:root", "0:root", ""} {
		got, err := resolveUser(spec, nil, nil)
		if want := (execUser{Groups: []int{0}, Home: "/"}); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q without files: %+v, %v; want %+v", spec, got, err, want)
		}
	}
}

// A passwd or group that is not a regular file reads as missing, as BuildKit opens them.
func TestResolveUserIgnoresNonRegularFiles(t *testing.T) {
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	got, err := resolveUser("1000", dir, dir)
	if want := (execUser{UID: 1000, Groups: []int{0}, Home: "/"}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("directories as passwd and group: %+v, %v; want %+v", got, err, want)
	}
}

func TestWithDefaults(t *testing.T) {
	got := withDefaults([]string{"A=1"}, "/home/app")
	want := []string{"A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/app"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	kept := withDefaults([]string{"PATH=/x", "HOME=/h"}, "/root")
	if !reflect.DeepEqual(kept, []string{"PATH=/x", "HOME=/h"}) {
		t.Errorf("existing PATH/HOME replaced: %q", kept)
	}
	// runc treats an empty HOME as none, and keeps only the last HOME.
	empty := withDefaults([]string{"HOME=/old", "PATH=/x", "HOME="}, "/home/app")
	if want := []string{"PATH=/x", "HOME=/home/app"}; !reflect.DeepEqual(empty, want) {
		t.Errorf("empty HOME: got %q, want %q", empty, want)
	}
}

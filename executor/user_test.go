package executor

import (
	"reflect"
	"strings"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
# a comment
broken line
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const testGroup = `root:x:0:
staff:x:50:app,other
app:x:1000:
wheel:x:10:root
nogroup:x:65534:
`

func TestResolveUser(t *testing.T) {
	tests := []struct {
		spec    string
		want    execUser
		wantErr string
	}{
		{spec: "", want: execUser{UID: 0, GID: 0, Groups: []int{10}, Home: "/root"}},
		{spec: "root", want: execUser{UID: 0, GID: 0, Groups: []int{10}, Home: "/root"}},
		{spec: "app", want: execUser{UID: 1000, GID: 1000, Groups: []int{50}, Home: "/home/app"}},
		{spec: "1000", want: execUser{UID: 1000, GID: 1000, Groups: []int{50}, Home: "/home/app"}},
		{spec: "1000:1000", want: execUser{UID: 1000, GID: 1000, Home: "/home/app"}},
		{spec: "app:staff", want: execUser{UID: 1000, GID: 50, Home: "/home/app"}},
		{spec: "app:4242", want: execUser{UID: 1000, GID: 4242, Home: "/home/app"}},
		{spec: "4242", want: execUser{UID: 4242, GID: 0, Home: "/"}},
		{spec: "4242:4343", want: execUser{UID: 4242, GID: 4343, Home: "/"}},
		{spec: "nobody", want: execUser{UID: 65534, GID: 65534, Home: "/nonexistent"}},
		{spec: "ghost", wantErr: "unable to find user ghost"},
		{spec: "app:ghosts", wantErr: "unable to find group ghosts"},
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
	if want := (execUser{UID: 1000, GID: 1000, Home: "/"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := resolveUser("app", nil, nil); err == nil {
		t.Error("a user name resolved without /etc/passwd")
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
}

package executor

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRunUserRules runs steps in the sandbox as users docker build resolves differently from
// what Strata did: the primary gid is among the process's groups (BuildKit puts it in the
// spec's additional gids), USER root:root needs no /etc/passwd (BuildKit's uid:gid fast path),
// HOME is the passwd home of the uid's first line, and an empty HOME counts as unset (runc).
func TestRunUserRules(t *testing.T) {
	base := newBase(t)
	// A top layer whose passwd gives app2 the uid of app and a primary group of its own.
	users := writeTree(t, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" +
			"app2:x:1000:1002:app2:/home/app2:/bin/sh\n",
		"etc/group": "root:x:0:\nstaff:x:50:app\nsecond:x:1002:\n",
	})
	// A base without /etc/passwd and /etc/group.
	noUsers := newBase(t)
	for _, f := range []string{"etc/passwd", "etc/group"} {
		if err := os.Remove(filepath.Join(noUsers, f)); err != nil {
			t.Fatal(err)
		}
	}
	groups := `sed -n 's/^Groups:[[:space:]]*//p' /proc/self/status`
	tests := []struct {
		name   string
		lowers []string
		user   string
		env    []string
		script string
		want   string
	}{
		{name: "name: primary gid among the groups", lowers: []string{base}, user: "app",
			script: "id -u; id -g; " + groups, want: "1000\n1000\n50 1000"},
		{name: "uid:gid: the gid is the group list", lowers: []string{base}, user: "1000:1000",
			script: groups, want: "1000"},
		{name: "second name of a uid: its own gid, the uid's first home", lowers: []string{users, base},
			user: "app2", script: `id -u; id -g; echo "$HOME"`, want: "1000\n1002\n/home/app"},
		{name: "root:root without /etc/passwd", lowers: []string{noUsers}, user: "root:root",
			script: `id -u; id -g; echo "$HOME"`, want: "0\n0\n/"},
		{name: "empty HOME is replaced", lowers: []string{base}, user: "app", env: []string{"HOME="},
			script: `echo "$HOME"`, want: "/home/app"},
	}
	e := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStep(t, tt.lowers, tt.script)
			s.spec.User, s.spec.Env = tt.user, tt.env
			if got := s.mustRun(t, e).out(); got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
